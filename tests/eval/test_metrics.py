"""Task metrics equal sacreBLEU's own scores, carry its signature, and stay free of torch."""

import ast
from pathlib import Path

import pytest
import sacrebleu

from gptkit import GptkitError
from gptkit.eval import bleu, chrf

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
