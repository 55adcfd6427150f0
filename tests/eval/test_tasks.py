"""A task's predictions through the engine, scored with sacreBLEU, kept as files beside the scores."""

import json

import pytest
import sacrebleu
import torch

from gptkit import GPT, GptkitError, ModelConfig, Tokenizer
from gptkit.data import Record, Task
from gptkit.eval.tasks import predict, score, write_results
from gptkit.generate import Decoding, generate
from tests.eval.test_metrics import HYPOTHESES, REFERENCES

RECORDS = [Record({"source": f"source {i}", "target": ref}) for i, ref in enumerate(REFERENCES[0])]


def test_task_scores_are_sacrebleus_own_and_are_written_beside_the_predictions(tmp_path):
    task = Task("translation")
    scores = score(task, HYPOTHESES, RECORDS)
    assert scores["bleu"].score == sacrebleu.corpus_bleu(HYPOTHESES, REFERENCES).score
    assert scores["chrf"].score == sacrebleu.corpus_chrf(HYPOTHESES, REFERENCES).score
    out = write_results(tmp_path / "eval", task, RECORDS, HYPOTHESES, scores, {"beams": 4})
    saved = json.loads((out / "scores.json").read_text())
    assert saved["bleu"]["score"] == scores["bleu"].score and saved["bleu"]["signature"] == scores["bleu"].signature
    assert saved["examples"] == 4 and saved["beams"] == 4
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["prediction"] for line in lines] == HYPOTHESES
    assert lines[2] == {"source": "source 2", "target": REFERENCES[0][2], "reference": REFERENCES[0][2],
                        "prediction": HYPOTHESES[2]}


def test_formats_without_a_standard_metric_say_so():
    with pytest.raises(GptkitError, match="no standard metric for chat"):
        score(Task("chat"), ["x"], [Record(messages=({"role": "assistant", "content": "x"},))])


def test_predictions_are_the_engines_greedy_completions_of_the_rendered_prompts():
    tokenizer = Tokenizer.train_bpe(["English: source 1\nGerman: Ein Mann fährt."] * 10, vocab_size=300)
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=300, block_size=48, n_layer=1, n_head=2, n_embd=16)).eval()
    task = Task("translation")
    long = Record({"source": "source 1 " * 40, "target": "x"})  # cut to fit the window with the completion
    predictions = predict(model, tokenizer, task, RECORDS[:3] + [long], Decoding(8, temperature=0), batch_size=2)
    for record, prediction in zip(RECORDS[:3], predictions):
        ids = generate(model, tokenizer.encode(task.prompt(record)),
                       Decoding(8, temperature=0, stop_ids=(tokenizer.eot_id,)))
        assert prediction == tokenizer.decode([i for i in ids if i != tokenizer.eot_id]).strip()
    assert len(tokenizer.encode(task.prompt(long, tokenizer, 40))) <= 40
    with pytest.raises(GptkitError, match="leaves no room for a prompt"):
        predict(model, tokenizer, task, RECORDS, Decoding(48, temperature=0))


def test_qa_and_summaries_are_scored_against_every_reference():
    from gptkit.eval import rouge, squad

    qa = Task("qa")
    records = [Record({"context": "c", "question": "q", "answer": "Paris", "answers": ["Paris", "the city of Paris"]}),
               Record({"context": "c", "question": "q", "answer": "", "answers": []})]
    scores = score(qa, ["city of Paris", ""], records)
    assert scores["exact"].score == 100.0 and set(scores) == {"exact", "f1", "HasAns_exact", "HasAns_f1",
                                                              "NoAns_exact", "NoAns_f1"}
    assert scores["f1"].score == squad(["city of Paris", ""], [["Paris", "the city of Paris"], []])["f1"].score
    summaries = Task("summarization")
    records = [Record({"document": "d", "summary": "budget review", "references": ["budget review", "review moved"]}),
               Record({"document": "d", "summary": "lunch"})]
    scores = score(summaries, ["review moved to friday", "lunch today"], records)
    expected = rouge(["review moved to friday", "lunch today"], [["budget review", "lunch"], ["review moved", "lunch"]])
    assert {k: v.score for k, v in scores.items()} == {k: v.score for k, v in expected.items()}
