"""Evaluation: how well a model predicts a text (perplexity, bits per byte)."""

from .perplexity import Perplexity, perplexity

__all__ = ["Perplexity", "perplexity"]
