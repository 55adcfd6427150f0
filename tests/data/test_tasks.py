import gzip
import json

import pytest

from gptkit import GptkitError, Tokenizer
from gptkit.data import Record, Task, read_records
from gptkit.data.tasks import CHAT_TEMPLATE


@pytest.fixture(scope="module")
def tokenizer():
    texts = ["English: a man rides a red bike\nGerman: ein Mann fährt ein rotes Fahrrad"] * 20
    return Tokenizer.train_bpe(texts, vocab_size=320)


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


def test_examples_put_targets_on_the_completion_and_end_of_text_only(tokenizer):
    task = Task("translation")
    record = Record({"source": "a man", "target": "ein Mann"})
    example = task.example(record, tokenizer, block_size=64)
    prompt = tokenizer.encode(task.prompt(record))
    assert example.ids[: len(prompt)] == prompt and not any(example.targets[: len(prompt)])
    assert all(example.targets[len(prompt):]) and example.ids[-1] == tokenizer.eot_id
    assert tokenizer.decode(example.ids[len(prompt):-1]) == " ein Mann"
    assert task.examples([record], tokenizer, 64) == [example]  # the batched path agrees


def test_too_long_examples_lose_source_tokens_first_and_are_counted(tokenizer):
    task = Task("translation")
    record = Record({"source": "a man rides a red bike " * 20, "target": "ein Mann"})
    example = task.example(record, tokenizer, block_size=32)
    assert example.truncated and len(example.ids) <= 33
    text = tokenizer.decode(example.ids)
    assert text.startswith("English: a man") and text.endswith("\nGerman: ein Mann<|endoftext|>")
    assert task.examples([record], tokenizer, 32)[0] == example


def test_chat_template_round_trip_marks_every_assistant_turn(tokenizer):
    task = Task("chat")
    messages = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"},
                {"role": "assistant", "content": "ciao"})
    example = task.example(Record(messages=messages), tokenizer, block_size=200)
    rendered = task.render_chat(list(messages), eos_token=tokenizer.eot_token)
    assert tokenizer.decode(example.ids) == rendered
    learned = tokenizer.decode([i for i, t in zip(example.ids, example.targets) if t])
    assert learned == "hello<|endoftext|>ciao<|endoftext|>"
    # generation renders the conversation so far exactly as training saw it before the last reply
    prompt = task.prompt(Record(messages=messages))
    assert tokenizer.encode(prompt) == example.ids[: len(tokenizer.encode(prompt))]
    assert prompt.endswith("<|user|>\nbye\n<|assistant|>\n")


def test_a_task_survives_its_checkpoint_form_and_templates_run_sandboxed():
    task = Task("chat", chat_template=CHAT_TEMPLATE, source_lang="fr")
    assert Task.from_dict(task.to_dict()) == task
    hostile = Task("chat", chat_template="{{ messages.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(GptkitError, match="chat template failed: .*(unsafe|access)"):
        hostile.render_chat([{"role": "user", "content": "x"}])
    with pytest.raises(GptkitError, match="template '{text}' cannot be filled .*fields are .*{source}"):
        Task("translation", template="{text}").prompt(Record({"source": "a", "target": "b"}))


def test_alpaca_rows_read_as_chat_become_a_user_turn_and_a_reply(tmp_path):
    path = _jsonl(tmp_path / "a.jsonl", [{"instruction": "Add.", "input": "2, 2", "output": "4"}])
    task, records, _ = read_records(path, Task("chat"))
    assert records[0].messages == ({"role": "user", "content": "Add.\n\n2, 2"}, {"role": "assistant", "content": "4"})
    assert task.prompt(records[0]) == "<|user|>\nAdd.\n\n2, 2\n<|assistant|>\n"
