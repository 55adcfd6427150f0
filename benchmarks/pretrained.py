"""The pretrained-base arms the application benchmarks share, all from one base checkpoint (`--base`, e.g.
SmolLM2-135M-Instruct imported with `gptkit import-gguf`):

    outputs = zero_shot(base, prompts, max_new_tokens)        # the instruct model asked through its chat template
    model, tokenizer, dtype = peft_model(base, out, recipe)   # transformers + PEFT LoRA on the same weights
    gptkit_overrides(base, recipe)                            # the settings gptkit's own LoRA arm adds
    gptkit_full_overrides(base, FullRecipe())                 # ... or its full fine-tune (a new head trains too)
    directory, tokenizer = hf_directory(base, out)            # the base as transformers reads it

Each recipe is the same on both sides (LoRA: rank, alpha = 2 x rank, the same seven projections; both: AdamW,
learning rate, batch), so the two fine-tuned arms differ only in the code that trains them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LoraRecipe:
    rank: int = 16
    lr: float = 1e-3
    min_lr: float = 1e-4
    batch_size: int = 8
    max_length: int = 512  # tokens per training example (the base's window is longer)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 1337


@dataclass(frozen=True)
class FullRecipe:
    """Every weight trains, and a task head new to the base (extractive QA's span head) with them."""

    lr: float = 1e-4
    min_lr: float = 1e-5
    batch_size: int = 16
    max_length: int = 384  # tokens per training example
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 1337


def gptkit_full_overrides(base: Path, recipe: FullRecipe = FullRecipe()) -> list[str]:
    """key=value settings that turn a from-scratch fine-tuning config into the full fine-tune of `base`."""
    return [f"init={base}", "optimizer=adamw", f"lr={recipe.lr}", f"min_lr={recipe.min_lr}",
            f"batch_size={recipe.batch_size}", f"weight_decay={recipe.weight_decay}", "model.dropout=0.0",
            f"max_length={recipe.max_length}"]


def gptkit_overrides(base: Path, recipe: LoraRecipe = LoraRecipe()) -> list[str]:
    """key=value settings that turn a from-scratch fine-tuning config into the LoRA fine-tune of `base`."""
    return [f"init={base}", f"lora.rank={recipe.rank}", f"lora.alpha={2 * recipe.rank}", "optimizer=adamw",
            f"lr={recipe.lr}", f"min_lr={recipe.min_lr}", f"batch_size={recipe.batch_size}",
            f"weight_decay={recipe.weight_decay}", "model.dropout=0.0", f"max_length={recipe.max_length}"]


def zero_shot(base: Path, prompts: list[str], max_new_tokens: int, batch_size: int = 16) -> list[str]:
    """The base model's greedy reply to each prompt, each sent as one user message through its chat template."""
    import torch

    from gptkit.checkpoint import load_checkpoint
    from gptkit.data.chat import render_chat
    from gptkit.generate import Decoding
    from gptkit.generate.text import complete_texts
    from gptkit.runtime import fast_bf16

    ckpt = load_checkpoint(base)
    tokenizer = ckpt.tokenizer
    texts = [render_chat(tokenizer.chat_template, [{"role": "user", "content": p}],
                         add_generation_prompt=True, eos_token=tokenizer.eot_token,
                         bos_token=tokenizer.bos_token or "") for p in prompts]
    with torch.autocast("cpu", torch.bfloat16, enabled=fast_bf16(torch.device("cpu"))):
        replies = complete_texts(ckpt.model.eval(), tokenizer, texts, Decoding(max_new_tokens, temperature=0),
                                 batch_size)
    return [r.strip() for r in replies]


def hf_directory(base: Path, out: Path):
    """`base` written as a Hugging Face directory (gptkit's export) under `out`, and its gptkit tokenizer."""
    from gptkit.checkpoint import load_checkpoint
    from gptkit.hf import to_hf

    ckpt = load_checkpoint(base)
    return to_hf(ckpt.model, ckpt.tokenizer, out / "base-hf"), ckpt.tokenizer


def peft_model(base: Path, out: Path, recipe: LoraRecipe = LoraRecipe()):
    """transformers' model of `base` (through gptkit's export) with PEFT LoRA adapters; its gptkit tokenizer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from gptkit.runtime import fast_bf16

    directory, tokenizer = hf_directory(base, out)
    torch.manual_seed(recipe.seed)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    lora = LoraConfig(r=recipe.rank, lora_alpha=2 * recipe.rank, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    dtype = torch.bfloat16 if fast_bf16(torch.device("cpu")) else torch.float32
    return get_peft_model(model, lora), tokenizer, dtype
