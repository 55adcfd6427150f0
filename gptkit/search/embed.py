"""Sentence and document embeddings from a gptkit checkpoint, or from any sentence-transformers model.

    encoder = load_encoder("runs/embed/best")     # or a sentence-transformers model directory
    vectors = encoder.embed(["a text", ...])       # (N, D) float32, each of unit length
    vectors = embed(model, tokenizer, texts)       # the same from a model in memory

A gptkit model's embedding is its final hidden states pooled over the text's
tokens (and the end-of-text after them): their mean, or the last one, which in a
causal model is the only position that has read the whole text. A checkpoint
trained as an encoder (`gptkit finetune format=pairs`) says which pooling it was
trained with. Texts are batched by length, so a batch pads little; padding comes
after the real tokens, which a causal model never attends to, so a text's vector
does not depend on the batch it is in.

`Encoder.info` identifies the encoder (its kind, weights fingerprint, pooling,
length limit, dimension); an index stores it, so a query embedded by another
encoder is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_checkpoint
from ..errors import GptkitError
from ..model import GPT, sentence_vectors
from ..quantize import for_inference
from ..runtime import autocast
from ..tokenizer import Tokenizer
from ..train.contrastive import collate, encoder_ids, text_ids

DEFAULT_MAX_TOKENS = 256


@dataclass(frozen=True)
class EncoderInfo:
    """What makes two encoders the same: vectors from different ones are not comparable."""

    kind: str  # "gptkit" or "sentence-transformers"
    fingerprint: str  # sha256 of the weights file
    pooling: str
    max_tokens: int
    dim: int
    name: str = ""  # where it was loaded from (informative only)

    def to_dict(self) -> dict:
        return asdict(self)

    def same_encoder(self, other: EncoderInfo) -> bool:
        return (self.kind, self.fingerprint, self.pooling, self.max_tokens, self.dim) == \
            (other.kind, other.fingerprint, other.pooling, other.max_tokens, other.dim)


@torch.no_grad()
def embed(model: GPT, tokenizer: Tokenizer, texts: Sequence[str | list[int]], pooling: str = "",
          max_tokens: int = 0, batch_size: int = 32) -> np.ndarray:
    """Unit-length embeddings (N, C) of `texts` (or of texts' token ids), float32; pooling "" = the model's own,
    else mean."""
    pooling = pooling or model.config.pooling or "mean"
    max_tokens = min(max_tokens or DEFAULT_MAX_TOKENS, model.config.block_size)
    V = model.config.vocab_size
    if any(not isinstance(t, str) and not all(0 <= i < V for i in t) for t in texts):
        raise GptkitError(f"token ids must lie in the encoder's vocabulary [0, {V})")
    ids = [text_ids(tokenizer, t, max_tokens) if isinstance(t, str)
           else encoder_ids(list(t), tokenizer.eot_id, max_tokens) for t in texts]
    out = np.zeros((len(ids), model.config.n_embd), dtype=np.float32)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # length buckets: neighbours pad little
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        x, lengths = collate([ids[i] for i in rows], model.device)
        with autocast(model.device, model.dtype):
            hidden = model.hidden_states(x)
        out[rows] = sentence_vectors(hidden, lengths, pooling).cpu().numpy()
    return out


class GptkitEncoder:
    """A gptkit checkpoint as an encoder."""

    def __init__(self, path: str | Path, pooling: str = "", max_tokens: int = 0, batch_size: int = 32,
                 dtype: str = "auto"):
        ckpt = load_checkpoint(path)
        if ckpt.tokenizer is None:
            raise GptkitError(f"{path} has no tokenizer; an encoder needs the one the model was trained with")
        if ckpt.model.span_head is not None:
            raise GptkitError(f"{path} is a question-answering model (span head), not an encoder")
        self.model = for_inference(ckpt.model, dtype)
        self.tokenizer, self.batch_size = ckpt.tokenizer, batch_size
        self.pooling = pooling or ckpt.model.config.pooling or "mean"
        self.max_tokens = min(max_tokens or DEFAULT_MAX_TOKENS, ckpt.model.config.block_size)
        self.info = EncoderInfo("gptkit", _fingerprint(Path(path) / "model.safetensors"), self.pooling,
                                self.max_tokens, ckpt.model.config.n_embd, str(path))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return embed(self.model, self.tokenizer, texts, self.pooling, self.max_tokens, self.batch_size)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """The character span of each token of `text` (for chunking by tokens)."""
        return self.tokenizer.encode_offsets(text)[1]


class SentenceTransformerEncoder:
    """A sentence-transformers model directory as an encoder (the `search` extra installs the package)."""

    def __init__(self, path: str | Path, max_tokens: int = 0, batch_size: int = 32):
        try:
            import transformers
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise GptkitError(f"{path} is a sentence-transformers model: pip install 'gptkit[search]' "
                              f"(or sentence-transformers) to use it") from e
        transformers.utils.logging.disable_progress_bar()  # a bar per load would clutter every search
        try:
            self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as e:  # the library raises many kinds for a damaged directory
            raise GptkitError(f"{path}: not a loadable sentence-transformers model ({str(e).splitlines()[0]})") from e
        if max_tokens:
            self.model.max_seq_length = max_tokens
        self.batch_size = batch_size
        modules = json.loads((Path(path) / "modules.json").read_text(encoding="utf-8"))
        weights = next((f for pattern in ("**/*.safetensors", "**/*.bin") for f in sorted(Path(path).glob(pattern))),
                       None)
        if weights is None:
            raise GptkitError(f"{path}: no weights file (*.safetensors or *.bin) in the sentence-transformers model")
        pooling = ",".join(m["type"].rsplit(".", 1)[-1] for m in modules[1:])
        dim = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") \
            else self.model.get_sentence_embedding_dimension()
        self.info = EncoderInfo("sentence-transformers", _fingerprint(weights), pooling,
                                int(self.model.max_seq_length), int(dim), str(path))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not all(isinstance(t, str) for t in texts):
            raise GptkitError("this sentence-transformers encoder takes text, not token ids")
        vectors = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.info.dim)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        encoding = self.model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(span) for span in encoding["offset_mapping"]]


Encoder = GptkitEncoder | SentenceTransformerEncoder


def load_encoder(path: str | Path, pooling: str = "", max_tokens: int = 0, batch_size: int = 32,
                 dtype: str = "auto") -> Encoder:
    """A gptkit checkpoint or a sentence-transformers directory (it has modules.json) as an encoder.

    max_tokens 0 keeps the encoder's own limit (DEFAULT_MAX_TOKENS for gptkit checkpoints)."""
    if max_tokens < 0:
        raise GptkitError(f"max_tokens must be a positive number of tokens (or 0 for the encoder's limit), got "
                          f"{max_tokens}")
    if batch_size < 1:
        raise GptkitError(f"batch_size must be at least 1, got {batch_size}")
    path = Path(path)
    if not path.is_dir():
        raise GptkitError(f"{path}: no such encoder directory (a gptkit checkpoint or a sentence-transformers model)")
    if (path / "modules.json").is_file():
        if pooling:
            raise GptkitError(f"{path}: a sentence-transformers model pools as its modules.json says; drop --pooling")
        return SentenceTransformerEncoder(path, max_tokens, batch_size)
    return GptkitEncoder(path, pooling, max_tokens, batch_size, dtype)


def _fingerprint(weights: Path) -> str:
    digest = hashlib.sha256()
    with weights.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]
