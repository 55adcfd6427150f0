import math

import pytest
import torch
import torch.nn as nn

from gptkit import GptkitError, ModelConfig, generate
from gptkit.generate import (
    Decoding,
    beam_search,
)


class Bigram(nn.Module):
    """A hand-made model: the next token depends only on the last one, through a fixed table."""

    def __init__(self, table):
        super().__init__()
        vocab = len(table)
        self.config = ModelConfig(vocab_size=vocab, block_size=16, n_layer=1, n_head=1, n_embd=vocab)
        self.wte = nn.Embedding(vocab, vocab)
        self.wte.weight.data = torch.tensor(table).log()

    @property
    def device(self):
        return self.wte.weight.device

    def hidden_states(self, idx, cache=None, slots=None, lengths=None):
        if cache is not None:  # the model contract: idx is appended to those cache slots
            cache.plan(*idx.shape, slots, idx.device)  # checks the slots have room
            cache.advance(slots, idx.shape[1] if lengths is None else lengths)
        return self.wte(idx)  # the row of log-probabilities after each token

    def logits(self, hidden):
        return hidden


def test_beam_search_finds_the_best_sequence_where_greedy_does_not():
    A, B, C, D, END = range(5)
    model = Bigram([
        [0.01, 0.55, 0.42, 0.01, 0.01],  # after A: B looks best...
        [0.26, 0.25, 0.25, 0.01, 0.23],  # ...but after B nothing is likely
        [0.01, 0.01, 0.01, 0.02, 0.95],  # after C: END, almost surely
        [0.2] * 5,
        [0.2] * 5,
    ])
    assert generate(model, [A], Decoding(2, temperature=0)) == [B, A]  # p = 0.55 * 0.26 = 0.143
    best = beam_search(model, [A], Decoding(2, num_beams=2, stop_ids=(END,)))[0]
    assert best.tokens == [C, END]  # p = 0.42 * 0.95 = 0.399
    assert best.score == pytest.approx(math.log(0.42 * 0.95) / 2)  # length penalty 1: mean log-prob
    assert beam_search(model, [A], Decoding(2, num_beams=1, stop_ids=(END,)))[0].tokens == [B, A]  # width 1 is greedy


@pytest.mark.parametrize("num_beams", [1, 3])
def test_no_repeat_ngram_bans_repeating_the_outputs_own_ngrams(tiny_model, num_beams):
    prompt = [5, 9, 5, 9]  # the prompt's own bigrams stay allowed in the output
    plain = beam_search(tiny_model, prompt, Decoding(30, num_beams=num_beams))[0].tokens
    n_grams = lambda tokens, n: [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    assert len(set(n_grams(plain, 2))) < len(n_grams(plain, 2))  # a random tiny model repeats itself
    for n in (1, 2, 3):
        tokens = beam_search(tiny_model, prompt, Decoding(30, num_beams=num_beams, no_repeat_ngram=n))[0].tokens
        assert len(tokens) == 30 and len(set(n_grams(tokens, n))) == len(n_grams(tokens, n))
    assert beam_search(tiny_model, prompt, Decoding(30, num_beams=num_beams, no_repeat_ngram=0))[0].tokens == plain


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_beams=0), "num_beams must be between 1 and"), (dict(num_beams=100_000), "at most 64"),
    (dict(num_beams=8, no_repeat_ngram=-1), "no_repeat_ngram must be >= 0"),
])
def test_beam_search_refuses_meaningless_settings(tiny_model, kwargs, message):
    with pytest.raises(GptkitError, match=message):
        beam_search(tiny_model, [1, 2, 3], Decoding(4, **kwargs))
