"""Shared flag groups become library objects once: a Decoding from the decoding flags, errors naming flags."""

import argparse

import pytest

from gptkit import GptkitError
from gptkit.cli.flags import add_decoding_flags, add_task_flags, check_decoding_flags, decoding_from
from gptkit.generate import Decoding


def _parse(*argv, text=True):
    parser = argparse.ArgumentParser()
    add_decoding_flags(parser, temperature=0.8, max_new_tokens=100, text=text)
    return parser.parse_args(argv)


def test_the_decoding_flags_become_one_decoding():
    args = _parse("--temperature", "0.7", "--top-k", "40", "--top-p", "0.9", "--min-p", "0.05", "--seed", "3",
                  "--repetition-penalty", "1.2", "--stop", "\n\n", "--stop", "END", "--truncate")
    assert decoding_from(args, 1) == Decoding(100, 0.7, 40, 0.9, 0.05, 1.2, stop=("\n\n", "END"), seed=3,
                                              truncate_prompt=True)
    beams = _parse("--beams", "4", "--length-penalty", "0.6", "--no-repeat-ngram", "3", "--max-new-tokens", "9")
    assert decoding_from(beams, 1) == Decoding(9, 0.8, num_beams=4, length_penalty=0.6, no_repeat_ngram=3)


def test_a_task_command_defaults_to_greedy_and_half_the_context():
    parser = argparse.ArgumentParser()
    add_task_flags(parser, beams=4, no_repeat_ngram=3)
    args = parser.parse_args([])
    assert decoding_from(args, 64) == Decoding(64, temperature=0, num_beams=4, no_repeat_ngram=3)


@pytest.mark.parametrize("argv, message", [
    (("--temperature", "-1"), "--temperature must be >= 0"),
    (("--top-p", "2"), r"--top-p must be in \(0, 1\]"),
    (("--beams", "100"), "--beams must be between 1 and 64"),
    (("--seed", "-2"), "--seed must be an integer in"),
])
def test_bad_flag_values_are_errors_that_name_the_flag(argv, message):
    with pytest.raises(GptkitError, match=f"^{message}"):
        decoding_from(_parse(*argv), 10)


def test_counting_flags_are_checked_before_a_checkpoint_loads():
    parser = argparse.ArgumentParser()
    add_task_flags(parser)
    for argv, message in ((["--batch-size", "0"], "--batch-size must be at least 1"),
                          (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1")):
        with pytest.raises(GptkitError, match=message):
            check_decoding_flags(parser.parse_args(argv))
