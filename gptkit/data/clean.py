"""Document cleaning: each step optional, each counted.

    cleaner = Cleaner(CleanConfig(redact_pii=True))
    kept = [d for d in map(cleaner, docs) if d is not None]
    cleaner.counts  # {"documents_in": ..., "dropped_duplicate": ..., "pii_email": ...}

Stop-word removal exists for the retrieval (BM25) side only: it destroys the
grammar a language model learns from, so it is off by default and `prepare`
warns when it is switched on.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

from ..config import check_fields, require
from ..errors import require_extra


@dataclass(frozen=True)
class CleanConfig:
    """Which cleaning steps run; the [clean] table of a prepare config."""

    nfc: bool = True  # Unicode NFC normalisation
    strip_control: bool = True  # drop control characters except tab, newline, carriage return
    min_chars: int = 1  # drop documents shorter than this (after stripping whitespace)
    dedup_exact: bool = True  # drop exact duplicates (by hash)
    dedup_near: bool = False  # drop near duplicates (MinHash LSH, needs the `data` extra)
    near_threshold: float = 0.8  # estimated Jaccard similarity of word shingles counted as near-duplicate
    near_shingle_words: int = 5  # words per shingle (the units whose sets are compared)
    near_permutations: int = 128  # MinHash permutations: more estimate the similarity better, and cost more
    redact_pii: bool = False  # e-mail addresses, phone numbers, IP addresses -> placeholders
    remove_stopwords: bool = False  # retrieval/BM25 only; never for language-model training

    def __post_init__(self):
        check_fields(self, "clean config")
        require(self, "clean config", min_chars=">= 0", near_threshold="(0, 1)", near_shingle_words=">= 1",
                near_permutations=">= 1")


# Control characters (Unicode category Cc) other than \t \n \r.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_PII = [  # order matters: IP addresses before phone numbers, which would match their digits
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"), "<EMAIL>"),
    ("ip", re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b"
                      r"|\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b"), "<IP>"),
    ("phone", re.compile(r"(?<![\w.])(?:\+\d{1,3}[ .-]?)?"  # optional country code
                         r"(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]?\d{3,4}(?!\w)"), "<PHONE>"),
]
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves
""".split())
_WORD = re.compile(r"\w+|\W+")


def remove_stopwords(text: str) -> str:
    """Drop English stop words (for BM25-style retrieval indexes)."""
    words = [w for w in _WORD.findall(text) if w.lower() not in STOPWORDS]
    return re.sub(r"\s+", " ", "".join(words)).strip()


def redact_pii(text: str, counts: Counter | None = None) -> str:
    """Replace e-mail addresses, IP addresses and phone numbers by <EMAIL>, <IP>, <PHONE>."""
    for name, pattern, placeholder in _PII:
        text, n = pattern.subn(placeholder, text)
        if counts is not None and n:
            counts[f"pii_{name}"] += n
    return text


class Cleaner:
    """Callable: a document in, the cleaned document (or None if dropped) out."""

    def __init__(self, config: CleanConfig = CleanConfig()):
        self.config = config
        self.counts: Counter = Counter()
        self._seen: set[bytes] = set()
        self._lsh = None
        if config.dedup_near:
            datasketch = require_extra("datasketch", "data")
            self._lsh = datasketch.MinHashLSH(threshold=config.near_threshold, num_perm=config.near_permutations)
            self._minhash = datasketch.MinHash

    def __call__(self, doc: str) -> str | None:
        c = self.config
        self.counts["documents_in"] += 1
        if c.nfc and not unicodedata.is_normalized("NFC", doc):
            doc = unicodedata.normalize("NFC", doc)
            self.counts["nfc_normalized"] += 1
        if c.strip_control:
            doc, n = _CONTROL.subn("", doc)
            self.counts["control_chars_removed"] += n
        if c.min_chars and len(doc.strip()) < c.min_chars:
            self.counts["dropped_short"] += 1
            return None
        if c.dedup_exact:
            digest = hashlib.blake2b(doc.encode("utf-8"), digest_size=16).digest()
            if digest in self._seen:
                self.counts["dropped_duplicate"] += 1
                return None
            self._seen.add(digest)
        if self._lsh is not None and self._is_near_duplicate(doc):
            self.counts["dropped_near_duplicate"] += 1
            return None
        if c.redact_pii:
            doc = redact_pii(doc, self.counts)
        if c.remove_stopwords:
            doc = remove_stopwords(doc)
        self.counts["documents_out"] += 1
        return doc

    def _is_near_duplicate(self, doc: str) -> bool:
        words, n = doc.split(), self.config.near_shingle_words
        shingles = {" ".join(words[i : i + n]).encode("utf-8") for i in range(max(1, len(words) - n + 1))}
        minhash = self._minhash(num_perm=self.config.near_permutations, seed=1)
        minhash.update_batch(list(shingles))
        if self._lsh.query(minhash):
            return True
        self._lsh.insert(str(self.counts["documents_in"]), minhash)
        return False
