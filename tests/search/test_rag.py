"""Retrieval-augmented answers: what is retrieved is what is read, and the answer cites where it came from."""

import dataclasses

import pytest
import torch

from gptkit import GPT
from gptkit.checkpoint import load_checkpoint
from gptkit.config import QaSettings
from gptkit.data import Task
from gptkit.data.formats import qa_record
from gptkit.errors import GptkitError
from gptkit.eval.qa import answer_questions
from gptkit.generate import Decoding
from gptkit.search.embed import load_encoder
from gptkit.search.hybrid import Searcher
from gptkit.search.index import Index, IndexSettings
from gptkit.search.rag import answer_from_index, numbered
from tests.conftest import DOCUMENTS


@pytest.fixture(scope="module")
def searcher(encoder_checkpoint):
    encoder = load_encoder(encoder_checkpoint, dtype="fp32")
    return Searcher(Index.build(DOCUMENTS.items(), encoder, IndexSettings(chunk_tokens=12, overlap=2)), encoder)


@pytest.fixture(scope="module")
def reader(encoder_checkpoint):
    ckpt = load_checkpoint(encoder_checkpoint)
    return ckpt.model.config, ckpt.tokenizer


def test_an_extractive_answer_is_the_best_span_over_the_retrieved_chunks_and_cites_its_chunk(searcher, reader):
    config, tokenizer = reader
    torch.manual_seed(1)
    model = GPT(dataclasses.replace(config, pooling="", span_head=True)).eval()
    task = Task("qa", qa=QaSettings(answer="extract"))
    question = "What does yeast release in the dough?"
    answer = answer_from_index(model, tokenizer, task, searcher, question, k=3)
    assert len(answer.retrieved) == 3 and answer.retrieved == searcher.search(question, k=3)
    spans = answer_questions(model, tokenizer, task, [qa_record(h.chunk.text, question) for h in answer.retrieved])
    best = max(range(3), key=lambda i: spans[i].score)
    assert answer.text == spans[best].text and answer.sources == [answer.retrieved[best]]
    assert answer.text in answer.sources[0].chunk.text and answer.score == spans[best].score


def test_a_generative_reader_gets_the_numbered_chunks_and_cites_them_all(searcher, reader):
    config, tokenizer = reader
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(config, pooling="", block_size=256)).eval()
    task = Task("qa", qa=QaSettings(answer="generate"))
    answer = answer_from_index(model, tokenizer, task, searcher, "Why does bread rise?", k=2,
                               decoding=Decoding(4, temperature=0))
    assert answer.sources == answer.retrieved and len(answer.sources) == 2
    assert numbered(answer.sources).startswith(f"[1] {answer.sources[0].chunk.text}\n\n[2] ")


def test_sources_that_do_not_fit_the_context_are_dropped_whole(searcher, reader):
    config, tokenizer = reader
    model = GPT(dataclasses.replace(config, pooling="", block_size=40)).eval()
    answer = answer_from_index(model, tokenizer, Task("completion"), searcher, "rivers", k=4,
                               decoding=Decoding(4, temperature=0))
    assert 1 <= len(answer.sources) < len(answer.retrieved) == 4
    assert answer.sources == answer.retrieved[: len(answer.sources)]


def test_a_task_that_does_not_answer_questions_is_refused(searcher, reader):
    config, tokenizer = reader
    with pytest.raises(GptkitError, match="does not answer questions"):
        answer_from_index(GPT(dataclasses.replace(config, pooling="")), tokenizer, Task("translation"), searcher,
                          "rivers")
