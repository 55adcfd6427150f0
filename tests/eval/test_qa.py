import pytest
import torch

from gptkit import GPT, GptkitError, ModelConfig, Tokenizer
from gptkit.config import QaSettings
from gptkit.data import Record, Task
from gptkit.eval.qa import answer_questions

CONTEXT = " ".join(f"Station {i} lies on line {i % 5} near the {'north south east west'.split()[i % 4]} gate."
                   for i in range(30))


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train_bpe([CONTEXT, "Question: Which line?\nContext:"] * 10, vocab_size=360)


def _model(span_head=True, seed=0):
    torch.manual_seed(seed)
    return GPT(ModelConfig(vocab_size=360, block_size=64, n_layer=1, n_head=2, n_embd=16, span_head=span_head)).eval()


def _records():
    return [Record({"context": CONTEXT[: 80 * (i + 1)], "question": f"Which line is station {i}?", "answers": []})
            for i in range(5)]


TASK = Task("qa", qa=QaSettings(answer="extract", doc_stride=16, max_answer_tokens=6))


def test_answers_are_spans_of_their_context_and_do_not_depend_on_the_batch(tokenizer):
    model, records = _model(), _records()
    one = answer_questions(model, tokenizer, TASK, records, batch_size=1)
    many = answer_questions(model, tokenizer, TASK, records, batch_size=7)
    assert [a.text for a in one] == [a.text for a in many]
    for record, a in zip(records, one):
        assert a.text and record.fields["context"][a.start : a.end] == a.text
        assert a.text == a.text.strip() and len(tokenizer.encode(a.text)) <= 6 + 1


def test_the_null_threshold_decides_between_the_best_span_and_no_answer(tokenizer):
    model, records = _model(), _records()
    assert all(a.text == "" for a in answer_questions(model, tokenizer, TASK, records, null_threshold=-1e9))
    assert all(a.text for a in answer_questions(model, tokenizer, TASK, records, null_threshold=1e9))


def test_a_model_without_a_span_head_is_a_clear_error(tokenizer):
    with pytest.raises(GptkitError, match="no span head"):
        answer_questions(_model(span_head=False), tokenizer, TASK, _records())


@pytest.mark.parametrize("window, longest", [(0, 64), (32, 32), (200, 64)])
def test_qa_window_sets_the_tokens_each_window_reads(tokenizer, window, longest):
    model, widths = _model(), []
    model.span_head.register_forward_hook(lambda module, args, out: widths.append(args[0].shape[1]))
    task = Task("qa", qa=QaSettings(answer="extract", doc_stride=8, max_answer_tokens=6, window=window))
    answers = answer_questions(model, tokenizer, task, _records())
    assert max(widths) == longest and all(a.text for a in answers)


def test_fine_tuning_windows_are_as_long_as_answering_reads(tokenizer):
    from gptkit.train.finetune import _examples

    record = Record({"context": CONTEXT, "question": "Which line is station 3?", "answers": ["line 3"],
                     "answer_starts": [CONTEXT.index("line 3")]})
    task = Task("qa", qa=QaSettings(answer="extract", doc_stride=8, window=32))
    assert max(len(e.ids) for e in _examples(task, [record], tokenizer, 64)) <= 32 + 1
