"""Decoding: one frozen value for every setting of a generation, checked once, errors naming the field."""

import dataclasses

import pytest

from gptkit import GptkitError
from gptkit.generate import MAX_BEAMS, Decoding, Sampling


@pytest.mark.parametrize("values, message", [
    (dict(max_new_tokens=0), "max_new_tokens must be >= 1, got 0"),
    (dict(temperature=-0.5), "temperature must be >= 0"),
    (dict(temperature=float("nan")), "temperature must be >= 0"),
    (dict(top_k=0), "top_k must be >= 1"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
    (dict(min_p=-0.1), r"min_p must be in \[0, 1\]"),
    (dict(repetition_penalty=0), r"repetition_penalty must be in \[0.01, 100\]"),
    (dict(repetition_penalty=1e-300), r"repetition_penalty must be in \[0.01, 100\]"),
    (dict(logit_bias={3: 101.0}), "logit_bias maps token ids"),
    (dict(logit_bias=((-1, 1.0),)), "logit_bias maps token ids"),
    (dict(logit_bias={3: 1.0}, num_beams=2), "logit_bias applies to sampling"),
    (dict(num_beams=0), "num_beams must be between 1 and 64"),
    (dict(num_beams=MAX_BEAMS + 1), "num_beams must be between 1 and 64"),
    (dict(no_repeat_ngram=-1), "no_repeat_ngram must be >= 0"),
    (dict(seed=-1), "seed must be an integer in"),
    (dict(seed=2**64), "seed must be an integer in"),
    (dict(length_penalty=float("inf")), "length_penalty must be in"),
    (dict(stop=("ok", 3)), "stop must be a list of strings"),
    (dict(stop_ids=(-1,)), "stop_ids must be token ids"),
    (dict(max_new_tokens=2.5), "max_new_tokens must be an integer"),
    (dict(truncate_prompt="yes"), "truncate_prompt must be true or false"),
])
def test_bad_values_are_refused_naming_the_field(values, message):
    with pytest.raises(GptkitError, match=f"decoding: {message}"):
        Decoding(**values)


def test_a_decoding_is_a_frozen_value_whose_sampling_matches_its_fields():
    decoding = Decoding(20, temperature=0.7, top_k=40, top_p=0.9, min_p=0.05, repetition_penalty=1.2,
                        stop=["\n\n"], seed=3)
    assert decoding.stop == ("\n\n",)  # a list is taken, a tuple is kept
    assert decoding.sampling == Sampling(0.7, 40, 0.9, 0.05, 1.2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoding.seed = 4
    assert dataclasses.replace(decoding, seed=4).seed == 4 and decoding.seed == 3
    assert Decoding(temperature=0).greedy and not decoding.greedy


def test_beam_search_is_chosen_by_beams_or_an_ngram_ban():
    assert not Decoding().beam
    assert Decoding(num_beams=4).beam and Decoding(no_repeat_ngram=3).beam
