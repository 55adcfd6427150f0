"""Corpora: where training text comes from.

`builtin:python-docs` is the English reference documentation that ships with
every CPython (`pydoc_data.topics`): real text, no download.
"""

from __future__ import annotations

from typing import Iterator

from .errors import GptkitError

BUILTIN = {"builtin:python-docs"}


def read_documents(source: str) -> Iterator[str]:
    """Yield the documents of a corpus source, one string each."""
    if source == "builtin:python-docs":
        from pydoc_data.topics import topics

        for name in sorted(topics):
            yield topics[name]
        return
    raise GptkitError(f"unknown corpus source {source!r}; built-in sources: {', '.join(sorted(BUILTIN))}")
