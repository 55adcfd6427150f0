"""`--keys`: every key=value setting of a command's config, with its default and the comment beside it."""

import pytest

from gptkit.cli import main
from gptkit.cli.keys import config_keys
from gptkit.config import RunConfig


def test_config_keys_reads_nested_sections_defaults_and_comments():
    keys = {key: (default, meaning) for key, _, default, meaning in config_keys(RunConfig)}
    assert keys["model.vocab_size"] == ("50257", "token ids are in [0, vocab_size)")
    assert "train.lr" in keys and all("." in key for key in keys)


def test_keys_lists_every_setting_with_its_meaning(cli, capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", "--keys"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "train.lr" in out and "model.n_layer" in out and "max_steps" in out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--keys" in capsys.readouterr().out
