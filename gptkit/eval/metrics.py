"""Task metrics on plain strings: no model and no torch here, so any prediction file can be scored.

    bleu(hypotheses, references)   # sacreBLEU's corpus BLEU, its standard 13a tokenisation
    chrf(hypotheses, references)   # sacreBLEU's chrF (character n-gram F-score, beta 2)

Each returns a `Score`: the number and sacreBLEU's signature, which records the
tokenisation, smoothing and version, so a reported figure can be reproduced.
`references` is one list of strings per hypothesis set (several references are allowed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import GptkitError


@dataclass(frozen=True)
class Score:
    name: str
    score: float
    signature: str

    def __str__(self) -> str:
        return f"{self.name} {self.score:.2f}  ({self.signature})"


def bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> Score:
    return _corpus_score("BLEU", hypotheses, references)


def chrf(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> Score:
    return _corpus_score("chrF", hypotheses, references)


def _corpus_score(name: str, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> Score:
    try:
        import sacrebleu
    except ImportError as e:
        raise GptkitError(f"{name} needs sacrebleu: pip install 'gptkit[eval]'") from e
    hypotheses = list(hypotheses)
    references = [list(r) for r in references]
    if not hypotheses or any(len(r) != len(hypotheses) for r in references) or not references:
        raise GptkitError(f"{name}: {len(hypotheses)} hypotheses but reference sets of "
                          f"{[len(r) for r in references]} lines; they must match line for line")
    metric = sacrebleu.BLEU() if name == "BLEU" else sacrebleu.CHRF()
    return Score(name, metric.corpus_score(hypotheses, references).score, str(metric.get_signature()))
