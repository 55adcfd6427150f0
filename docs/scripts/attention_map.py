"""Draw docs/images/attention-map.png: where each head of a small model trained here looks.

    python docs/scripts/attention_map.py [--steps 1000] [--out docs/images/attention-map.png]

Trains a 2-layer, 4-head character model for a thousand steps on text in which every line repeats
the previous one (so copying from one line back is the useful skill), then draws the attention
weights of each head of the last layer on one line of text: rows are queries, columns keys.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # course_figures, for the Chinese font
from gptkit import GPT, ModelConfig, Tokenizer  # noqa: E402
from gptkit.model import Layout  # noqa: E402

TEXT = "the cat sat on the mat\nthe cat sat on the mat\na dog ran in the fog\na dog ran in the fog\n" * 40


def train(steps: int) -> tuple[GPT, Tokenizer]:
    torch.manual_seed(0)
    tokenizer = Tokenizer.train_char([TEXT])
    ids = torch.tensor(tokenizer.encode(TEXT))
    model = GPT(ModelConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=4, n_embd=64,
                            dropout=0.0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - 65, (16,))
        batch = torch.stack([ids[s : s + 65] for s in starts])
        loss = model(batch[:, :-1], batch[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"trained {steps} steps, loss {loss.item():.3f}")
    return model.eval(), tokenizer


def attention_weights(model: GPT, idx: torch.Tensor, layer: int) -> torch.Tensor:
    """(H, T, T): softmax(QK^T / sqrt(d)) with the causal mask, from the layer's own weights."""
    with torch.no_grad():
        x = model.drop(model.wte(idx) + model.wpe(torch.arange(idx.shape[1])))
        for block in model.blocks[:layer]:
            x = block(x, None, Layout(end=idx.shape[1]))
        block = model.blocks[layer]
        B, T, C = x.shape
        H = block.attn.n_head
        q, k, _ = block.attn.qkv(block.ln_1(x)).split(C, dim=2)
        q, k = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k))
        scores = q @ k.transpose(-2, -1) / math.sqrt(C // H)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        return scores.masked_fill(~causal, float("-inf")).softmax(-1)[0]


def describe(weights: torch.Tensor, line: int, zh: bool) -> str:
    """Where a head's attention goes, over the queries of the second copy of the line: the share on the
    character one line up (the aligned one or the one after it: what copying reads), on the last three
    characters, and on the first character (where a head parks attention it has no use for)."""
    queries = range(line + 1, weights.shape[0])
    up = sum(weights[q, q - line - 1 : q - line + 1].sum() for q in queries) / len(queries)
    near = sum(weights[q, q - 2 : q + 1].sum() for q in queries) / len(queries)
    first = sum(weights[q, 0] for q in queries) / len(queries)
    if zh:
        return f"上一行对应处 {up:.0%} · 最近三个字符 {near:.0%} · 第一个字符 {first:.0%}"
    return f"line above {up:.0%} · last three characters {near:.0%} · first character {first:.0%}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "images" / "attention-map.png"),
                   help="the English picture; the Chinese one goes beside it as NAME.zh.png")
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from course_figures import chinese_font

    model, tokenizer = train(args.steps)
    line = "a dog ran in the fog"  # a line of the training text, twice: the second copy can be copied
    text = f"{line}\n{line}"
    weights = attention_weights(model, torch.tensor([tokenizer.encode(text)]), layer=1)
    labels = [c if c != "\n" else "\\n" for c in text]
    for zh in (False, True):
        plt.rcParams["font.family"] = [*chinese_font(), "DejaVu Sans"] if zh else ["DejaVu Sans"]
        fig, axes = plt.subplots(2, 2, figsize=(11, 11))
        for head, ax in enumerate(axes.flat):
            ax.imshow(weights[head], cmap="viridis", vmin=0, vmax=1)
            name = f"第 2 层，第 {head + 1} 个头" if zh else f"layer 2, head {head + 1}"
            reads = describe(weights[head], len(line), zh)
            ax.set_title(f"{name}\n{reads}", fontsize=10.5)
            ax.set_xticks(range(len(labels)), labels, fontsize=9)
            ax.set_yticks(range(len(labels)), labels, fontsize=9)
            ax.set_xlabel("键（被读的字符）" if zh else "key (the character read)")
            ax.set_ylabel("查询（正在读的字符）" if zh else "query (the character reading)")
        fig.tight_layout()
        out = Path(args.out)
        path = out.with_name(out.stem + ".zh.png") if zh else out
        fig.savefig(path, dpi=90)
        plt.close(fig)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
