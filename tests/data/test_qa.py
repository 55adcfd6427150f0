import json
import re

import pytest

from gptkit import GptkitError, Tokenizer
from gptkit.config import SummarizationSettings
from gptkit.data import Record, Task, read_records
from gptkit.data.qa import (
    answer_tokens,
    best_span,
    context_tokens,
    question_windows,
    span_example,
    span_text,
)
from gptkit.model import SPAN_END, SPAN_START

CONTEXTS = [
    "Super Bowl 50 was played on February 7, 2016, at Levi's Stadium in Santa Clara.",
    "Der Café-Besitzer  wohnt in Zürich;\nseine Tochter  studiert in 北京 und spricht 中文.",
    "  Leading spaces,\ttabs\tand trailing ones   ",
    "Emoji 🎉 sit between words, like naïve façades and coöperation 😀!",
]


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train_bpe(CONTEXTS * 10 + ["Question: What is it?\nContext:"] * 10, vocab_size=400)


def _record(context, question="What is it?", answer=None, start=None):
    start = (context.index(answer) if start is None else start) if answer else -1
    return Record({"context": context, "question": question, "answer": answer or "",
                   "answers": [answer] if answer else [], "answer_starts": [start] if answer else []})


@pytest.mark.parametrize("context", CONTEXTS)
def test_every_word_maps_to_tokens_and_back_to_the_same_characters(tokenizer, context):
    ids, offsets = context_tokens(tokenizer, context)
    assert len(ids) == len(offsets) and tokenizer.decode(ids) == " " + context
    words = list(re.finditer(r"(?<!')[^\W\d_]+|\d+", context))  # "'s" is one token: not a word here
    assert len(words) > 5
    for word in words:
        first, last = answer_tokens(offsets, word.start(), word.end())
        assert span_text(context, offsets, first, last) == (word.group(), word.start(), word.end())


def test_a_span_of_several_words_keeps_its_inner_spaces_and_drops_outer_ones(tokenizer):
    context = CONTEXTS[1]
    start = context.index("seine")
    end = context.index("北京") + 2
    ids, offsets = context_tokens(tokenizer, context)
    first, last = answer_tokens(offsets, start, end)
    assert span_text(context, offsets, first, last)[0] == "seine Tochter  studiert in 北京"
    assert answer_tokens(offsets, len(context), len(context) + 3) is None  # past the end: no token


def test_long_contexts_are_windows_that_overlap_and_hold_every_answer_whole(tokenizer):
    context = " ".join(f"Item {i} is word{i % 7} here." for i in range(60))
    ids, _ = context_tokens(tokenizer, context)
    for answer in ("Item 17 is word3 here", "Item 31 is word3", "word6 here. Item 42"):
        record = _record(context, answer=answer)
        windows = question_windows(record, tokenizer, block_size=64, doc_stride=16)
        assert len(windows) > 3 and all(len(w.ids) <= 64 for w in windows)
        covered = set()
        for w in windows:
            assert w.ids[-1] == tokenizer.eot_id and w.null == len(w.ids) - 1
            first = next(i for i, (s, _) in enumerate(context_tokens(tokenizer, context)[1]) if (s, _) == w.offsets[0])
            covered.update(range(first, first + len(w.offsets)))
        assert covered == set(range(len(ids)))  # every context token is in some window
        holding = [w for w in windows if w.start != w.null]
        assert holding, f"no window holds {answer!r} whole"
        for w in holding:  # each window that holds it points at exactly the answer
            text, _, _ = span_text(context, w.offsets, w.start - w.context_start, w.end - w.context_start)
            assert text == answer
        for w in windows:
            if w.start == w.null:
                assert w.end == w.null


def test_an_answer_across_a_window_border_is_found_whole_in_the_next_window(tokenizer):
    context = " ".join(f"Item {i} is word{i % 7} here." for i in range(60))
    _, offsets = context_tokens(tokenizer, context)
    plain = question_windows(_record(context), tokenizer, block_size=64, doc_stride=16)
    border = len(plain[0].offsets)  # the first window holds context tokens [0, border)
    first, last = border - 3, border + 2  # three tokens before the border, three after
    answer, start, _ = span_text(context, offsets, first, last)
    windows = question_windows(_record(context, answer=answer, start=start), tokenizer, 64, doc_stride=16)
    assert windows[0].start == windows[0].null  # cut by the first window's border
    second = windows[1]
    assert second.start != second.null
    assert span_text(context, second.offsets, second.start - second.context_start,
                     second.end - second.context_start)[0] == answer


