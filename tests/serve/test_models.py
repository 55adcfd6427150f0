"""Each checkpoint is served as the kind its training made it, and a task model fills its template."""

import pytest
import torch

from gptkit import GPT, GptkitError, ModelConfig, save_checkpoint
from gptkit.config import QaSettings
from gptkit.data import Record, Task
from gptkit.serve import load_served

from .conftest import make_models


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_kinds_follow_the_checkpoints_task(tmp_path, arch):
    lm, chat, enc = make_models(tmp_path, arch)
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


def test_an_index_and_an_extractive_model_answer_their_routes(tmp_path):
    import httpx

    from gptkit.data.formats import qa_record
    from gptkit.eval.qa import answer_questions
    from gptkit.search.embed import load_encoder
    from gptkit.search.hybrid import Searcher
    from gptkit.search.index import Index
    from gptkit.serve import ServeSettings, create_app

    from .conftest import Running, free_port

    lm, _, enc = make_models(tmp_path)
    docs = [("a", "the cat sat on the mat"), ("b", "the quick brown fox jumps"), ("c", "numbers 1 2 3 repeat")]
    Index.build(docs, load_encoder(enc, dtype="fp32")).save(tmp_path / "index")
    served = load_served(lm)
    torch.manual_seed(1)
    config = served.model.config
    save_checkpoint(tmp_path / "qa", GPT(ModelConfig(vocab_size=config.vocab_size, block_size=96, n_layer=1, n_head=2,
                                                     n_embd=32, span_head=True)), served.tokenizer,
                    extra={"task": Task("qa").to_dict()})
    index, qa = load_served(tmp_path / "index", dtype="fp32"), load_served(tmp_path / "qa", dtype="fp32")
    assert (index.kind, qa.kind) == ("index", "extractive")
    running = Running(create_app([index, qa], ServeSettings()), free_port())
    try:
        found = httpx.post(running.url + "/v1/search", json={"model": "index", "query": "quick fox", "k": 2}).json()
        expected = Searcher(Index.load(tmp_path / "index"), load_encoder(enc, dtype="fp32")).search("quick fox", k=2)
        assert [(r["document"], r["rank"]) for r in found["data"]] == [(h.chunk.doc, i + 1) for i, h in
                                                                       enumerate(expected)]
        context, question = "The cat sat on the mat near the door.", "Where did the cat sit?"
        answer = httpx.post(running.url + "/v1/answers", json={"model": "qa", "context": context,
                                                                "question": question}).json()
        span = answer_questions(qa.model, qa.tokenizer, qa.task, [qa_record(context, question)])[0]
        assert (answer["answer"], answer["start"], answer["end"]) == (span.text, span.start, span.end)
        assert context[answer["start"] : answer["end"]] == answer["answer"]
    finally:
        running.stop()


def test_a_translation_model_completes_its_input_through_the_stored_template(tmp_path):
    import httpx

    from gptkit import Decoding, load_checkpoint
    from gptkit.generate import generate_text
    from gptkit.serve import ServeSettings, create_app

    from .conftest import Running, free_port

    lm = make_models(tmp_path)[0]
    tok = load_served(lm).tokenizer
    torch.manual_seed(2)
    save_checkpoint(tmp_path / "mt", GPT(ModelConfig(vocab_size=tok.vocab_size, block_size=96, n_layer=1, n_head=2,
                                                     n_embd=32)), tok, extra={"task": Task("translation").to_dict()})
    running = Running(create_app([load_served(tmp_path / "mt", dtype="fp32")], ServeSettings()), free_port())
    try:
        body = {"model": "mt", "prompt": "a red bike", "max_tokens": 6, "temperature": 0, "echo": True}
        text = httpx.post(running.url + "/v1/completions", json=body).json()["choices"][0]["text"]
        ckpt = load_checkpoint(tmp_path / "mt")
        rendered = "English: a red bike\nGerman:"
        assert text == rendered + generate_text(ckpt.model.eval(), tok, rendered, Decoding(6, temperature=0))
    finally:
        running.stop()
