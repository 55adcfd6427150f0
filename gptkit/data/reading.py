"""Task files into records: JSON lines, JSON arrays, SQuAD JSON, or aligned text files (a path with {lang}).

    task, records, stats = read_records("train.jsonl", Task("auto"))   # the task gets the format found
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from ..errors import GptkitError
from .formats import FORMATS, aligned_format
from .records import Record, TaskStats
from .tasks import Task


def read_records(path: str | Path, task: Task, on_malformed: str = "skip") -> tuple[Task, list[Record], TaskStats]:
    """The records of a task file (with `auto`, the task gets the format found), and what reading found."""
    path = str(path)
    stats = TaskStats()
    if "{lang}" in path:
        aligned = aligned_format()
        if task.format not in ("auto", aligned.name):
            raise GptkitError(f"{path}: a {{lang}} path holds aligned {aligned.name} files, not {task.format} data")
        task = task.with_format(aligned.name)
        records = list(_aligned(path, task, stats, on_malformed))
    else:
        rows = list(_json_rows(Path(path), stats, on_malformed))
        task = task.with_format(task.format if task.format != "auto" else _guess_format(path, rows, task, stats))
        records = [r for where, row in rows if (r := _record(row, task, where, stats, on_malformed)) is not None]
    stats.records = len(records)
    if not records:
        found = f" ({stats.malformed} malformed; first: {stats.first_problem})" if stats.malformed else ""
        raise GptkitError(f"{path}: no usable {task.format} examples{found}")
    return task, records, stats


def _record(row: object, task: Task, where: str, stats: TaskStats, on_malformed: str) -> Record | None:
    spec = task.spec
    if isinstance(row, dict):
        row = spec.normalize(row, task)
    problem = spec.problem(row)
    if problem:
        _malformed(stats, where, problem, on_malformed)
        return None
    return spec.record(row)


def _open_text(path: Path):
    if path.is_dir():
        raise GptkitError(f"{path} is a directory; give a file of examples (JSON lines, or aligned text files as "
                          f"train.{{lang}})")
    if not path.is_file():
        raise GptkitError(f"{path}: no such file")
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def _lines(path: Path) -> list[str]:
    try:
        with _open_text(path) as f:
            return f.read().split("\n")
    except (UnicodeDecodeError, OSError, EOFError) as e:
        raise GptkitError(f"{path}: not readable as UTF-8 text ({e})") from e


def _aligned(pattern: str, task: Task, stats: TaskStats, on_malformed: str) -> Iterator[Record]:
    languages = task.translation
    source_path, target_path = (Path(pattern.replace("{lang}", lang))
                                for lang in (languages.source_lang, languages.target_lang))
    sources, targets = _lines(source_path), _lines(target_path)
    for lines in (sources, targets):
        if lines and lines[-1] == "":
            lines.pop()  # the newline that ends the last line
    if len(sources) != len(targets):
        raise GptkitError(f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}: "
                          f"aligned files must translate line by line")
    source_field, target_field = task.spec.fields
    for number, (source, target) in enumerate(zip(sources, targets), 1):
        if source.strip() and target.strip():
            yield Record({source_field: source.strip(), target_field: target.strip()})
        else:
            _malformed(stats, f"{source_path.name} line {number}", "an empty side", on_malformed)


def _json_rows(path: Path, stats: TaskStats, on_malformed: str) -> Iterator[tuple[str, object]]:
    text = "\n".join(_lines(path))
    if path.name.removesuffix(".gz").endswith(".json"):
        yield from _json_file_rows(path, text, stats, on_malformed)
        return
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield f"{path.name} line {number}", json.loads(line)
        except ValueError as e:
            _malformed(stats, f"{path.name} line {number}", f"not JSON ({e})", on_malformed)


def _json_file_rows(path: Path, text: str, stats: TaskStats, on_malformed: str) -> Iterator[tuple[str, object]]:
    try:
        rows = json.loads(text)
    except ValueError as e:
        raise GptkitError(f"{path}: not valid JSON ({e}); a .json file holds one list of examples") from e
    if isinstance(rows, dict) and isinstance(rows.get("data"), list):  # SQuAD: articles > paragraphs > qas
        yield from _squad_rows(path, rows["data"], stats, on_malformed)
        return
    if not isinstance(rows, list):
        raise GptkitError(f"{path}: a .json file must hold a list of examples (or use JSONL, one per line)")
    yield from ((f"{path.name} item {i}", row) for i, row in enumerate(rows, 1))


def _squad_rows(path: Path, articles: list, stats: TaskStats, on_malformed: str) -> Iterator[tuple[str, dict]]:
    """One {"id", "context", "question", "answers", "is_impossible"} row per SQuAD question."""
    for a, article in enumerate(articles, 1):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            _malformed(stats, f"{path.name} article {a}", "no list of paragraphs", on_malformed)
            continue
        for p, paragraph in enumerate(paragraphs, 1):
            qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
            if not isinstance(qas, list):
                _malformed(stats, f"{path.name} article {a} paragraph {p}", "no list of qas", on_malformed)
                continue
            for q, qa in enumerate(qas, 1):
                row = {**qa, "context": paragraph.get("context")} if isinstance(qa, dict) else qa
                yield f"{path.name} article {a} paragraph {p} question {q}", row


def _guess_format(path: str, rows: list[tuple[str, object]], task: Task, stats: TaskStats) -> str:
    first = next((row for _, row in rows if isinstance(row, dict)), None)
    if first is None:
        seen = f" ({stats.malformed} lines are not JSON; first: {stats.first_problem})" if stats.malformed else ""
        raise GptkitError(f"{path}: cannot tell the format: no JSON objects in it{seen}; fine-tuning data is JSON "
                          f"lines (one example per line), a JSON array, or aligned text files (data=train.{{lang}})")
    for spec in FORMATS.values():
        if spec.recognises(first, task):
            return spec.name
    raise GptkitError(f"{path}: cannot tell the format from the keys {sorted(first)}; set task.format ("
                      + ", ".join(f"{spec.name}: {spec.row_keys()}" for spec in FORMATS.values())
                      + "; summarization's keys are set by [task.summarization] document_field/summary_field)")


def _malformed(stats: TaskStats, where: str, why: str, on_malformed: str) -> None:
    if on_malformed == "error":
        raise GptkitError(f"{where}: {why} (set task.on_malformed=skip to skip such lines)")
    stats.skip(where, why)
