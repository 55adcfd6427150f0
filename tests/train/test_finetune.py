"""Fine-tuning: the loss on completions only, the loop's guarantees on examples, LoRA, and a task it learns."""


import pytest
import torch

from gptkit import GPT, GptkitError, ModelConfig, Tokenizer, load_checkpoint, save_checkpoint, to_hf
from gptkit.data import ExampleBatches, Task, read_records
from gptkit.eval import bleu
from gptkit.eval.tasks import predict
from gptkit.generate import Decoding
from gptkit.lora import load_adapters
from gptkit.train import finetune
from gptkit.train.report import read_metrics
from tests.train.conftest import _finetune_config, _losses


def test_prompt_positions_get_no_loss_and_no_gradient(task_files):
    train, _, tokenizer_path = task_files
    task, records, _ = read_records(train, Task("translation"))
    tokenizer = Tokenizer.load(tokenizer_path)
    examples = task.examples(records[:8], tokenizer, 48)
    x, y, segments = ExampleBatches(examples, 2, 48).batch(0)
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tokenizer.vocab_size, block_size=48, n_layer=1, n_head=2, n_embd=16))
    seen = {}

    def keep_gradient(module, inputs, out):
        out.register_hook(lambda grad: seen.setdefault("grad", grad))

    model.ln_f.register_forward_hook(keep_gradient)
    loss = model(x, y, segments=segments)
    loss.backward()
    on_target = y != -1
    assert seen["grad"][~on_target].abs().max() == 0  # prompt and padding positions: no gradient at all
    assert seen["grad"][on_target].abs().sum(-1).min() > 0
    logits = model(x, segments=segments)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits[on_target], y[on_target]))


def test_finetuning_learns_a_synthetic_task_far_above_the_untrained_model(task_files, tmp_path):
    config = _finetune_config(task_files, tmp_path / "run", "max_steps=200", "eval_interval=100", "select=bleu",
                     "select_examples=40", "max_new_tokens=16", "warmup_steps=20", "optimizer=muon", "n_embd=64",
                     "n_head=4", "batch_size=32")
    best = finetune(config)
    ckpt = load_checkpoint(best)
    task = Task.from_dict(ckpt.meta["task"])
    _, val, _ = read_records(task_files[1], task)
    references = [[task.reference(r) for r in val]]
    trained = bleu(predict(ckpt.model, ckpt.tokenizer, task, val, Decoding(16, temperature=0)), references).score
    torch.manual_seed(0)
    untrained = bleu(predict(GPT(ckpt.model.config), ckpt.tokenizer, task, val, Decoding(16, temperature=0)),
                     references).score
    assert trained > 80 and untrained < 5, (trained, untrained)
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    scores = [r["val_bleu"] for r in records if "val_bleu" in r]
    assert ckpt.meta["val_bleu"] == max(scores)  # best is the evaluation with the highest val BLEU
    assert ckpt.meta["finetune"]["train_examples"] == 600 and ckpt.meta["finetune"]["val_examples"] == 40


# A Llama-style block for fine-tuning runs from scratch: the tests below run on it as on GPT-2's
LLAMA = ("norm=rmsnorm", "mlp=swiglu", "positions=rope", "n_kv_head=1", "model.bias=false", "tie_embeddings=false")


@pytest.mark.parametrize("block", [(), LLAMA], ids=["gpt2", "llama"])
def test_resumed_finetuning_gives_identical_loss_curve(task_files, tmp_path, block):
    same = ("model.dropout=0.1", "schedule=constant", "val_examples=0", *block)
    finetune(_finetune_config(task_files, tmp_path / "full", *same))
    finetune(_finetune_config(task_files, tmp_path / "split", "max_steps=6", *same))
    best = finetune(_finetune_config(task_files, tmp_path / "split", *same))  # resumes from step 6
    assert _losses(tmp_path / "split") == _losses(tmp_path / "full")
    assert load_checkpoint(best).meta["step"] == 12  # without val examples the newest checkpoint is the best


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_lora_trains_only_the_adapters_and_saves_them_for_peft(task_files, tmp_path, arch):
    from tests.conftest import tiny

    torch.manual_seed(0)
    tokenizer = Tokenizer.load(task_files[2])
    base = GPT(tiny(arch, vocab_size=tokenizer.vocab_size, block_size=48, n_layer=2, n_head=2, n_embd=16))
    to_hf(base, tokenizer, tmp_path / "hf")  # a Hugging Face directory is a valid init
    best = finetune(_finetune_config(task_files, tmp_path / "run", f"init={tmp_path / 'hf'}", "lora.rank=4",
                            "lora.targets=['attn.qkv', 'mlp.fc']", "lr=3e-2"))
    tuned = load_checkpoint(best).model
    for name, weight in base.state_dict().items():
        changed = not torch.equal(weight, tuned.state_dict()[name])
        assert changed == (name.endswith(("attn.qkv.weight", "mlp.fc.weight"))), name
    adapted = GPT(base.config)
    adapted.load_state_dict(base.state_dict())
    load_adapters(adapted, tmp_path / "run" / "best-adapter")
    x = torch.randint(0, tokenizer.vocab_size, (2, 20))
    torch.testing.assert_close(adapted.eval()(x), tuned.eval()(x), atol=1e-5, rtol=1e-5)


