"""GGUF's names for a model, per architecture: metadata keys <-> a transformers config dict, tensor names <->
transformers' tensor names. Everything else (which of our parameters each tensor is) is the Hugging Face
family's business, so a GGUF file goes through the same mapping as a transformers directory.

llama.cpp computes RoPE on adjacent pairs (x0, x1), (x2, x3)... for the `llama` architecture, where
transformers' Llama pairs each half with the other (x0, x_{D/2}); its converter permutes the rows of q and k
to match, and the reader here undoes it. qwen2 and qwen3 run in llama.cpp's "NeoX" mode, which pairs
halves as transformers does, so their rows stay as they are.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from ..errors import GptkitError

ARCHITECTURES = ("gpt2", "llama", "qwen2", "qwen3")  # GGUF's general.architecture values we read and write

_GLOBAL = {"gpt2": {"token_embd": "transformer.wte", "position_embd": "transformer.wpe",
                    "output_norm": "transformer.ln_f", "output": "lm_head"},
           "llama": {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}}
_BLOCK = {"gpt2": ("transformer.h.{i}.", {"attn_norm": "ln_1", "attn_qkv": "attn.c_attn", "attn_output": "attn.c_proj",
                                          "ffn_norm": "ln_2", "ffn_up": "mlp.c_fc", "ffn_down": "mlp.c_proj"}),
          "llama": ("model.layers.{i}.", {
              "attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
              "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm",
              "attn_k_norm": "self_attn.k_norm", "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj",
              "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"})}
_TRANSPOSED = {"attn_qkv", "attn_output", "ffn_up", "ffn_down"}  # GPT-2's Conv1D stores (in, out); GGUF (out, in)
_BLOCK_NAME = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")


def _layout(arch: str) -> str:
    return "gpt2" if arch == "gpt2" else "llama"


def hf_name(arch: str, name: str) -> str | None:
    """transformers' name of GGUF tensor `name`, or None for one we do not know."""
    block = _BLOCK_NAME.fullmatch(name)
    if block:
        prefix, parts = _BLOCK[_layout(arch)]
        part = parts.get(block[2])
        return None if part is None else f"{prefix.format(i=block[1])}{part}.{block[3]}"
    stem, _, kind = name.rpartition(".")
    theirs = _GLOBAL[_layout(arch)].get(stem)
    return None if theirs is None else f"{theirs}.{kind}"


def gguf_names(arch: str) -> dict[str, str]:
    """transformers' name -> GGUF name for every tensor name pattern of `arch` (blocks as {i})."""
    names = {f"{hf}.{kind}": f"{ours}.{kind}" for ours, hf in _GLOBAL[_layout(arch)].items()
             for kind in ("weight", "bias")}
    prefix, parts = _BLOCK[_layout(arch)]
    names.update({f"{prefix}{hf}.{kind}": f"blk.{{i}}.{ours}.{kind}" for ours, hf in parts.items()
                  for kind in ("weight", "bias")})
    return names


def to_gguf_name(arch: str, hf: str) -> str:
    block = re.match(r"(transformer\.h|model\.layers)\.(\d+)\.", hf)
    pattern = hf if block is None else hf.replace(f".{block[2]}.", ".{i}.", 1)
    name = gguf_names(arch).get(pattern)
    if name is None:
        raise GptkitError(f"no GGUF name for tensor {hf!r} of a {arch} model")
    return name.format(i=block[2]) if block else name


def from_gguf_tensor(arch: str, name: str, t: torch.Tensor, hf: dict) -> torch.Tensor:
    """A tensor as read from the file -> as transformers stores it."""
    return _reorder(arch, name, t, hf, to_file=False)


def to_gguf_tensor(arch: str, name: str, t: torch.Tensor, hf: dict) -> torch.Tensor:
    """A transformers tensor -> as the file stores it (the inverse of from_gguf_tensor)."""
    return _reorder(arch, name, t, hf, to_file=True)


def _reorder(arch: str, name: str, t: torch.Tensor, hf: dict, to_file: bool) -> torch.Tensor:
    part = name.split(".")[-2]
    if arch == "gpt2" and part in _TRANSPOSED and t.dim() == 2:
        return t.t()
    if arch == "llama" and part in ("attn_q", "attn_k"):  # per head: halves (transformers) <-> pairs (llama.cpp)
        heads = hf["num_attention_heads"] if part == "attn_q" else hf["num_key_value_heads"]
        split = (2, -1) if to_file else (-1, 2)
        return t.reshape(heads, *split, *t.shape[1:]).transpose(1, 2).reshape(t.shape)
    return t


