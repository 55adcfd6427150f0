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

from ..errors import require_extra
from ..validate import check_fields, require


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
# Chinese function words, pronouns, particles and conjunctions: what BM25 over jieba's words should not match on
STOPWORDS_ZH = frozenset("""
的 地 得 了 着 过 之 其 与 及 和 跟 同 或 或者 而 而且 并 并且 且 但 但是 然而 可是 不过 因为 所以 因此 于是 如果
若 假如 虽然 尽管 即使 就是 只是 还是 也是 是 在 有 没 没有 不 也 都 又 还 就 才 很 更 最 太 已 已经 曾 曾经
将 会 能 可以 可 要 应 应该 该 把 被 让 使 给 对 对于 关于 从 自 向 往 于 以 为 为了 由 由于 按 按照 通过
根据 比 这 那 这个 那个 这些 那些 这里 那里 这样 那样 此 该 每 各 某 本 我 你 您 他 她 它 我们 你们 他们 她们
它们 咱们 自己 大家 什么 哪 哪里 哪个 哪些 谁 怎么 怎样 怎么样 如何 为什么 多少 几 吗 呢 吧 啊 呀 哦 嘛 么 啦
个 些 一 一个 一些 一种 一样 等 等等 中 上 下 里 内 外 前 后 时 时候 所 所有 则 即 便 只 仅 再 并非 以及 以后
以前 之后 之前 之间 其中 其他 另外 然后 而是 还有 或是 像 例如 比如 非常 十分 特别 一直 正在 不是 一切
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