def test_resumed_lora_run_continues_from_its_adapters(task_files, tmp_path):
    torch.manual_seed(0)
    tokenizer = Tokenizer.load(task_files[2])
    save_checkpoint(tmp_path / "base", GPT(ModelConfig(vocab_size=tokenizer.vocab_size, block_size=48, n_layer=2,
                                                       n_head=2, n_embd=16)), tokenizer)
    same = (f"init={tmp_path / 'base'}", "lora.rank=2", "schedule=constant", "val_examples=0", "lora.dropout=0.1")
    finetune(_finetune_config(task_files, tmp_path / "full", *same))
    finetune(_finetune_config(task_files, tmp_path / "split", "max_steps=6", *same))
    finetune(_finetune_config(task_files, tmp_path / "split", *same))
    assert _losses(tmp_path / "split") == _losses(tmp_path / "full")
    with pytest.raises(GptkitError, match="saved by a run with LoRA adapters"):
        finetune(_finetune_config(task_files, tmp_path / "split", *same[:1], "lora.rank=0", "max_steps=14"))


def test_patience_stops_a_run_that_no_longer_improves(task_files, tmp_path):
    finetune(_finetune_config(task_files, tmp_path / "run", "patience=1", "lr=1e-12", "min_lr=0", "eval_interval=2"))
    steps = [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert steps[-1] < 12
    assert "early stopping" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.parametrize("extra, message", [
    (("lora.rank=4",), "LoRA adapts a trained model"),
    (("grow=[{at = 2, n_layer = 4}]",), "train.grow is for pretraining"),
    (("val_examples=5000",), "too few to hold out"),
    (("data=",), "no examples"),
    (("select=f1",), "not a score of translation examples .theirs: bleu, chrf"),
])
def test_bad_finetune_settings_are_clear_errors(task_files, tmp_path, extra, message):
    with pytest.raises(GptkitError, match=message):
        finetune(_finetune_config(task_files, tmp_path / "run", "val_data=", *extra))


def _qa_config(tmp_path, train, val, *extra):
    from gptkit.config import FinetuneConfig, load_config

    return load_config(FinetuneConfig, None, [
        f"data={train}", f"val_data={val}", f"out_dir={tmp_path / 'run'}", "format=qa", "n_layer=3", "n_head=4",
        "n_embd=64", "block_size=96", "batch_size=16", "max_steps=300", "warmup_steps=10", "lr=3e-3", "min_lr=3e-4",
        "eval_interval=100", "checkpoint_interval=300", "dtype=fp32", "device=cpu", "task.vocab_size=400",
        "doc_stride=16", "optimizer=muon", *extra])


def test_extractive_qa_learns_facts_and_when_there_is_no_answer(tmp_path):
    from gptkit.eval.tasks import score
    from tests.train.conftest import write_facts

    train = write_facts(tmp_path / "train.jsonl", 800, 0, unanswerable=0.25)
    val = write_facts(tmp_path / "val.jsonl", 60, 1, unanswerable=0.25)
    best = finetune(_qa_config(tmp_path, train, val, "select=f1"))
    ckpt = load_checkpoint(best)
    task = Task.from_dict(ckpt.meta["task"])
    assert ckpt.model.config.span_head and task.extractive and ckpt.meta["finetune"]["unanswerable"] > 100
    _, records, _ = read_records(val, task)
    trained = score(task, predict(ckpt.model, ckpt.tokenizer, task, records, null_threshold=0.0), records)
    torch.manual_seed(0)
    untrained = GPT(ckpt.model.config)
    before = score(task, predict(untrained, ckpt.tokenizer, task, records, null_threshold=0.0), records)
    assert trained["HasAns_exact"].score > 60 and trained["NoAns_exact"].score > 60
    assert before["exact"].score < 35 < trained["exact"].score - 40
    evals = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "val_f1" in r]
    assert len(evals) == 3 and ckpt.meta["val_f1"] == max(r["val_f1"] for r in evals)


def test_generative_qa_and_summarization_train_through_the_completion_path(tmp_path):
    import json

    from gptkit.eval.tasks import score
    from tests.train.conftest import write_facts

    train = write_facts(tmp_path / "train.jsonl", 200, 0)
    val = write_facts(tmp_path / "val.jsonl", 10, 1)
    best = finetune(_qa_config(tmp_path / "gen", train, val, "answer=generate", "max_steps=20", "eval_interval=10",
                               "select=exact", "max_new_tokens=8"))
    ckpt = load_checkpoint(best)
    assert not ckpt.model.config.span_head
    task = Task.from_dict(ckpt.meta["task"])
    _, records, _ = read_records(val, task)
    assert set(score(task, predict(ckpt.model, ckpt.tokenizer, task, records, Decoding(8, temperature=0)),
                     records)) == {"exact", "f1"}

    rows = [{"body": f"Memo {i}: the {w} report is due on day {i % 7}. Please send it.", "title": f"{w} report"}
            for i, w in enumerate(["budget", "travel", "sales", "safety"] * 30)]
    (tmp_path / "mail.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    best = finetune(_qa_config(tmp_path / "sum", tmp_path / "mail.jsonl", tmp_path / "mail.jsonl", "format=auto",
                               "document_field=body", "summary_field=title", "max_steps=20", "eval_interval=10",
                               "select=rougeL", "max_new_tokens=8", "select_examples=8"))
    ckpt = load_checkpoint(best)
    assert Task.from_dict(ckpt.meta["task"]).format == "summarization" and "val_rougeL" in ckpt.meta


