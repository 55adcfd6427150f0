"""Tokenizer: byte-level BPE (GPT-2 style) or characters, on Hugging Face `tokenizers`.

Train one on a corpus, or load GPT-2's own files; save/load as `tokenizer.json`.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Regex, decoders, models, pre_tokenizers, processors, trainers
from tokenizers import Tokenizer as _Backend

from .errors import GptkitError

EOT = "<|endoftext|>"
_MARK = 0xF0000  # Unicode's supplementary private use area: the marks `literal` puts in for special spellings
PIECE_CHARS = 1 << 16  # encode_long's piece size: the tokenizer's working memory stays a few MB
_WORD_START = re.compile(r"(?<=\S) (?=\S)")  # a space that starts a pre-token of its own (" word")


class Tokenizer:
    """Text <-> token ids. `eot_id` separates documents and ends generations.

    A pretrained model's tokenizer also names its beginning-of-sequence token and its chat template
    (Jinja, as in Hugging Face's tokenizer_config.json), which travel with it into checkpoints and exports.
    """

    def __init__(self, backend: _Backend, eot_token: str = EOT, bos_token: str | None = None,
                 chat_template: str | None = None):
        self.backend = backend
        self.eot_token = eot_token
        self.eot_id = backend.token_to_id(eot_token)
        self.bos_token = bos_token
        self.bos_id = None if bos_token is None else backend.token_to_id(bos_token)
        self.chat_template = chat_template

    # -- construction -------------------------------------------------------------
    @classmethod
    def train_bpe(cls, texts: Iterable[str], vocab_size: int,
                  special_tokens: tuple[str, ...] = (EOT,), min_frequency: int = 2) -> Tokenizer:
        """Train a byte-level BPE vocabulary: every byte is a token, so any string round-trips."""
        n_base = len(pre_tokenizers.ByteLevel.alphabet()) + len(special_tokens)
        if vocab_size < n_base:
            raise GptkitError(
                f"vocab_size {vocab_size} is too small: byte-level BPE needs at least {n_base} "
                f"(256 bytes + {len(special_tokens)} special tokens)"
            )
        backend = _byte_level(_Backend(models.BPE()))
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(special_tokens),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )
        backend.train_from_iterator(texts, trainer=trainer)
        return cls(backend, special_tokens[0] if special_tokens else EOT)

    @classmethod
    def train_char(cls, texts: Iterable[str], special_tokens: tuple[str, ...] = (EOT,),
                   unk_token: str = "<unk>") -> Tokenizer:
        """One token per Unicode character seen in `texts` (nanoGPT's shakespeare_char setting)."""
        chars: set[str] = set()
        for text in texts:
            chars.update(text)
        if not chars:
            raise GptkitError("cannot build a character vocabulary from an empty corpus")
        specials = [*special_tokens, unk_token]
        vocab = {ch: i for i, ch in enumerate(sorted(chars))}
        for token in specials:
            vocab.setdefault(token, len(vocab))
        backend = _Backend(models.WordLevel(vocab, unk_token=unk_token))
        backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        backend.decoder = decoders.Fuse()
        backend.add_special_tokens(specials)
        return cls(backend, special_tokens[0] if special_tokens else EOT)

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Load `tokenizer.json`, or a directory holding it or GPT-2's vocab.json + merges.txt."""
        path = Path(path)
        if path.is_dir():
            if (path / "tokenizer.json").is_file():
                path = path / "tokenizer.json"
            elif (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
                return cls._from_vocab_merges(path / "vocab.json", path / "merges.txt")
            else:
                raise GptkitError(f"{path}: no tokenizer.json, or vocab.json + merges.txt, in this directory")
        if not path.is_file():
            raise GptkitError(f"tokenizer file not found: {path}")
        try:
            backend = _Backend.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception on bad JSON
            raise GptkitError(f"{path}: not a valid tokenizer.json ({e})") from e
        settings = _read_settings(path.parent)
        return cls(backend, settings.get("eos_token") or EOT, settings.get("bos_token"), settings.get("chat_template"))

    @classmethod
    def _from_vocab_merges(cls, vocab: Path, merges: Path) -> Tokenizer:
        try:
            backend = _byte_level(_Backend(models.BPE.from_file(str(vocab), str(merges))))
        except Exception as e:
            raise GptkitError(f"{vocab.parent}: unreadable vocab.json/merges.txt ({e})") from e
        eot = _read_settings(vocab.parent).get("eos_token") or EOT
        if backend.token_to_id(eot) is not None:
            backend.add_special_tokens([eot])
        return cls(backend, eot)

    def save(self, path: str | Path) -> None:
        """Write tokenizer.json to `path` (a file name)."""
        self.backend.save(str(path))

    def settings(self) -> dict:
        """What Hugging Face's tokenizer_config.json holds for this tokenizer: special tokens, chat template."""
        settings = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": self.eot_token}
        if self.bos_token is not None:
            settings["bos_token"] = self.bos_token
        if self.chat_template:
            settings["chat_template"] = self.chat_template
        return settings

    def save_settings(self, directory: str | Path) -> None:
        """Write tokenizer_config.json into `directory` when there is more to say than the default end-of-text."""
        if self.bos_token is not None or self.chat_template or self.eot_token != EOT:
            Path(directory, "tokenizer_config.json").write_text(json.dumps(self.settings(), indent=2) + "\n",
                                                                encoding="utf-8")

    @property
    def sha256(self) -> str:
        """Fingerprint of the whole tokenizer (vocabulary, merges, specials, pipeline)."""
        return hashlib.sha256(self.backend.to_str().encode("utf-8")).hexdigest()

    # -- use ----------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_text(self, text: str) -> list[int]:
        """The ids of text from a user: a special token's spelling (say "<|endoftext|>") is ordinary text."""
        return self._plain.encode(text, add_special_tokens=False).ids

    def literal(self, text: str) -> str:
        """`text` with each special token's spelling swapped for a private mark, to be put into a template:
        `encode_rendered` turns the marks back into that spelling, encoded as ordinary text."""
        if not self._special_spelling.search(text):
            return text
        return self._special_spelling.sub(lambda m: self._marks[m.group(0)], text)

    def encode_rendered(self, text: str) -> list[int]:
        """The ids of a rendered template: special tokens where the template wrote them; text that went in
        through `literal` is ordinary text. Without marks this is `encode(text)`."""
        ids: list[int] = []
        start = 0
        for m in self._special_spelling.finditer(text):
            ids += self.encode_text(self._unmark(text[start : m.start()])) if start < m.start() else []
            ids.append(self.backend.token_to_id(m.group(0)))
            start = m.end()
        return ids + (self.encode_text(self._unmark(text[start:])) if start < len(text) else [])

    @functools.cached_property
    def longest_token(self) -> int:
        """The most characters one token spells (added tokens left out): with normalizers aside, a text of
        L characters is at least L / longest_token tokens, a bound that costs nothing to check."""
        added = {t.content for t in self.backend.get_added_tokens_decoder().values()}
        return max((len(s) for s in self.backend.get_vocab() if s not in added), default=1)

    @functools.cached_property
    def _plain(self) -> _Backend:
        plain = _Backend.from_str(self.backend.to_str())
        plain.encode_special_tokens = True
        return plain

    @functools.cached_property
    def _special_spelling(self) -> re.Pattern:
        """The added tokens' spellings, longest first (what `tokenizers` matches before splitting text)."""
        spellings = sorted((t.content for t in self.backend.get_added_tokens_decoder().values()), key=len,
                           reverse=True)
        return re.compile("|".join(map(re.escape, spellings)) or "(?!)")

    @functools.cached_property
    def _marks(self) -> dict[str, str]:
        added = sorted(t.content for t in self.backend.get_added_tokens_decoder().values())
        return {spelling: chr(_MARK + i) for i, spelling in enumerate(added)}

    def _unmark(self, text: str) -> str:
        if not any(_MARK <= ord(c) < _MARK + len(self._marks) for c in text):
            return text
        spelling = {mark: s for s, mark in self._marks.items()}
        return "".join(spelling.get(c, c) for c in text)

    def encode_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """The ids and, per id, the [start, end) character span of `text` it came from.

        A word's token includes the space before it; the bytes of one character split over
        several tokens give each of them that character's span.
        """
        encoding = self.backend.encode(text, add_special_tokens=False)
        return encoding.ids, [tuple(span) for span in encoding.offsets]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.backend.encode_batch(texts, add_special_tokens=False)]

    def encode_long(self, text: str, piece_chars: int = PIECE_CHARS) -> Iterator[list[int]]:
        """The ids of a text of any length, a piece at a time, so memory stays bounded.

        Pieces end just before a space that starts a word (`a| b`): byte-level BPE
        never merges across that boundary, so the ids joined are those of
        `encode(text)`. A run of piece_chars characters with no such space is cut
        where it is (ids may then differ from a whole encode at that cut).
        """
        pieces = split_between_words(text, piece_chars)
        while batch := list(itertools.islice(pieces, 16)):
            for encoding in self.backend.encode_batch(batch, add_special_tokens=False):
                yield encoding.ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def decode_stream(self, ids: Iterable[int]) -> Iterator[str]:
        """Decode ids as they arrive, yielding text pieces that never split a character.

        A byte-level token may hold part of a UTF-8 character; such tokens are held
        back until the character is complete. Joined, the pieces equal `decode(ids)`.
        """
        pending: list[int] = []
        for token in ids:
            pending.append(token)
            text = self.decode(pending)
            if not text.endswith("\ufffd"):
                yield text
                pending = []
        if pending:
            yield self.decode(pending)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, eot={self.eot_token!r})"


def split_between_words(text: str, size: int) -> Iterator[str]:
    """`text` in pieces of at most `size` characters, cut before a space between two non-spaces where possible."""
    start = 0
    while len(text) - start > size:
        cuts = [m.start() for m in _WORD_START.finditer(text, start + 1, start + size)]
        end = cuts[-1] if cuts else start + size
        yield text[start:end]
        start = end
    yield text[start:]


def _byte_level(backend: _Backend) -> _Backend:
    """GPT-2's byte-level pipeline: bytes -> printable unicode, split by its regex."""
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    return backend


def _read_settings(directory: Path) -> dict:
    """eos_token, bos_token and chat_template from a Hugging Face tokenizer_config.json (or chat_template.jinja)."""
    settings: dict = {}
    config_path = directory / "tokenizer_config.json"
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except ValueError:
            config = {}
        for key in ("eos_token", "bos_token"):
            token = config.get(key)
            if isinstance(token, dict):  # older files store an AddedToken dict
                token = token.get("content")
            if isinstance(token, str):
                settings[key] = token
        template = config.get("chat_template")
        if isinstance(template, list):  # named templates: the default one
            template = next((t.get("template") for t in template if t.get("name") == "default"), None)
        if isinstance(template, str):
            settings["chat_template"] = template
    if "chat_template" not in settings and (directory / "chat_template.jinja").is_file():
        settings["chat_template"] = (directory / "chat_template.jinja").read_text(encoding="utf-8")
    return settings
