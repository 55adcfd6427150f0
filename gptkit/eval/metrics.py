"""Task metrics on plain strings: no model and no torch here, so any prediction file can be scored.

    bleu(hypotheses, references)   # sacreBLEU's corpus BLEU, its standard 13a tokenisation
    chrf(hypotheses, references)   # sacreBLEU's chrF (character n-gram F-score, beta 2)
    rouge(summaries, references)   # ROUGE-1/2/L/Lsum F x 100 (rouge-score, stemming), best reference
    squad(answers, gold_answers)   # SQuAD exact match and F1 (official normalisation), v2.0's split

Each returns a `Score` (or a dict of them): the number and a signature that
records the tokenisation, settings and version, so a reported figure can be
reproduced. `references` is one list of strings per hypothesis set (several
references are allowed); `gold_answers` is a list of answers per question.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import GptkitError

_PUNCTUATION = frozenset(string.punctuation)


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
    _check_lines(name, hypotheses, references)
    metric = sacrebleu.BLEU() if name == "BLEU" else sacrebleu.CHRF()
    return Score(name, metric.corpus_score(hypotheses, references).score, str(metric.get_signature()))


def rouge(predictions: Sequence[str], references: Sequence[Sequence[str]],
          types: Sequence[str] = ("rouge1", "rouge2", "rougeL", "rougeLsum")) -> dict[str, Score]:
    """ROUGE F-measures x 100 through Google's `rouge-score` (Porter stemming on), averaged over examples.

    With several reference sets, each example takes its best-scoring reference. rougeLsum reads
    newlines as sentence breaks (put one sentence per line for summaries of several sentences).
    """
    try:
        from importlib.metadata import version

        from rouge_score import rouge_scorer
    except ImportError as e:
        raise GptkitError("ROUGE needs rouge-score: pip install 'gptkit[eval]'") from e
    predictions, references = list(predictions), [list(r) for r in references]
    _check_lines("ROUGE", predictions, references)
    scorer = rouge_scorer.RougeScorer(list(types), use_stemmer=True)
    totals = dict.fromkeys(types, 0.0)
    for i, prediction in enumerate(predictions):
        best = scorer.score_multi([refs[i] for refs in references], prediction)  # max F over the references
        for name in types:
            totals[name] += best[name].fmeasure
    signature = f"rouge-score {version('rouge-score')}|stemmer:porter|refs:{len(references)}|max-over-refs"
    return {name: Score(name, 100 * total / max(len(predictions), 1), signature) for name, total in totals.items()}


def squad(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> dict[str, Score]:
    """SQuAD exact match and F1 x 100 with the official normalisation, the best over each question's answers.

    A question with no gold answers is unanswerable (SQuAD 2.0): only an empty prediction is right. When
    there are such questions, the scores are also given for the answerable (HasAns_*) and the
    unanswerable (NoAns_*) ones, as the official v2.0 script does.
    """
    predictions, answers = list(predictions), [list(a) for a in answers]
    if len(predictions) != len(answers):
        raise GptkitError(f"SQuAD: {len(predictions)} predictions for {len(answers)} questions; they must match")
    exact, f1 = [], []
    for prediction, golds in zip(predictions, answers):
        golds = [g for g in golds if _normalize_answer(g)] or [""]
        exact.append(max(float(_normalize_answer(prediction) == _normalize_answer(g)) for g in golds))
        f1.append(max(_token_f1(prediction, g) for g in golds))
    signature = "squad-v2.0 normalisation (lowercase, no punctuation, no articles, single spaces)|max-over-answers"
    groups = {"": range(len(predictions))}
    has_answer = [i for i, a in enumerate(answers) if any(_normalize_answer(g) for g in a)]
    if len(has_answer) < len(answers):
        groups["HasAns_"] = has_answer
        groups["NoAns_"] = [i for i in range(len(answers)) if i not in set(has_answer)]
    scores = {}
    for prefix, indices in groups.items():
        for name, values in (("exact", exact), ("f1", f1)):
            picked = [values[i] for i in indices]
            scores[prefix + name] = Score(prefix + name, 100 * sum(picked) / max(len(picked), 1), signature)
    return scores


def _normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lowercase, drop punctuation and the articles a/an/the, collapse spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def _token_f1(prediction: str, gold: str) -> float:
    ours, theirs = _normalize_answer(prediction).split(), _normalize_answer(gold).split()
    if not ours or not theirs:  # an empty side: right only if both are empty (a correct no-answer)
        return float(ours == theirs)
    common = sum((Counter(ours) & Counter(theirs)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(ours), common / len(theirs)
    return 2 * precision * recall / (precision + recall)


def _check_lines(name: str, hypotheses: list, references: list) -> None:
    if not hypotheses or not references or any(len(r) != len(hypotheses) for r in references):
        raise GptkitError(f"{name}: {len(hypotheses)} hypotheses but reference sets of "
                          f"{[len(r) for r in references]} lines; they must match line for line")
