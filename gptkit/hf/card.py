"""The model card (README.md) of an export: what the model is, how big, what it saw, how it was trained."""

from __future__ import annotations

from ..model import GPT
from ..tokenizer import Tokenizer


def model_card(model: GPT, architecture: str, tokenizer: Tokenizer | None, about: dict) -> str:
    """Markdown with Hugging Face's metadata header; `about` is the checkpoint's config.json (may be empty)."""
    c = model.config
    run, task = about.get("run") or {}, about.get("task") or {}
    train = run.get("train") or {}
    licence = about.get("license") or "other"
    positions = f"RoPE (theta {c.rope_theta:g}" + (f", {c.rope_scaling.type} scaling)" if c.rope_scaling.type !=
                                                  "none" else ")") if c.positions == "rope" else "learned"
    lines = [
        "---", f"license: {licence}", "library_name: transformers", "pipeline_tag: text-generation",
        "tags: [gptkit]", "---", "", f"# {about.get('name') or 'A gptkit model'}", "",
        f"Exported by gptkit as `{architecture}`.", "", "## Architecture", "",
        "| | |", "|---|---|",
        f"| parameters | {model.num_params():,} |",
        f"| layers x width | {c.n_layer} x {c.n_embd} |",
        f"| attention heads | {c.n_head} query, {c.kv_heads} key/value, {c.head_size} wide"
        f"{', QK-norm' if c.qk_norm else ''} |",
        f"| positions | {positions} |",
        f"| norm, MLP | {c.norm}, {c.mlp} ({c.ffn_size} wide) |",
        f"| context | {c.block_size} tokens |",
        f"| vocabulary | {c.vocab_size} tokens{'' if tokenizer is None else ' (tokenizer included)'} |",
        f"| LM head | {'tied to the token embedding' if c.tie_embeddings else 'a weight of its own'} |",
        "", "## Data and training", "",
    ]
    if about.get("source"):
        lines.append(f"- Converted from `{about['source']}`.")
    if train.get("data"):
        lines.append(f"- Pretrained on the token shards `{train['data']}`.")
    if task:
        data = task.get("train_data") or task.get("data") or "its examples"
        lines.append(f"- Fine-tuned on a `{task.get('format', '?')}` task from {data}.")
    if about.get("step") is not None:
        lines.append(f"- {about['step']} optimiser steps" + (f", learning rate {train['lr']}, batch "
                     f"{train.get('batch_size')} x {train.get('grad_accum', 1)}" if train.get("lr") else "") + ".")
    if not lines[-1].startswith("-"):
        lines.append("- Not recorded (a model written by the gptkit Python API).")
    lines += ["", "## Licence", "", f"`{licence}`: set the licence of the data and weights before publishing.", ""]
    return "\n".join(lines)
