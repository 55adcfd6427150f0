"""Text on top of the token engine: a per-request text stream (incremental decoding, stop strings),
end-of-text handling, and chat prompts.

    for piece in stream_text(model, tokenizer, "Once upon", Decoding(50, temperature=0.8)):
        print(piece, end="", flush=True)

End-of-text starts an empty prompt, ends a generation, and is never shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

from ..data.chat import CHAT_TEMPLATE, render_chat, trained_chat_template
from ..errors import GptkitError
from ..model import GPT
from ..tokenizer import Tokenizer
from .beam import beam_search
from .decoding import Decoding
from .engine import generate_batch, stream


def stream_text(model: GPT, tokenizer: Tokenizer, prompt: str, decoding: Decoding = Decoding()) -> Iterator[str]:
    """The continuation of `prompt` as text pieces, ended by end-of-text, a stop string (not shown) or the limit.

    Pieces never split a UTF-8 character; an empty prompt starts from end-of-text. A beam-search
    decoding yields the best beam's text as one piece.
    """
    if decoding.beam:
        tokens: Iterable[int] = _best_beam(model, tokenizer, prompt, decoding)
    else:
        tokens = stream(model, prompt_ids(tokenizer, prompt), ending_at_eot(decoding, tokenizer))
    text = TextStream(tokenizer, decoding.stop)
    for token in tokens:
        if piece := text.feed(token):
            yield piece
        if text.stopped:
            return
    if rest := text.finish():
        yield rest


def generate_text(model: GPT, tokenizer: Tokenizer, prompt: str, decoding: Decoding = Decoding()) -> str:
    """The continuation of `prompt` as one string (see `stream_text`)."""
    return "".join(stream_text(model, tokenizer, prompt, decoding))


def beam_search_text(model: GPT, tokenizer: Tokenizer, prompt: str, decoding: Decoding) -> str:
    """The best beam's continuation of `prompt`; a beam ends at end-of-text (not shown)."""
    return tokenizer.decode(without_eot(tokenizer, _best_beam(model, tokenizer, prompt, decoding)))


def complete_texts(model: GPT, tokenizer: Tokenizer, prompts: Sequence[str], decoding: Decoding,
                   batch_size: int = 32) -> Iterator[str]:
    """The completion of each prompt, in order, as each batch finishes: greedy or sampled in batches of
    batch_size through the engine (prompt i sampled from seed + i), or beam search one prompt at a time.
    A completion ends at end-of-text; stop strings are not applied (the texts are scored whole)."""
    ending = ending_at_eot(decoding, tokenizer)
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        if decoding.beam:
            outputs = [_best_beam(model, tokenizer, p, decoding) for p in chunk]
        else:
            outputs = generate_batch(model, [prompt_ids(tokenizer, p) for p in chunk], ending.seed_offset(start))
        for tokens in outputs:
            yield tokenizer.decode(without_eot(tokenizer, tokens))


def _best_beam(model: GPT, tokenizer: Tokenizer, prompt: str, decoding: Decoding) -> list[int]:
    return beam_search(model, prompt_ids(tokenizer, prompt), ending_at_eot(decoding, tokenizer))[0].tokens


def prompt_ids(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """The prompt's token ids; an empty prompt is the end-of-text token (the start of a new document)."""
    if prompt:
        return tokenizer.encode(prompt)
    if tokenizer.eot_id is None:
        raise GptkitError("the prompt is empty and the tokenizer has no end-of-text token to start from")
    return [tokenizer.eot_id]


def ending_at_eot(decoding: Decoding, tokenizer: Tokenizer) -> Decoding:
    """The decoding with end-of-text (when the tokenizer has one) among its stop ids."""
    eot = tokenizer.eot_id
    if eot is None or eot in decoding.stop_ids:
        return decoding
    return replace(decoding, stop_ids=(*decoding.stop_ids, eot))


def without_eot(tokenizer: Tokenizer, ids: Iterable[int]) -> Iterator[int]:
    """The ids with end-of-text removed: what a generation shows as text."""
    return (t for t in ids if t != tokenizer.eot_id)


class TextStream:
    """One request's text as its tokens arrive: `feed(token)` returns the text that is safe to show now.

    A byte-level token may hold part of a UTF-8 character: it is held back until the character is
    complete. Text that may be the start of a stop string is held back too; at a stop string
    `stopped` becomes True and it and everything after it are dropped. End-of-text is never shown.
    `finish()` returns what is still held once the tokens end. Joined, the pieces are the decoded
    text cut at the first stop string.
    """

    def __init__(self, tokenizer: Tokenizer, stop: Sequence[str] = ()):
        self.tokenizer = tokenizer
        self.stopped = False
        self._stops = StopStrings(stop)
        self._pending: list[int] = []

    def feed(self, token: int) -> str:
        if self.stopped or token == self.tokenizer.eot_id:
            return ""
        self._pending.append(token)
        text = self.tokenizer.decode(self._pending)
        if text.endswith("\ufffd"):  # an incomplete character, so far
            return ""
        self._pending = []
        return self._cut(text)

    def finish(self) -> str:
        text = self._cut(self.tokenizer.decode(self._pending)) if self._pending and not self.stopped else ""
        self._pending = []
        return text + ("" if self.stopped else self._stops.flush())

    def _cut(self, text: str) -> str:
        shown, self.stopped = self._stops.feed(text)
        return shown


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


class Chat:
    """A conversation rendered into prompts by a chat template: a checkpoint's is the one fine-tuning used.

        chat = Chat.of_checkpoint(ckpt, system="Be brief.")
        reply = generate_text(model, tokenizer, chat.prompt("Hello!"), decoding)
        chat.reply(reply)            # the next prompt holds the whole conversation
    """

    def __init__(self, template: str = CHAT_TEMPLATE, eos_token: str = "", system: str | None = None,
                 bos_token: str = ""):
        self.template, self.eos_token, self.bos_token = template, eos_token, bos_token
        self.messages: list[dict] = [{"role": "system", "content": system}] if system else []

    @classmethod
    def of_checkpoint(cls, ckpt, system: str | None = None) -> Chat:
        """The checkpoint's chat template and special tokens: the one fine-tuning used, else the tokenizer's
        own (a pretrained model's), else gptkit's default."""
        tokenizer = ckpt.tokenizer
        own = tokenizer.chat_template if tokenizer is not None else None
        template = trained_chat_template(ckpt.meta) or own or CHAT_TEMPLATE
        eos = tokenizer.eot_token if tokenizer is not None else ""
        bos = tokenizer.bos_token if tokenizer is not None else ""
        return cls(template, eos or "", system, bos or "")

    def prompt(self, text: str) -> str:
        """Add a user message; the conversation so far, ending where the assistant's reply begins."""
        self.messages.append({"role": "user", "content": text})
        return self.render()

    def render(self) -> str:
        """The conversation so far, ending where the assistant's reply begins."""
        return render_chat(self.template, self.messages, add_generation_prompt=True, eos_token=self.eos_token,
                           bos_token=self.bos_token)

    def reply(self, text: str) -> None:
        self.messages.append({"role": "assistant", "content": text})
