"""The application commands' bad inputs, as a new user types them: each is one `error:` line (exit 2), no
traceback, found before the work starts, and nothing of the user's is overwritten."""

import hashlib
import json
from pathlib import Path

import pytest

from gptkit import GPT, ModelConfig, save_checkpoint
from gptkit.cli import main

LONG_CONTEXT = "The river floods every spring. " * 3500  # ~100 KB: too long to be a file name


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, translation_files, qa_checkpoint, encoder_checkpoint, bpe_tokenizer):
    """Task checkpoints, an encoder and its index, a corpus, and a user's own files."""
    from gptkit.config import FinetuneConfig, load_config
    from gptkit.train import finetune

    root = tmp_path_factory.mktemp("faults")
    d = translation_files
    translator = finetune(load_config(FinetuneConfig, None, [
        f"data={d}/train.{{lang}}", f"tokenizer={d}/tokenizer.json", "val_examples=5", f"out_dir={root}/mt",
        "n_layer=1", "n_embd=16", "n_head=2", "block_size=32", "batch_size=8", "max_steps=2", "eval_interval=2",
        "device=cpu", "dtype=fp32"]))
    rows = [{"body": f"Memo {i}: the {w} report is due.", "subject": f"{w} report"}
            for i, w in enumerate(["budget", "travel", "sales"] * 6)]
    (root / "mail.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summarizer = finetune(load_config(FinetuneConfig, None, [
        f"data={root / 'mail.jsonl'}", "val_examples=3", f"out_dir={root}/sum", "document_field=body",
        "summary_field=subject", "n_layer=1", "n_head=2", "n_embd=16", "block_size=64", "batch_size=4",
        "max_steps=2", "eval_interval=2", "dtype=fp32", "device=cpu", "task.vocab_size=300"]))
    (root / "docs.txt").write_text("Cats and dogs are pets.\n\nRivers flood in spring.\n\nYeast makes bread rise.\n")
    assert main(["index", str(root / "docs.txt"), "--out", str(root / "idx"), "--encoder", str(encoder_checkpoint),
                 "--chunk-tokens", "8", "--overlap", "2"]) == 0
    save_checkpoint(root / "ck", GPT(ModelConfig(vocab_size=320, block_size=32, n_layer=1, n_head=2, n_embd=64)),
                    bpe_tokenizer)
    (root / "train.jsonl").write_text("".join(json.dumps({"prompt": f"text number {i}", "completion": " rivers"})
                                              + "\n" for i in range(20)))
    (root / "empty.txt").write_text("")
    (root / "bin.bin").write_bytes(bytes(range(256)) + b"\xff\xfe" * 22)
    (root / "wrong.csv").write_text("foo,bar\n1,2\n3,4\n")
    (root / "user.json").write_text('{"the user": "wrote this"}\n')
    (root / "notes.txt").write_text("the user's own file\n")
    (root / "folder").mkdir()
    return {"root": root, "mt": translator, "sum": summarizer, "qa": qa_checkpoint[0], "enc": encoder_checkpoint,
            "idx": root / "idx", "ck": root / "ck"}


