"""What task files are read into and fine-tuning trains on: records (text) and examples (token ids)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Record:
    """One example as text: `fields` of its format (or chat `messages`)."""

    fields: dict = field(default_factory=dict)
    messages: tuple[dict, ...] = ()


@dataclass(frozen=True)
class Example:
    """Token ids and, per id, whether the model learns to predict it (the completion) or not (the prompt).

    `labels`, when set, are the row's labels instead (one per input position: len(ids) - 1), e.g. spans.
    """

    ids: list[int]
    targets: list[bool]
    truncated: bool = False
    labels: list[int] | None = None


@dataclass
class TaskStats:
    """What reading a task file found: records kept, lines skipped as malformed (and the first reason)."""

    records: int = 0
    malformed: int = 0
    first_problem: str = ""

    def skip(self, where: str, why: str) -> None:
        self.malformed += 1
        self.first_problem = self.first_problem or f"{where}: {why}"
