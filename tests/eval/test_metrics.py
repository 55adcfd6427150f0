"""Task metrics equal sacreBLEU's own scores, carry its signature, and stay free of torch."""

import ast
from pathlib import Path

import pytest
import sacrebleu

from gptkit import GptkitError
from gptkit.eval import bleu, chrf, rouge, squad

HYPOTHESES = ["Ein Mann fährt mit dem Fahrrad die Straße entlang.", "Zwei Hunde spielen im Schnee.",
              "Eine Frau liest ein Buch, im Park.", "Kinder rennen am Strand"]
REFERENCES = [["Ein Mann fährt auf einem Fahrrad die Straße hinunter.", "Zwei Hunde spielen im Schnee.",
               "Eine Frau liest im Park ein Buch.", "Kinder laufen am Strand."]]


def test_bleu_and_chrf_are_sacrebleus_own():
    ours = bleu(HYPOTHESES, REFERENCES)
    assert ours.score == sacrebleu.corpus_bleu(HYPOTHESES, REFERENCES).score and 0 < ours.score < 100
    assert "tok:13a" in ours.signature and "version:" in ours.signature
    assert chrf(HYPOTHESES, REFERENCES).score == sacrebleu.corpus_chrf(HYPOTHESES, REFERENCES).score
    assert bleu(REFERENCES[0], REFERENCES).score == pytest.approx(100)
    assert str(ours).startswith(f"BLEU {ours.score:.2f}")


def test_mismatched_lines_are_a_clear_error():
    with pytest.raises(GptkitError, match="3 hypotheses but reference sets of \\[4\\] lines"):
        bleu(HYPOTHESES[:3], REFERENCES)


def test_metric_code_imports_no_torch():
    tree = ast.parse((Path(__file__).parents[2] / "gptkit" / "eval" / "metrics.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert "torch" not in imported and "numpy" not in imported


def test_rouge_is_rouge_scores_own_with_stemming_and_the_best_reference():
    from rouge_score import rouge_scorer

    summaries = ["the cats sat on the mat", "a dog barked loudly at night"]
    first = ["the cat sat on a mat", "dogs bark"]
    second = ["cats were sitting", "a dog barked at night"]
    scores = rouge(summaries, [first, second])
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    for name in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        best = [max(scorer.score(ref, s)[name].fmeasure for ref in refs)
                for s, refs in zip(summaries, zip(first, second))]
        assert scores[name].score == pytest.approx(100 * sum(best) / 2)
        assert "stemmer:porter" in scores[name].signature and "rouge-score" in scores[name].signature
    assert rouge(["the cats"], [["the cat"]])["rouge1"].score == pytest.approx(100)  # stemming on
    with pytest.raises(GptkitError, match="2 hypotheses but reference sets of \\[1\\] lines"):
        rouge(summaries, [["x"]])


def test_squad_scores_use_the_official_normalisation_and_the_best_answer():
    scores = squad(["The Cat!", "the big red car", "Paris"], [["cat"], ["red car", "a red car"], ["London"]])
    assert scores["exact"].score == pytest.approx(100 / 3)  # "The Cat!" matches "cat"
    # "big red car" vs "red car": precision 2/3, recall 1, F1 0.8
    assert scores["f1"].score == pytest.approx(100 * (1 + 0.8 + 0) / 3)
    assert set(scores) == {"exact", "f1"}


def test_squad_v2_scores_unanswerable_questions_and_splits_them_out():
    scores = squad(["", "Paris", "no idea", "Rome"], [[], [], ["Rome"], ["Rome", "rome city"]])
    assert scores["exact"].score == pytest.approx(50) and scores["f1"].score == pytest.approx(50)
    assert scores["NoAns_exact"].score == pytest.approx(50)  # the empty answer is right, "Paris" is not
    assert scores["HasAns_exact"].score == pytest.approx(50) and scores["HasAns_f1"].score == pytest.approx(50)
    with pytest.raises(GptkitError, match="2 predictions for 1 questions"):
        squad(["a", "b"], [["a"]])
