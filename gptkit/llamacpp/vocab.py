"""A byte-level BPE tokenizer <-> GGUF's tokenizer metadata (tokenizer.ggml.*, tokenizer.chat_template).

The file keeps the vocabulary in order, the merges, each token's type (normal, control, user-defined,
unused) and the ids of BOS/EOS. How text is split before the merges is not stored as a rule but as a name
(`tokenizer.ggml.pre`), which llama.cpp maps to its own regular expressions; `PRE_TOKENIZERS` holds the
same splits for the names gptkit reads and writes.
"""

from __future__ import annotations

import functools
import json

from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers, processors
from tokenizers import Tokenizer as Backend

from ..errors import GptkitError
from ..tokenizer import Tokenizer

NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5  # llama.cpp's token types

_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = _LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")


def _split(regex: str) -> list:
    return [pre_tokenizers.Split(Regex(regex), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]


# llama.cpp's pre-tokenizer name -> the same split in `tokenizers` (GPT-2's regex is ByteLevel's own)
PRE_TOKENIZERS = {
    "gpt-2": lambda: [pre_tokenizers.ByteLevel(add_prefix_space=False)],
    "smollm": lambda: [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)],
    "llama-bpe": lambda: _split(_LLAMA3),
    "qwen2": lambda: _split(_QWEN2),
}
_IGNORES_MERGES = {"llama-bpe"}  # Llama 3 takes a word that is in the vocabulary whole, as llama.cpp does


def tokenizer_from_gguf(meta: dict) -> Tokenizer:
    """Rebuild the tokenizer a GGUF file describes; only byte-level BPE vocabularies (`gpt2`) are read."""
    kind = meta.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise GptkitError(f"the GGUF tokenizer is {kind!r}; gptkit reads byte-level BPE vocabularies ('gpt2': "
                          f"GPT-2, SmolLM2, Llama 3, Qwen), not SentencePiece ('llama') or others")
    pre = meta.get("tokenizer.ggml.pre", "gpt-2")
    pre = "gpt-2" if pre == "default" else pre
    if pre not in PRE_TOKENIZERS:
        raise GptkitError(f"the GGUF tokenizer splits text as {pre!r}; gptkit knows {', '.join(PRE_TOKENIZERS)}")
    tokens = list(meta["tokenizer.ggml.tokens"])
    types = list(meta.get("tokenizer.ggml.token_type") or [NORMAL] * len(tokens))
    while tokens and types[-1] == UNUSED:  # padding rows of the embedding, not tokens
        tokens.pop(), types.pop()
    alphabet = set(pre_tokenizers.ByteLevel.alphabet())
    vocab = {t if set(t) <= alphabet else _spell(t): i for i, t in enumerate(tokens)}
    merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
    if any(len(m) != 2 for m in merges):
        raise GptkitError("the GGUF tokenizer has a merge that is not two tokens separated by a space")
    try:
        backend = Backend(models.BPE(vocab, merges, ignore_merges=pre in _IGNORES_MERGES))
    except Exception as e:  # tokenizers raises a bare Exception for a merge of unknown tokens
        raise GptkitError(f"the GGUF tokenizer's merges do not fit its vocabulary ({e})") from e
    backend.pre_tokenizer = pre_tokenizers.Sequence(PRE_TOKENIZERS[pre]())
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True)
                                for t, kind in zip(tokens, types) if kind == CONTROL])
    backend.add_tokens([AddedToken(t, normalized=False) for t, kind in zip(tokens, types) if kind == USER_DEFINED])

    def token(key: str) -> str | None:
        index = meta.get(f"tokenizer.ggml.{key}_token_id")
        return tokens[index] if index is not None and 0 <= index < len(tokens) else None

    eos = token("eos") or token("eot")
    if eos is None:
        raise GptkitError("the GGUF tokenizer names no end-of-sequence token (tokenizer.ggml.eos_token_id)")
    return Tokenizer(backend, eos, token("bos"), meta.get("tokenizer.chat_template"))


def _spell(token: str) -> str:
    """A token the file spells as plain text (some converters do), in the byte-level alphabet."""
    spelling = _byte_spelling()
    return "".join(spelling[b] for b in token.encode("utf-8"))


@functools.cache
def _byte_spelling() -> dict[int, str]:
    """GPT-2's printable spelling of each byte (bytes_to_unicode)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    spelling, extra = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in spelling:
            spelling[b], extra = chr(256 + extra), extra + 1
    return spelling


def gguf_tokenizer(tokenizer: Tokenizer, vocab_size: int) -> dict:
    """The tokenizer.* metadata of `tokenizer`, padded with unused tokens to the model's `vocab_size` rows."""
    spec = json.loads(tokenizer.backend.to_str())
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or spec.get("normalizer") is not None:
        raise GptkitError("GGUF export needs a byte-level BPE tokenizer without a normalizer (a character-level or "
                          "other vocabulary cannot be written for llama.cpp)")
    pre = _pre_name(spec.get("pre_tokenizer"))
    vocab = tokenizer.backend.get_vocab(with_added_tokens=True)
    if sorted(vocab.values()) != list(range(len(vocab))) or len(vocab) > vocab_size:
        raise GptkitError(f"the tokenizer's ids are not 0..{len(vocab) - 1} within the model's {vocab_size} rows")
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    added = tokenizer.backend.get_added_tokens_decoder()
    types = [NORMAL if i not in added else CONTROL if added[i].special else USER_DEFINED for i in range(len(tokens))]
    pad = vocab_size - len(tokens)
    meta = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre,
            "tokenizer.ggml.tokens": tokens + [f"[PAD{i}]" for i in range(len(tokens), vocab_size)],
            "tokenizer.ggml.token_type": types + [UNUSED] * pad,
            "tokenizer.ggml.merges": [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])],
            "tokenizer.ggml.add_bos_token": False}
    if tokenizer.eot_id is not None:
        meta["tokenizer.ggml.eos_token_id"] = tokenizer.eot_id
    if tokenizer.bos_id is not None:
        meta["tokenizer.ggml.bos_token_id"] = tokenizer.bos_id
    return meta


def _pre_name(spec: dict | None) -> str:
    """llama.cpp's name for a tokenizer.json pre_tokenizer, comparing what each step does (not its flags for
    offsets, which do not change the ids)."""
    def steps(node: dict | None) -> list:
        if node is None:
            return []
        if node["type"] == "Sequence":
            return [s for child in node["pretokenizers"] for s in steps(child)]
        keep = {"ByteLevel": ("add_prefix_space", "use_regex"), "Digits": ("individual_digits",),
                "Split": ("pattern", "behavior", "invert")}.get(node["type"], tuple(node))
        return [(node["type"], *(json.dumps(node.get(k), sort_keys=True) for k in keep))]

    ours = steps(spec)
    for name, build in PRE_TOKENIZERS.items():
        if steps(json.loads(pre_tokenizers.Sequence(build()).__getstate__())) == ours:
            return name
    raise GptkitError("the tokenizer splits text in a way llama.cpp has no name for; GGUF export knows the splits "
                      f"of {', '.join(PRE_TOKENIZERS)}")
