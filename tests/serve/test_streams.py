"""A generation as text deltas: stop strings cut across token boundaries without showing held-back text."""

import asyncio
from dataclasses import replace

from gptkit.generate import Decoding, Request
from gptkit.serve import load_served
from gptkit.serve.scheduler import Scheduler
from gptkit.serve.streams import choices

from .conftest import make_models


def _run(served, prompt, decoding, n=1):
    async def collect():
        scheduler = Scheduler(served.model, max_batch=4)
        try:
            jobs = scheduler.submit_all([Request(prompt, decoding.seed_offset(j)) for j in range(n)])
            return [d async for d in choices(served, scheduler, jobs)]
        finally:
            scheduler.stop()
    return asyncio.run(collect())


def test_a_stop_string_spanning_two_tokens_cuts_the_text_and_nothing_of_it_is_shown(tmp_path):
    served = load_served(make_models(tmp_path)[0], dtype="fp32")
    tok = served.tokenizer
    prompt = tok.encode("hello world")
    sampled = Decoding(30, temperature=1.0, top_k=20, seed=3)  # reproducible, and varied text for a random model
    whole = _run(served, prompt, sampled)
    text = "".join(d.text for d in whole)
    pieces = [tok.decode([t]) for d in whole for t in d.tokens]
    i = next(i for i in range(len(pieces) - 1) if pieces[i] and pieces[i + 1] and "\ufffd" not in pieces[i]
             + pieces[i + 1])
    stop = pieces[i][-1] + pieces[i + 1][0]  # the end of one token and the start of the next
    cut = _run(served, prompt, replace(sampled, stop=(stop,)))
    assert "".join(d.text for d in cut) == text[: text.index(stop)]
    assert cut[-1].finish_reason == "stop" and whole[-1].finish_reason == "length"


def test_n_choices_are_the_single_choices_of_seed_plus_i(tmp_path):
    served = load_served(make_models(tmp_path)[0], dtype="fp32")
    prompt = served.tokenizer.encode("the")
    together = _run(served, prompt, Decoding(12, temperature=1.0, seed=5), n=3)
    texts = ["".join(d.text for d in together if d.index == i) for i in range(3)]
    alone = ["".join(d.text for d in _run(served, prompt, Decoding(12, temperature=1.0, seed=5 + i)))
             for i in range(3)]
    assert texts == alone