def test_span_examples_label_context_positions_and_the_answer(tokenizer):
    record = _record(CONTEXTS[0], answer="Levi's Stadium")
    (window,) = question_windows(record, tokenizer, block_size=128, doc_stride=32)
    example = span_example(window)
    assert len(example.labels) == len(example.ids) - 1 == len(window.ids)
    assert example.labels[: window.context_start] == [-1] * window.context_start  # no answer in the question
    assert example.labels[window.start] & SPAN_START and example.labels[window.end] & SPAN_END
    assert sum(1 for label in example.labels if label > 0) == (1 if window.start == window.end else 2)


def test_unanswerable_questions_point_at_the_null_position(tokenizer):
    (window,) = question_windows(_record(CONTEXTS[0]), tokenizer, block_size=128, doc_stride=32)
    assert window.start == window.end == window.null
    assert span_example(window).labels[window.null] == SPAN_START + SPAN_END


def test_a_window_too_small_for_the_question_is_a_clear_error(tokenizer):
    with pytest.raises(GptkitError, match=r"raise block_size \(or task.qa.window.*lower task.qa.max_question_tokens"):
        question_windows(_record(CONTEXTS[0], question="What " * 40), tokenizer, block_size=24, doc_stride=4)


def test_best_span_respects_order_and_length(tokenizer):
    (window,) = question_windows(_record(CONTEXTS[0]), tokenizer, block_size=128, doc_stride=32)
    n = len(window.ids)
    starts, ends = [0.0] * n, [0.0] * n
    c = window.context_start
    starts[c + 5], ends[c + 2] = 9.0, 9.0  # an end before the start: not a span
    ends[c + 7] = 5.0
    ends[c + 30] = 8.0  # too long with max_answer_tokens=10
    starts[window.null] = ends[window.null] = 100.0  # the null position is never a span
    span = best_span(starts, ends, window, CONTEXTS[0], max_answer_tokens=10)
    assert span.score == 14.0
    expected = span_text(CONTEXTS[0], window.offsets, 5, 7)
    assert (span.text, span.start, span.end) == expected and CONTEXTS[0][span.start : span.end] == span.text


def test_squad_json_and_jsonl_answer_shapes_read_as_qa(tmp_path):
    context = "Paris is the capital of France."
    squad = {"version": "2.0", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "a", "question": "Capital?", "answers": [{"text": "Paris", "answer_start": 0}]},
        {"id": "b", "question": "Of what?", "answers": [{"text": "France", "answer_start": 3}]},  # wrong start
        {"id": "c", "question": "King?", "answers": [], "is_impossible": True},
        {"id": "d", "question": "Bad?", "answers": [{"text": 5}]},
    ]}]}]}
    (tmp_path / "squad.json").write_text(json.dumps(squad))
    task, records, stats = read_records(tmp_path / "squad.json", Task("auto"))
    assert task.format == "qa" and stats.malformed == 1 and "answers" in stats.first_problem
    assert [r.fields["id"] for r in records] == ["a", "b", "c"]
    assert records[1].fields["answer_starts"] == [context.index("France")]  # looked up
    assert records[2].fields["answers"] == [] and records[2].fields["answer"] == ""
    rows = [{"context": context, "question": "Capital?", "answers": {"text": ["Paris"], "answer_start": [0]}},
            {"context": context, "question": "Capital?", "answers": ["Paris", "paris"]}]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task, records, _ = read_records(tmp_path / "qa.jsonl", Task("auto"))
    assert task.format == "qa" and records[1].fields["answers"] == ["Paris", "paris"]
    assert task.references(records[1]) == ["Paris", "paris"]
    assert task.prompt(records[0]) == f"Context: {context}\nQuestion: Capital?\nAnswer:"


def test_summarization_reads_its_fields_under_configured_names(tmp_path):
    rows = [{"email_body": "Please send the report by Friday.", "subject": "Report due",
             "references": ["Friday report", "Send the report"]}]
    (tmp_path / "mail.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = Task("summarization", summarization=SummarizationSettings("email_body", "subject"))
    _, records, _ = read_records(tmp_path / "mail.jsonl", task)
    assert task.reference(records[0]) == "Report due"
    assert task.references(records[0]) == ["Report due", "Friday report", "Send the report"]
    assert task.prompt(records[0]) == "Please send the report by Friday.\n\nTL;DR:"
    with pytest.raises(GptkitError, match="no usable summarization examples"):
        read_records(tmp_path / "mail.jsonl", Task("summarization"))
