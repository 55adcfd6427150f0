"""Text on top of the token engine: streaming decode, stop strings, end-of-text handling.

    for piece in stream_text(model, tokenizer, "Once upon", 50, Sampling(0.8)):
        print(piece, end="", flush=True)

End-of-text starts an empty prompt, ends a generation, and is never shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from ..errors import GptkitError
from ..model import GPT
from ..tokenizer import Tokenizer
from .beam import beam_search
from .engine import generate_batch, stream
from .sampling import GREEDY, Sampling


def stream_text(model: GPT, tokenizer: Tokenizer, prompt: str, max_new_tokens: int,
                sampling: Sampling = Sampling(), stop: Sequence[str] = (), seed: int | None = None,
                truncate_prompt: bool = False) -> Iterator[str]:
    """The continuation of `prompt` as text pieces, ended by end-of-text, a stop string (not shown) or the limit.

    Pieces never split a UTF-8 character; an empty prompt starts from end-of-text.
    """
    cutter = StopStrings(stop)
    tokens = stream(model, prompt_ids(tokenizer, prompt), max_new_tokens, sampling, eot_ids(tokenizer), seed,
                    truncate_prompt)
    for piece in tokenizer.decode_stream(without_eot(tokenizer, tokens)):
        text, stopped = cutter.feed(piece)
        if text:
            yield text
        if stopped:
            return
    if rest := cutter.flush():
        yield rest


def generate_text(model: GPT, tokenizer: Tokenizer, prompt: str, max_new_tokens: int,
                  sampling: Sampling = Sampling(), stop: Sequence[str] = (), seed: int | None = None,
                  truncate_prompt: bool = False) -> str:
    """The continuation of `prompt` as one string (see `stream_text`)."""
    return "".join(stream_text(model, tokenizer, prompt, max_new_tokens, sampling, stop, seed, truncate_prompt))


def beam_search_text(model: GPT, tokenizer: Tokenizer, prompt: str, max_new_tokens: int, num_beams: int = 4,
                     length_penalty: float = 1.0) -> str:
    """The best beam's continuation of `prompt`; a beam ends at end-of-text (not shown)."""
    best = beam_search(model, prompt_ids(tokenizer, prompt), max_new_tokens, num_beams, length_penalty,
                       stop_ids=eot_ids(tokenizer))[0]
    return tokenizer.decode(without_eot(tokenizer, best.tokens))


def complete_texts(model: GPT, tokenizer: Tokenizer, prompts: Sequence[str], max_new_tokens: int,
                   sampling: Sampling = GREEDY, num_beams: int = 1, length_penalty: float = 1.0,
                   batch_size: int = 32, seed: int | None = None, no_repeat_ngram: int = 0) -> Iterator[str]:
    """The completion of each prompt, in order, as each batch finishes: greedy or sampled in batches of
    batch_size through the engine, or beam search one prompt at a time (also with num_beams=1 when
    no_repeat_ngram bans repeated n-grams). A completion ends at end-of-text."""
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        if num_beams > 1 or no_repeat_ngram:
            outputs = [beam_search(model, prompt_ids(tokenizer, p), max_new_tokens, num_beams, length_penalty,
                                   stop_ids=eot_ids(tokenizer), no_repeat_ngram=no_repeat_ngram)[0].tokens
                       for p in chunk]
        else:
            outputs = generate_batch(model, [prompt_ids(tokenizer, p) for p in chunk], max_new_tokens, sampling,
                                     eot_ids(tokenizer), None if seed is None else seed + start)
        for tokens in outputs:
            yield tokenizer.decode(without_eot(tokenizer, tokens))


def prompt_ids(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """The prompt's token ids; an empty prompt is the end-of-text token (the start of a new document)."""
    if prompt:
        return tokenizer.encode(prompt)
    if tokenizer.eot_id is None:
        raise GptkitError("the prompt is empty and the tokenizer has no end-of-text token to start from")
    return [tokenizer.eot_id]


def eot_ids(tokenizer: Tokenizer) -> tuple[int, ...]:
    """The ids that end a generation: end-of-text, when the tokenizer has one."""
    return () if tokenizer.eot_id is None else (tokenizer.eot_id,)


def without_eot(tokenizer: Tokenizer, ids: Iterable[int]) -> Iterator[int]:
    """The ids with end-of-text removed: what a generation shows as text."""
    return (t for t in ids if t != tokenizer.eot_id)


class StopStrings:
    """Cuts streamed text at the first stop string, holding back text that may be the start of one.

    `feed(piece)` returns (text safe to show now, whether a stop string was hit);
    the stop string and anything after it are dropped. `flush()` returns what
    was held back once the stream ends without a stop.
    """

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        text = self.pending + piece
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.pending = ""
            return text[: min(hits)], True
        hold = max((_overlap(text, s) for s in self.stops), default=0)
        self.pending = text[len(text) - hold :] if hold else ""
        return text[: len(text) - hold], False

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        return text


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of `text` that is a proper start of `stop`."""
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0