def test_extractive_qa_refuses_lora(tmp_path):
    from tests.train.conftest import write_facts

    train = write_facts(tmp_path / "train.jsonl", 20, 0)
    with pytest.raises(GptkitError, match="LoRA with a span head"):
        finetune(_qa_config(tmp_path, train, train, "lora.rank=4", f"init={_tiny_init(tmp_path)}"))


def _tiny_init(tmp_path, arch="gpt2"):
    from tests.conftest import tiny

    tokenizer = Tokenizer.train_bpe(["The river of Teluk is Jade. What is it?"] * 5, vocab_size=300)
    torch.manual_seed(0)
    model = GPT(tiny(arch, vocab_size=300, block_size=96, n_layer=1, n_head=2, n_embd=16))
    return save_checkpoint(tmp_path / "init", model, tokenizer)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_a_span_head_is_added_to_a_language_model_init(tmp_path, arch):
    from tests.train.conftest import write_facts

    train = write_facts(tmp_path / "train.jsonl", 20, 0)
    init = load_checkpoint(_tiny_init(tmp_path, arch))
    best = finetune(_qa_config(tmp_path, train, train, f"init={init.path}", "max_steps=1", "eval_interval=1",
                               "lr=1e-12", "min_lr=0", "muon_lr=1e-12"))
    tuned = load_checkpoint(best).model
    assert tuned.config.span_head and tuned.span_head is not None
    torch.testing.assert_close(tuned.blocks[0].attn.qkv.weight, init.model.blocks[0].attn.qkv.weight)


def test_prompt_loss_also_trains_on_the_prompts(task_files, tmp_path):
    finetune(_finetune_config(task_files, tmp_path / "completion", "max_steps=1"))
    finetune(_finetune_config(task_files, tmp_path / "all", "max_steps=1", "prompt_loss=true"))
    first = {run: _losses(tmp_path / run)[0] for run in ("completion", "all")}
    assert first["completion"] != pytest.approx(first["all"], rel=1e-3)  # the same step over more targets


def test_a_pretrained_chat_models_conversations_train_in_its_own_template(tmp_path):
    import json

    from tests.data.test_chat import TEMPLATES

    trained = Tokenizer.train_bpe(["say yes say no maybe"] * 20, vocab_size=300,
                                  special_tokens=("<|im_end|>", "<|im_start|>"))
    tokenizer = Tokenizer(trained.backend, "<|im_end|>", chat_template=TEMPLATES["chatml"])
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "init", GPT(ModelConfig(vocab_size=300, block_size=96, n_layer=1, n_head=2,
                                                       n_embd=16)), tokenizer)
    chats = [{"messages": [{"role": "user", "content": "say yes"}, {"role": "assistant", "content": "yes"}]}] * 12
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    from gptkit.config import FinetuneConfig, load_config

    best = finetune(load_config(FinetuneConfig, None, [
        f"data={tmp_path / 'chat.jsonl'}", "format=chat", f"init={tmp_path / 'init'}", f"out_dir={tmp_path / 'run'}",
        "max_steps=1", "val_examples=2", "batch_size=2", "device=cpu", "dtype=fp32"]))
    assert load_checkpoint(best).meta["task"]["chat_template"] == TEMPLATES["chatml"]


def test_max_length_cuts_a_long_windowed_init_to_short_rows(tmp_path):
    import json

    from gptkit.config import FinetuneConfig, load_config

    init = _tiny_init(tmp_path, "llama")  # a 96-token window, trained here in rows of 24
    rows = [{"document": "The river of Teluk is Jade. " * 8, "summary": "Jade"}] * 12
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def config(*extra):
        return load_config(FinetuneConfig, None, [
            f"data={tmp_path / 'docs.jsonl'}", "format=summarization", f"init={init}", "max_steps=1", "val_examples=2",
            "batch_size=2", "device=cpu", "dtype=fp32", *extra])

    best = finetune(config("max_length=24", f"out_dir={tmp_path / 'short'}"))
    meta = load_checkpoint(best).meta
    assert meta["finetune"]["train_truncated"] == 10 and load_checkpoint(best).model.config.block_size == 96
    best = finetune(config("max_length=200", f"out_dir={tmp_path / 'long'}"))  # the context is the other bound
    assert load_checkpoint(best).meta["finetune"]["train_truncated"] == 0
