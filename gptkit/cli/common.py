"""Helpers the command modules share: reading user text and files, guarding outputs, --help choices."""

from __future__ import annotations

import json
import typing
from pathlib import Path

from ..errors import GptkitError
from ..files import atomic_write_text, check_parent


def read_text_file(path: Path, flag: str) -> str:
    """A UTF-8 text file named by `flag`; a directory, a missing file or other bytes are one-line errors."""
    if path.is_dir():
        raise GptkitError(f"{flag} {path} is a directory; give a text file")
    if not path.is_file():
        raise GptkitError(f"{flag} {path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise GptkitError(f"{path} is not UTF-8 text (byte {e.start}); give a text file") from e


def file_or_text(value: str, flag: str) -> str:
    """A flag that takes a file or the text itself: an existing file is read, a directory refused, and a value
    that names neither (or cannot be a path at all: too long, several lines) is the text."""
    if "\n" not in value and "\0" not in value:
        path = Path(value)
        try:
            if path.is_dir():
                raise GptkitError(f"{flag} {value} is a directory; give a text file, or the text itself")
            if path.is_file():
                return read_text_file(path, flag)
        except OSError:  # e.g. a name too long for the file system: it is text
            pass
    return utf8(value, flag)


def utf8(text: str, what: str) -> str:
    """Text from the command line; bytes that are not UTF-8 arrive as lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise GptkitError(f"{what} is not valid UTF-8 (at character {e.start})") from e
    return text


def ask(prompt: str) -> str:
    try:
        return input(prompt)
    except (EOFError, KeyboardInterrupt):
        return ""


def check_output(out: str, force: bool, source: str | None = None) -> None:
    """An existing output is replaced only with --force, and never when it is the command's own input."""
    out_path = Path(out)
    if source is not None and out_path.resolve() == Path(source).resolve():
        raise GptkitError(f"{out} is the input of this command; write the output somewhere else")
    if (out_path.exists() or out_path.is_symlink()) and not force:
        raise GptkitError(f"{out} already exists; pass --force to replace it")


def check_out_file(out: str | None, force: bool) -> None:
    """Before any work starts: `--out` names a file to write; an existing file is replaced only with --force."""
    if out is None:
        return
    path = Path(out)
    if path.is_dir():
        raise GptkitError(f"--out {out} is a directory; give a file name, e.g. {Path(out) / 'report.json'}")
    check_parent(path)
    if path.exists() and not force:
        raise GptkitError(f"{out} already exists; pass --force to replace it")


def write_json(out: str, data) -> None:
    """A JSON report, written atomically (readers never see half of it)."""
    atomic_write_text(out, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def choices(cls: type, name: str) -> list[str]:
    """The allowed values of a Literal config field, for --help."""
    return list(typing.get_args(typing.get_type_hints(cls)[name]))
