import json

import pytest

from tests.train.conftest import write_facts


@pytest.fixture(scope="module")
def summary_checkpoint(tmp_path_factory):
    from gptkit.config import FinetuneConfig, load_config
    from gptkit.train import finetune

    tmp = tmp_path_factory.mktemp("sum")
    rows = [{"body": f"Memo {i}: the {w} report is due on day {i % 7}.", "subject": f"{w} report"}
            for i, w in enumerate(["budget", "travel", "sales"] * 10)]
    (tmp / "mail.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = load_config(FinetuneConfig, None, [
        f"data={tmp / 'mail.jsonl'}", "val_examples=5", f"out_dir={tmp / 'run'}", "document_field=body",
        "summary_field=subject", "n_layer=1", "n_head=2", "n_embd=32", "block_size=64", "batch_size=8",
        "max_steps=4", "eval_interval=4", "dtype=fp32", "device=cpu", "task.vocab_size=300"])
    return finetune(config)


def test_ask_prints_a_span_of_the_context_with_its_place(cli, qa_checkpoint, tmp_path):
    ckpt, _ = qa_checkpoint
    context = "The river of Teluk is Jade. The king of Pym is Amber."
    out = cli("ask", ckpt, "--context", context, "What is the king of Pym?", "--null-threshold", "1e9", "--json")
    answer = json.loads(out.out)
    assert answer["answer"] and context[answer["start"] : answer["end"]] == answer["answer"]
    (tmp_path / "context.txt").write_text(context)
    out = cli("ask", ckpt, "--context", tmp_path / "context.txt", "What is the river of Teluk?",
              "--null-threshold=-1e9")
    assert out.out == "(no answer in the context)\n"


def test_eval_scores_qa_with_squad_metrics(cli, qa_checkpoint, tmp_path):
    ckpt, train = qa_checkpoint
    out = cli("eval", ckpt, "--task", train, "--limit", "12", "--out", tmp_path / "eval")
    assert "exact" in out.out and "f1" in out.out and "HasAns_exact" in out.out
    scores = json.loads((tmp_path / "eval" / "scores.json").read_text())
    assert scores["examples"] == 12 and 0 <= scores["f1"]["score"] <= 100
    lines = (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 12 and "prediction" in json.loads(lines[0])


def test_summarize_prints_one_summary_per_document(cli, summary_checkpoint, tmp_path):
    out = cli("summarize", summary_checkpoint, "Memo 3: the sales report is due on day 3.", "Memo 9: budget.",
              "--max-new-tokens", "6")
    assert len(out.out.splitlines()) == 2
    (tmp_path / "doc.txt").write_text("Memo 4: the travel report\nis due on day 4.\n")
    out = cli("summarize", summary_checkpoint, "--input", tmp_path / "doc.txt", "--max-new-tokens", "6",
              "--beams", "2", "--no-repeat-ngram", "2")
    assert len(out.out.splitlines()) == 1


def test_task_commands_refuse_the_wrong_kind_of_checkpoint(cli, qa_checkpoint, summary_checkpoint):
    ckpt, _ = qa_checkpoint
    err = cli("summarize", ckpt, "some text", code=2).err
    assert err.startswith("error: ") and "not summarization" in err and len(err.splitlines()) == 1
    err = cli("ask", summary_checkpoint, "--context", "x", "y?", code=2).err
    assert "needs a qa checkpoint" in err and len(err.splitlines()) == 1
    err = cli("ask", ckpt, "--context", "  ", "y?", code=2).err
    assert "non-empty --context" in err


def test_audit_reports_contamination_duplicates_and_the_bias_probe(cli, qa_checkpoint, tmp_path):
    ckpt, train = qa_checkpoint
    evaluation = write_facts(tmp_path / "eval.jsonl", 20, 0)  # the same seed: the same texts as training
    out = cli("audit", train, "--eval", evaluation, "--ngram", "8", "--model", ckpt, "--out", tmp_path / "r.json")
    assert "contamination: 20 of 20 eval texts (100.0%)" in out.out
    assert "bias probe" in out.out and "gender" in out.out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["train"]["texts"] == 60 and report["contamination"]["contaminated"] == 20
    assert {r["group"] for r in report["bias_probe"]} >= {"gender", "religion"}
    err = cli("audit", tmp_path / "missing.jsonl", code=2).err
    assert "missing.jsonl" in err and len(err.splitlines()) == 1