CASES = [
    (["grow", "{ck}", "{root}/g", "--width-factor", "1000"], "needs about"),
    (["grow", "{ck}", "{root}/g", "--n-layer", "100000"], "GiB available"),
    (["init", "{root}/huge", "--config", "tiny", "n_layer=2000", "n_embd=4096", "n_head=32"], "GiB available"),
    (["translate", "{mt}", "cat", "--beams", "100000"], "--beams must be between 1 and"),
    (["translate", "{mt}", "a b", "--no-repeat-ngram", "-1"], "--no-repeat-ngram must be at least 0"),
    (["summarize", "{sum}", "the budget memo", "--no-repeat-ngram", "-1"], "--no-repeat-ngram must be at least 0"),
    (["translate", "{mt}", "a b", "--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
    (["summarize", "{sum}", "the budget memo", "--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
    (["translate", "{mt}", ""], "nothing to translate"),
    (["summarize", "{sum}", ""], "nothing to summarize"),
    (["summarize", "{sum}", "--input", "{root}/empty.txt"], "nothing to summarize"),
    (["ask", "{qa}", "--context", "{root}/folder", "Where?"], "is a directory"),
    (["ask", "{qa}", "--index", "{idx}", "-k", "0", "What floods?"], "-k must be at least 1"),
    (["ask", "{qa}", "--index", "{idx}", "--max-tokens", "0", "What floods?"], "--max-tokens must be at least 1"),
    (["finetune", "data={root}/train.jsonl", "out_dir={ck}"], "is a checkpoint"),
    (["finetune", "data={root}/train.jsonl", "out_dir={idx}"], "is a search index"),
    (["finetune", "data={root}/train.jsonl", "out_dir={root}/notes.txt"], "notes.txt is a file"),
    (["finetune", "data={root}/folder", "out_dir={root}/run"], "folder is a directory"),
    (["finetune", "data={root}/wrong.csv", "out_dir={root}/run"], "no JSON objects in it"),
    (["finetune", "data={root}/train.jsonl", "format=completion", "init={ck}", "lora.rank=100000",
      "out_dir={root}/run"], "lora.rank 100000 is above"),
    (["search", "{idx}", "rivers", "-k", "0"], "-k must be at least 1"),
    (["search", "{idx}", "rivers", "-k", "-3"], "-k must be at least 1"),
    (["search", "{idx}", "  "], "the query is empty"),
    (["index", "{root}/docs.txt", "--out", "{root}/i2", "--chunk-tokens", "-1"], "--chunk-tokens must be >= 0"),
    (["index", "{root}/bin.bin", "--out", "{root}/i2"], "bin.bin is a binary file"),
    (["audit", "{root}/train.jsonl", "--ngram", "0"], "--ngram must be at least 1"),
    (["audit", "{root}/empty.txt"], "no texts in it"),
    (["audit", "{root}/train.jsonl", "--model", "{root}/missing"], "checkpoint not found"),
    (["audit", "{root}/train.jsonl", "--out", "{root}/folder"], "is a directory"),
    (["audit", "{root}/train.jsonl", "--eval", "{root}/train.jsonl", "--out", "{root}/user.json"], "pass --force"),
    (["eval", "{ck}", "--text", "{root}/notes.txt", "--out", "{root}/user.json"], "pass --force"),
    (["eval", "{ck}", "--text", "{root}/notes.txt", "--out", "{root}/folder"], "is a directory"),
    (["embed", "{enc}", ""], "an empty text has no embedding"),
    (["embed", "{enc}", "hello", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["embed", "{enc}", "hello", "--max-tokens", "0"], "--max-tokens must be at least 1"),
    (["embed", "{enc}", "hello", "--max-tokens", "-3"], "--max-tokens must be at least 1"),
    (["embed", "{enc}", "hello", "--out", "{root}/user.json"], "pass --force"),
]


@pytest.mark.parametrize("args, match", CASES, ids=[" ".join(a[:1] + a[2:4]) for a, _ in CASES])
def test_an_application_mistake_is_one_line_and_changes_nothing(workspace, capsys, args, match):
    root = workspace["root"]
    before = _snapshot(root)
    code = main([a.format(**workspace) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err and err[-1].startswith("error: ") and match in err[-1], err
    assert len(err[-1]) < 400  # one line that says what is wrong, not the input echoed back
    assert _snapshot(root) == before


def test_a_context_too_long_to_be_a_path_is_the_text_itself(workspace, capsys):
    code = main(["ask", str(workspace["qa"]), "--context", LONG_CONTEXT, "When does the river flood?"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "File name too long" not in captured.err and captured.out.strip()


def test_index_zero_chunk_tokens_keeps_each_document_whole(workspace, tmp_path):
    assert main(["index", str(workspace["root"] / "docs.txt"), "--out", str(tmp_path / "i"), "--chunk-tokens",
                 "0"]) == 0
    assert len((tmp_path / "i" / "chunks.jsonl").read_text().splitlines()) == 3
