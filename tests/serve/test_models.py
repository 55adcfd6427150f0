"""Each checkpoint is served as the kind its training made it, and a task model fills its template."""

import pytest
import torch

from gptkit import GPT, GptkitError, ModelConfig, save_checkpoint
from gptkit.config import QaSettings
from gptkit.data import Record, Task
from gptkit.serve import load_served

from .conftest import make_models


def test_kinds_follow_the_checkpoints_task(tmp_path):
    lm, chat, enc = make_models(tmp_path)
    assert [load_served(p).kind for p in (lm, chat, enc)] == ["lm", "chat", "encoder"]
    served = load_served(lm)
    tok = served.tokenizer
    shape = dict(vocab_size=tok.vocab_size, block_size=96, n_layer=1, n_head=2, n_embd=32)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "mt", GPT(ModelConfig(**shape)), tok, extra={"task": Task("translation").to_dict()})
    save_checkpoint(tmp_path / "qa", GPT(ModelConfig(**shape, span_head=True)), tok,
                    extra={"task": Task("qa", qa=QaSettings(answer="extract")).to_dict()})
    save_checkpoint(tmp_path / "gqa", GPT(ModelConfig(**shape)), tok,
                    extra={"task": Task("qa", qa=QaSettings(answer="generate")).to_dict()})
    assert [load_served(tmp_path / n).kind for n in ("mt", "qa", "gqa")] == ["task", "extractive", "lm"]


def test_a_task_model_puts_the_input_through_its_stored_template(tmp_path):
    lm = make_models(tmp_path)[0]
    served = load_served(lm)
    served.task = Task("translation")
    assert served.task_prompt("a red bike") == Task("translation").prompt(Record({"source": "a red bike",
                                                                                  "target": ""}))
    assert served.task_prompt("a red bike") == "English: a red bike\nGerman:"


def test_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(GptkitError, match="no such checkpoint directory"):
        load_served(tmp_path / "nothing")
