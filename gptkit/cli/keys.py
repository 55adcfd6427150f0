"""Every key of a config dataclass with its type, default and the comment beside it in the code: what
`train --keys` (and finetune, prepare) prints and what the reference page lists, from one source."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re


def config_keys(cls, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, meaning) for each field; a nested dataclass (a [section]) gives `section.key`."""
    comments = _comments(cls)
    rows = []
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(field.default_factory):
            rows += config_keys(field.default_factory, f"{prefix}{field.name}.")
            continue
        default = field.default if field.default is not dataclasses.MISSING else (
            field.default_factory() if field.default_factory is not dataclasses.MISSING else "")
        rows.append((f"{prefix}{field.name}", str(field.type), repr(default), comments.get(field.name, "")))
    return rows


def _comments(cls) -> dict[str, str]:
    found = {}
    for line in inspect.getsource(cls).splitlines():
        match = re.match(r"\s+(\w+): [^=]+=.*?#\s*(.+)$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def add_keys_flag(p, config_class: str) -> None:
    """`--keys`: print every key=value setting of the command's config (a lazy import: --help stays fast)."""
    p.add_argument("--keys", action=_PrintKeys, nargs=0, config_class=config_class,
                   help="list every key=value setting with its default and meaning, then exit")


class _PrintKeys(argparse.Action):
    def __init__(self, *args, config_class: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.config_class = config_class

    def __call__(self, parser, namespace, values, option_string=None):
        module, name = self.config_class.rsplit(".", 1)
        cls = getattr(__import__(module, fromlist=[name]), name)
        rows = config_keys(cls)
        width = max(len(key) for key, *_ in rows)
        for key, _type, default, meaning in rows:
            print(f"{key:<{width}}  {default:<12} {meaning}".rstrip())
        parser.exit()
