"""Task files into records: aligned files, JSON lines, formats told apart, malformed lines."""

import gzip
import json

import pytest

from gptkit import GptkitError
from gptkit.data import Task, read_records


def _jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_aligned_gzipped_files_read_as_translation_pairs(tmp_path):
    for lang, lines in (("en", ["A dog.", "Two men."]), ("de", ["Ein Hund.", "Zwei Männer."])):
        with gzip.open(tmp_path / f"train.{lang}.gz", "wt", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    task, records, stats = read_records(tmp_path / "train.{lang}.gz", Task("auto"))
    assert task.format == "translation" and stats.records == 2 and stats.malformed == 0
    assert records[1].fields == {"source": "Two men.", "target": "Zwei Männer."}
    assert task.prompt(records[0]) == "English: A dog.\nGerman:"


def test_aligned_files_of_different_lengths_are_a_one_line_error(tmp_path):
    (tmp_path / "t.en").write_text("a\nb\nc\n")
    (tmp_path / "t.de").write_text("x\ny\n")
    with pytest.raises(GptkitError, match="has 3 lines but .* has 2"):
        read_records(tmp_path / "t.{lang}", Task("translation"))


@pytest.mark.parametrize("rows, fmt, prompt, reference", [
    ([{"source": "hi", "target": "hallo"}], "translation", "English: hi\nGerman:", "hallo"),
    ([{"prompt": "Q: 2+2?\nA:", "completion": " 4"}], "completion", "Q: 2+2?\nA:", " 4"),
    ([{"instruction": "Add.", "input": "2, 2", "output": "4"}], "alpaca", None, "4"),
    ([{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}], "chat",
     "<|user|>\nhi\n<|assistant|>\n", "hello"),
])
def test_each_format_is_recognised_and_rendered(tmp_path, rows, fmt, prompt, reference):
    task, records, _ = read_records(_jsonl(tmp_path / "x.jsonl", rows), Task("auto"))
    assert task.format == fmt
    assert task.reference(records[0]) == reference
    if prompt is not None:
        assert task.prompt(records[0]) == prompt
    else:
        assert "### Instruction:\nAdd.\n\n### Input:\n2, 2\n\n### Response:\n" in task.prompt(records[0])


def test_alpaca_json_lists_load_and_an_empty_input_leaves_out_its_block(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"instruction": "Say hi.", "input": "", "output": "Hi!"}]))
    task, records, _ = read_records(path, Task("auto"))
    assert task.format == "alpaca" and "### Input" not in task.prompt(records[0])


def test_malformed_lines_are_counted_or_rejected_as_configured(tmp_path):
    path = _jsonl(tmp_path / "x.jsonl", [{"source": "a", "target": "b"}, "{not json", {"source": "c"},
                                         {"source": "d", "target": "e"}])
    _, records, stats = read_records(path, Task("translation"), on_malformed="skip")
    assert len(records) == 2 and stats.malformed == 2 and "line 2" in stats.first_problem
    with pytest.raises(GptkitError, match="x.jsonl line 2: not JSON"):
        read_records(path, Task("translation"), on_malformed="error")


def test_a_file_of_nothing_usable_and_an_unknown_shape_are_clear_errors(tmp_path):
    with pytest.raises(GptkitError, match="no usable translation examples .*2 malformed"):
        read_records(_jsonl(tmp_path / "bad.jsonl", ["[]", '{"source": ""}']), Task("translation"))
    with pytest.raises(GptkitError, match="cannot tell the format"):
        read_records(_jsonl(tmp_path / "odd.jsonl", [{"question": "?"}]), Task("auto"))
    with pytest.raises(GptkitError, match="no such file"):
        read_records(tmp_path / "missing.jsonl", Task("auto"))


def test_alpaca_rows_read_as_chat_become_a_user_turn_and_a_reply(tmp_path):
    path = _jsonl(tmp_path / "a.jsonl", [{"instruction": "Add.", "input": "2, 2", "output": "4"}])
    task, records, _ = read_records(path, Task("chat"))
    assert records[0].messages == ({"role": "user", "content": "Add.\n\n2, 2"}, {"role": "assistant", "content": "4"})
    assert task.prompt(records[0]) == "<|user|>\nAdd.\n\n2, 2\n<|assistant|>\n"
