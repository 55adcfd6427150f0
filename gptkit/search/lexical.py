"""Lexical search: BM25 (the `bm25s` package) over analysed words, English or Chinese.

    lexical = LexicalIndex.build(chunk_texts, language="auto")
    rows, scores = lexical.search("how do vaccines work", k=10)

Analysis turns a text into the terms BM25 counts:

    en  lowercase words of 2+ letters or digits, English stop words dropped (the cleaning
        stage's list), each word stemmed (Snowball, PyStemmer): "vaccines" and "vaccine" match
    zh  words cut by jieba (search mode: long words also as their parts), Chinese stop words
        dropped, Latin words lowercased

`auto` picks zh when over 30% of the letters in a sample of the texts are CJK ideographs.
BM25 has no incremental update in bm25s: adding texts rebuilds it from all of them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..data.clean import STOPWORDS, STOPWORDS_ZH
from ..errors import GptkitError, require_extra

LANGUAGES = ("en", "zh")
_WORD = re.compile(r"\b\w\w+\b")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]")


def analyzer(language: str) -> Callable[[str], list[str]]:
    """The function that turns a text into BM25 terms for `language` (en or zh)."""
    if language == "en":
        stemmer = require_extra("Stemmer", "search").Stemmer("english")
        return lambda text: stemmer.stemWords([w for w in _WORD.findall(text.lower()) if w not in STOPWORDS])
    if language == "zh":
        jieba = require_extra("jieba", "search")
        jieba.setLogLevel(logging.WARNING)  # its dictionary loads with an INFO banner
        return lambda text: [w.lower() for w in jieba.lcut_for_search(text)
                             if w.strip() and w not in STOPWORDS_ZH and any(c.isalnum() for c in w)]
    raise GptkitError(f"unknown language {language!r} for lexical search: use {', '.join(LANGUAGES)} or auto")


def detect_language(texts: Sequence[str], sample: int = 200) -> str:
    """zh when CJK ideographs are over 30% of the letters in the first `sample` texts, else en."""
    letters = cjk = 0
    for text in texts[:sample]:
        letters += len(_LETTER.findall(text))
        cjk += len(_CJK.findall(text))
    return "zh" if letters and cjk / letters > 0.3 else "en"  # a CJK character says about as much as a word


class LexicalIndex:
    """BM25 over a list of texts (rows); `search` gives row numbers, best first, and their scores."""

    def __init__(self, retriever, language: str):
        self.retriever, self.language = retriever, language
        self.analyze = analyzer(language)

    @classmethod
    def build(cls, texts: Sequence[str], language: str = "auto", k1: float = 1.5, b: float = 0.75) -> LexicalIndex:
        bm25s = require_extra("bm25s", "search")
        language = detect_language(texts) if language == "auto" else language
        index = cls(bm25s.BM25(k1=k1, b=b), language)
        index.retriever.index([index.analyze(text) for text in texts], show_progress=False)
        return index

    @property
    def size(self) -> int:
        return int(self.retriever.scores["num_docs"])

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The top k rows (fewer if fewer contain a query term) and their BM25 scores."""
        vocabulary = self.retriever.vocab_dict
        terms = [t for t in self.analyze(query) if t in vocabulary]
        if not terms:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        rows, scores = self.retriever.retrieve([terms], k=min(k, self.size), show_progress=False, n_threads=1)
        keep = scores[0] > 0
        return rows[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)

    def save(self, directory: Path) -> None:
        self.retriever.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path, language: str) -> LexicalIndex:
        bm25s = require_extra("bm25s", "search")
        try:
            retriever = bm25s.BM25.load(str(directory), show_progress=False)
        except Exception as e:  # numpy, json or bm25s errors on a damaged file
            raise GptkitError(f"{directory}: the BM25 index is damaged ({str(e).splitlines()[0]}); rebuild the "
                              f"index with gptkit index") from e
        return cls(retriever, language)
