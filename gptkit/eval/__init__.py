"""Evaluation: how well a model predicts a text (perplexity, bits per byte), and task metrics (BLEU, chrF)."""

from .metrics import Score, bleu, chrf
from .perplexity import Perplexity, perplexity

__all__ = ["Perplexity", "Score", "bleu", "chrf", "perplexity"]
