"""The model: a decoder-only Transformer whose block is GPT-2's or a Llama/Qwen-family one.

    cache.py   KVCache and Layout: where new tokens go and which keys they see
    layers.py  attention (GQA, QK-norm, RoPE), the MLPs (GELU, SwiGLU), the norms, Block
    gpt.py     GPT: logits, or the LM loss with targets
    heads.py   the span head (extractive QA) and pooled sentence embeddings
"""

from .cache import KVCache, Layout, packed_layout
from .gpt import GPT, param_count
from .heads import SPAN_END, SPAN_START, Encoder, SpanReader, embed, pool, sentence_vectors, span_logits, span_loss
from .layers import Projection

__all__ = ["GPT", "KVCache", "Layout", "packed_layout", "param_count", "Projection", "SPAN_START", "SPAN_END",
           "SpanReader", "Encoder", "embed", "span_logits", "span_loss", "pool", "sentence_vectors"]
