"""The format table: every registered format reads a row into a record, and the record into a prompt and an
example whose targets are its completion; an unknown format is an error that lists the registered ones."""

import json

import pytest

from gptkit import GptkitError, Tokenizer
from gptkit.data import FORMATS, Task, get_format, read_records

# one row of each registered format, as a task file holds it (a new format needs its row here)
ROWS = {
    "translation": {"source": "a man rides a red bike", "target": "ein Mann fährt ein rotes Fahrrad"},
    "completion": {"prompt": "The capital of France is", "completion": "Paris."},
    "alpaca": {"instruction": "Name the colour.", "input": "the sky at noon", "output": "Blue."},
    "chat": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
                          {"role": "assistant", "content": "Hello!"}]},
    "qa": {"context": "The Seine flows through Paris.", "question": "What flows through Paris?",
           "answers": [{"text": "The Seine", "answer_start": 0}]},
    "summarization": {"document": "The meeting moved from Monday to Tuesday at noon.", "summary": "Meeting moved."},
    "pairs": {"query": "how tall is the tower", "positive": "The tower is 330 m tall.", "negative": "Bread rises."},
    "sts": {"sentence1": "A cat sleeps.", "sentence2": "A cat is sleeping.", "score": 4.6},
}


@pytest.fixture(scope="module")
def tokenizer():
    texts = [json.dumps(row, ensure_ascii=False) for row in ROWS.values()] * 10
    return Tokenizer.train_bpe(texts, vocab_size=400)


def _read(tmp_path, name, fmt):
    path = tmp_path / f"{name}.jsonl"
    path.write_text(json.dumps(ROWS[name], ensure_ascii=False) + "\n", encoding="utf-8")
    return read_records(path, Task(fmt))


def test_every_registered_format_has_a_sample_row():
    assert set(ROWS) == set(FORMATS)


@pytest.mark.parametrize("name", list(ROWS))
def test_each_format_round_trips_a_record_through_read_example_and_prompt(tmp_path, tokenizer, name):
    task, (record,), stats = _read(tmp_path, name, "auto")
    assert task.format == name and stats.malformed == 0  # `auto` recognises the row
    spec = task.spec
    if spec.encoder:  # texts to embed: the record holds them as read
        assert {k: record.fields[k] for k in spec.fields} == {k: ROWS[name][k] for k in spec.fields}
        return
    example = task.example(record, tokenizer, block_size=256)
    first = example.targets.index(True)
    assert not example.truncated and not any(example.targets[:first])
    assert tokenizer.decode(example.ids[:first]) == task.prompt(record)  # the prompt, exactly, is context
    reference = task.reference(record)
    assert reference and reference in tokenizer.decode(example.ids[first:])
    if spec.example is None:  # prompt + completion: the targets are the completion and end-of-text, exactly
        assert example.ids[first:] == tokenizer.encode(spec.prefix + reference) + [tokenizer.eot_id]
        assert task.examples([record], tokenizer, 256) == [example]


@pytest.mark.parametrize("name", [n for n, spec in FORMATS.items() if spec.fields])
def test_a_row_without_a_required_field_is_malformed_naming_it(tmp_path, name):
    spec = get_format(name)
    missing = spec.fields[0]
    row = {k: v for k, v in ROWS[name].items() if k != missing}
    assert missing in spec.problem(row) and spec.problem(ROWS[name]) == ""


def test_rag_questions_are_asked_in_each_format_that_can_answer_them():
    askers = {name for name, spec in FORMATS.items() if spec.question is not None}
    assert askers == {"chat", "completion", "alpaca", "qa"}
    for name in askers:
        task = Task(name)
        prompt = task.prompt(task.spec.question("Answer from the sources.", "[1] The Seine.", "Which river?"))
        assert "Which river?" in prompt and "[1] The Seine." in prompt


def test_an_unknown_format_is_an_error_that_lists_the_registered_ones():
    with pytest.raises(GptkitError, match="unknown task format 'poetry'") as e:
        Task("poetry")
    assert all(name in str(e.value) for name in FORMATS)
    with pytest.raises(GptkitError, match="unknown task format"):
        get_format("")
