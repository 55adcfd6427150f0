"""Decoding: every setting of one generation, as one frozen value that is checked once.

    decoding = Decoding(max_new_tokens=50, temperature=0.8, top_k=50, stop=("\\n\\n",), seed=0)
    generate_text(model, tokenizer, "Once upon a time", decoding)

The fields mean what they mean in Hugging Face `generate` and OpenAI's API:
`temperature` 0 (or below 1e-5) is greedy decoding, `num_beams` > 1 is beam search, `stop`
strings end the text (and are not shown), `seed` makes sampling reproducible.
The engine's `Request`, `generate_batch`, `complete_texts`, `predict`, the CLI and
the server all take this one object; `dataclasses.replace(decoding, seed=1)`
makes a variant.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from ..errors import GptkitError
from ..validate import check_fields, require
from .sampling import SAMPLING_RANGES, Sampling, check_logit_bias

MAX_BEAMS = 64  # transformers users rarely go past 16; every beam is a row of the batch


@dataclass(frozen=True)
class Decoding:
    """How to continue a prompt: its length, how each token is picked, and what ends it."""

    max_new_tokens: int = 256
    temperature: float = 1.0  # 0: greedy (argmax)
    top_k: int | None = None  # keep the k most likely tokens
    top_p: float | None = None  # keep the smallest set whose probability reaches p
    min_p: float | None = None  # keep tokens at least min_p times as likely as the top one
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the prompt or output (CTRL)
    stop: tuple[str, ...] = ()  # text that ends the generation (not shown)
    stop_ids: tuple[int, ...] = ()  # ids that end it (the last token; text adds end-of-text)
    seed: int | None = None  # seeds the sampling of this one generation
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias in [-100, 100]) added to its logit; a dict too
    num_beams: int = 1  # > 1: beam search (deterministic; the sampling settings are not used)
    length_penalty: float = 1.0  # beam search: scores are log p / length ** length_penalty
    early_stopping: bool = False  # beam search: stop as soon as num_beams hypotheses are finished
    no_repeat_ngram: int = 0  # n > 0: never repeat an n-gram of the output (decoded by beam search)
    truncate_prompt: bool = False  # a prompt longer than the context keeps its last tokens instead of failing

    def __post_init__(self):
        for name in ("stop", "stop_ids"):  # a list is the natural way to write them; the value stays frozen
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.logit_bias, dict):
            object.__setattr__(self, "logit_bias", tuple(sorted(self.logit_bias.items())))
        check_fields(self, "decoding")
        if not 1 <= self.num_beams <= MAX_BEAMS:
            raise GptkitError(f"decoding: num_beams must be between 1 and {MAX_BEAMS} (at most {MAX_BEAMS}: every "
                              f"beam is a row of the batch), got {self.num_beams}")
        if self.seed is not None and not 0 <= self.seed < 2**64:
            raise GptkitError(f"decoding: seed must be an integer in [0, 2**64), got {self.seed}")
        require(self, "decoding", max_new_tokens=">= 1", no_repeat_ngram=">= 0", length_penalty="[-1e9, 1e9]",
                **SAMPLING_RANGES)
        if any(t < 0 for t in self.stop_ids):
            raise GptkitError(f"decoding: stop_ids must be token ids (>= 0), got {self.stop_ids}")
        check_logit_bias(self.logit_bias, "decoding")
        if self.logit_bias and self.beam:
            raise GptkitError("decoding: logit_bias applies to sampling and greedy decoding, not to beam search")

    @cached_property
    def sampling(self) -> Sampling:
        """The token-picking settings, as the sampler takes them."""
        return Sampling(self.temperature, self.top_k, self.top_p, self.min_p, self.repetition_penalty,
                        self.logit_bias)

    @property
    def greedy(self) -> bool:
        """Argmax decoding: temperature 0, or one below MIN_TEMPERATURE (see `sampling`)."""
        return self.sampling.greedy

    def seed_offset(self, i: int) -> Decoding:
        """The decoding of the i-th of several samples: seeded from seed + i (mod 2**64, so any seed works)."""
        return self if self.seed is None or i == 0 else replace(self, seed=(self.seed + i) % 2**64)

    @property
    def beam(self) -> bool:
        """Whether this is decoded by beam search (more beams, or n-gram bans that need the search's bookkeeping)."""
        return self.num_beams > 1 or self.no_repeat_ngram > 0


GREEDY_DECODING = Decoding(temperature=0)