def hf_config(arch: str, meta: dict, tensors: dict[str, tuple[int, ...]]) -> dict:
    """A transformers config dict from the file's metadata and its tensors' shapes (ours, (out, in) order)."""
    def get(key, default=None):
        return meta.get(f"{arch}.{key}", default)

    def real(key, default):  # float32 in the file: its shortest spelling (1e-05, not 9.999999747378752e-06)
        return float(str(np.float32(get(key, default))))

    def need(key):
        if get(key) is None:
            raise GptkitError(f"the GGUF metadata lacks {arch}.{key}")
        return int(get(key))

    vocab = tensors["token_embd.weight"][0]
    tied = "output.weight" not in tensors
    if arch == "gpt2":
        return {"model_type": "gpt2", "vocab_size": vocab, "n_positions": need("context_length"),
                "n_embd": need("embedding_length"), "n_layer": need("block_count"),
                "n_head": need("attention.head_count"), "n_inner": need("feed_forward_length"),
                "layer_norm_epsilon": real("attention.layer_norm_epsilon", 1e-5), "tie_word_embeddings": tied}
    n_head, n_embd = need("attention.head_count"), need("embedding_length")
    head_dim = int(get("attention.key_length") or n_embd // n_head)
    if int(get("rope.dimension_count") or head_dim) != head_dim:
        raise GptkitError(f"RoPE on {get('rope.dimension_count')} of {head_dim} head dimensions (partial rotary) "
                          f"is not supported")
    if "rope_freqs.weight" in tensors:
        raise GptkitError("per-frequency RoPE factors (rope_freqs, Llama 3.1's rope scaling) are not read yet; "
                          "import the model's Hugging Face directory instead")
    hf = {"model_type": arch, "vocab_size": vocab, "hidden_size": n_embd, "num_hidden_layers": need("block_count"),
          "intermediate_size": need("feed_forward_length"), "num_attention_heads": n_head,
          "num_key_value_heads": int(get("attention.head_count_kv") or n_head), "head_dim": head_dim,
          "max_position_embeddings": need("context_length"), "rope_theta": real("rope.freq_base", 10000.0),
          "rms_norm_eps": real("attention.layer_norm_rms_epsilon", 1e-6), "tie_word_embeddings": tied,
          "attention_bias": "blk.0.attn_q.bias" in tensors, "mlp_bias": "blk.0.ffn_up.bias" in tensors}
    scaling = get("rope.scaling.type")
    if scaling not in (None, "none"):
        if scaling != "linear":
            raise GptkitError(f"RoPE scaling {scaling!r} is not supported (linear is)")
        hf["rope_scaling"] = {"rope_type": "linear", "factor": real("rope.scaling.factor", 1.0)}
    return hf


def gguf_metadata(arch: str, hf: dict) -> dict:
    """{key (without the architecture prefix): value} for a transformers config dict of `arch`."""
    if arch == "gpt2":
        return {"context_length": hf["n_positions"], "embedding_length": hf["n_embd"], "block_count": hf["n_layer"],
                "feed_forward_length": 4 * hf["n_embd"], "attention.head_count": hf["n_head"],
                "attention.layer_norm_epsilon": float(hf["layer_norm_epsilon"])}
    meta = {"context_length": hf["max_position_embeddings"], "embedding_length": hf["hidden_size"],
            "block_count": hf["num_hidden_layers"], "feed_forward_length": hf["intermediate_size"],
            "attention.head_count": hf["num_attention_heads"], "attention.head_count_kv": hf["num_key_value_heads"],
            "attention.key_length": hf["head_dim"], "attention.value_length": hf["head_dim"],
            "rope.dimension_count": hf["head_dim"], "rope.freq_base": float(hf["rope_theta"]),
            "attention.layer_norm_rms_epsilon": float(hf["rms_norm_eps"]), "vocab_size": hf["vocab_size"]}
    scaling = hf.get("rope_scaling") or {}
    if scaling.get("rope_type") not in (None, "default", "linear"):
        raise GptkitError(f"RoPE scaling {scaling['rope_type']!r} is not written to GGUF yet (linear is)")
    if scaling.get("rope_type") == "linear":
        meta.update({"rope.scaling.type": "linear", "rope.scaling.factor": float(scaling["factor"])})
    return meta
