"""Evaluation: how well a model predicts a text (perplexity, bits per byte), task metrics (BLEU, chrF, ROUGE,
SQuAD EM/F1), and a fine-tuned model run on a task's examples (`tasks`)."""

from .metrics import Score, bleu, chrf, rouge, squad
from .perplexity import Perplexity, perplexity

__all__ = ["Perplexity", "Score", "bleu", "chrf", "perplexity", "rouge", "squad"]
