"""The helpers every command uses to read what a user gives it and to guard what it writes."""

import pytest

from gptkit import GptkitError
from gptkit.cli.common import check_output, choices, read_text_file, utf8
from gptkit.config import TrainConfig


def test_text_files_that_are_not_text_are_one_line_errors(tmp_path):
    (tmp_path / "ok.txt").write_text("grüße\n", encoding="utf-8")
    assert read_text_file(tmp_path / "ok.txt", "--input") == "grüße\n"
    (tmp_path / "latin1.txt").write_bytes("grüße".encode("latin-1"))
    with pytest.raises(GptkitError, match="not UTF-8 text"):
        read_text_file(tmp_path / "latin1.txt", "--input")
    with pytest.raises(GptkitError, match="--input .* is a directory"):
        read_text_file(tmp_path, "--input")
    with pytest.raises(GptkitError, match="--input .*missing.txt: no such file"):
        read_text_file(tmp_path / "missing.txt", "--input")


def test_command_line_text_must_be_utf8():
    assert utf8("hello", "--prompt") == "hello"
    with pytest.raises(GptkitError, match="--prompt is not valid UTF-8"):
        utf8("bad \udcff byte", "--prompt")


def test_outputs_are_replaced_only_with_force_and_never_over_the_input(tmp_path):
    check_output(str(tmp_path / "new"), force=False)
    with pytest.raises(GptkitError, match="already exists; pass --force"):
        check_output(str(tmp_path), force=False)
    check_output(str(tmp_path), force=True)
    with pytest.raises(GptkitError, match="is the input of this command"):
        check_output(str(tmp_path), force=True, source=str(tmp_path))


def test_choices_are_a_literal_fields_values():
    assert choices(TrainConfig, "optimizer") == ["adamw", "muon"]
