"""Helpers the command modules share: reading user text and files, guarding outputs, --help choices."""

from __future__ import annotations

import typing
from pathlib import Path

from ..errors import GptkitError


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


def choices(cls: type, name: str) -> list[str]:
    """The allowed values of a Literal config field, for --help."""
    return list(typing.get_args(typing.get_type_hints(cls)[name]))
