"""Draw the course's pictures, each in English (course-NAME.png) and Chinese (course-NAME.zh.png).

    python docs/scripts/course_figures.py [--out docs/images] [--only attention,block,...]

Every number drawn is computed here: the attention weights by a masked softmax, the BPE merges by training
gptkit's tokenizer, the sampling distributions by gptkit's own filters.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
ZH_FONTS = ["WenQuanYi Micro Hei", "Noto Sans CJK SC", "Source Han Sans SC"]
TEXT = {  # label: (English, Chinese)
    "scores": ("scores  q·k / √d  with the causal mask", "分数 q·k / √d，加上因果掩码"),
    "weights": ("weights: softmax of each row", "权重：每一行做 softmax"),
    "query": ("query (the token reading)", "查询（正在读的 token）"),
    "key": ("key (the token read)", "键（被读的 token）"),
    "tokens_en": ("the cat sat on the mat".split(), "猫 坐 在 垫 子 上".split()),
    "block_title": ("One GPT-2 block, repeated L times", "一个 GPT-2 块，重复 L 次"),
    "embed": ("token + position embedding", "token 嵌入 + 位置嵌入"),
    "attn": ("causal self-attention", "因果自注意力"),
    "mlp": ("MLP  C → 4C → C", "MLP  C → 4C → C"),
    "head": ("final LayerNorm, then logits = h · Eᵀ", "最后的 LayerNorm，再算 logits = h · Eᵀ"),
    "ids": ("token ids (B, T)", "token id (B, T)"),
    "logits": ("logits (B, T, V)", "logits (B, T, V)"),
    "residual": ("residual stream (B, T, C)", "残差流 (B, T, C)"),
    "merges": ("BPE: the text after each learned merge", "BPE：每学到一次合并后的切分"),
    "merge_n": ("{n} merges", "{n} 次合并"),
    "cache_title": ("Decoding with a KV cache: each step adds one row", "带 KV 缓存的解码：每一步只新增一行"),
    "step": ("step {n}", "第 {n} 步"),
    "new_row": ("new key/value", "新的键/值"),
    "cached": ("cached", "已缓存"),
    "one_query": ("one query", "一个查询"),
    "knobs_title": ("The same next-token distribution, shaped by each setting",
                    "同一个下一 token 分布，在各设置下的样子"),
    "lora_title": ("LoRA: W stays frozen, a low-rank B·A learns", "LoRA：W 冻结，只训练低秩的 B·A"),
    "frozen": ("W (frozen)\nd × k", "W（冻结）\nd × k"),
    "mask_title": ("Chat fine-tuning: only the assistant's tokens are scored", "对话微调：只有助手的 token 计入损失"),
    "gqa_title": ("Grouped-query attention: 9 query heads share 3 key/value heads (SmolLM2)",
                  "分组查询注意力：9 个查询头共用 3 个键/值头（SmolLM2）"),
    "query_heads": ("query heads", "查询头"),
    "kv_heads": ("key/value heads\n(what the cache stores)", "键/值头\n（缓存里存的）"),
    "tasks_title": ("One model, many tasks: each a prompt to continue",
                    "一个模型，多种任务：每种任务都是一段待续写的提示"),
    "prompt": ("prompt (context)", "提示（上下文）"),
    "completion": ("completion (in the loss)", "续写（计入损失）"),
    "overlap_title": ("Contamination: a test item sharing a 5-word run with the training text",
                      "数据污染：测试样本与训练文本共有连续 5 个词"),
    "train_text": ("training text", "训练文本"),
    "test_text": ("test item", "测试样本"),
    "in_loss": ("in the loss", "计入损失"),
    "not_in_loss": ("not scored (label −1)", "不计入（标签 −1）"),
}


def chinese_font() -> list[str]:
    """The names of the Chinese fonts matplotlib can use; fontconfig's choice is added (its cache may predate
    the font's installation)."""
    import subprocess

    from matplotlib import font_manager

    try:
        path = subprocess.run(["fc-match", "-f", "%{file}", "sans-serif:lang=zh-cn"], capture_output=True,
                              text=True).stdout
    except OSError:
        path = ""
    if path.endswith((".ttf", ".ttc", ".otf")):
        font_manager.fontManager.addfont(path)
    known = {font.name for font in font_manager.fontManager.ttflist}
    return [name for name in ZH_FONTS if name in known]


def text(key: str, zh: bool) -> str:
    return TEXT[key][1 if zh else 0]


def attention(ax_pair, zh: bool) -> None:
    import torch

    tokens = text("tokens_en", zh)
    T = len(tokens)
    torch.manual_seed(3)
    q, k = torch.randn(T, 8), torch.randn(T, 8)
    scores = q @ k.T / math.sqrt(8)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    weights = scores.masked_fill(future, float("-inf")).softmax(-1)
    for ax, values, title, fmt in ((ax_pair[0], scores, text("scores", zh), "{:.1f}"),
                                   (ax_pair[1], weights, text("weights", zh), "{:.2f}")):
        shown = values.masked_fill(future, float("nan")).numpy()
        ax.imshow(shown, cmap="Blues" if ax is ax_pair[1] else "coolwarm", vmin=None)
        for i in range(T):
            for j in range(T):
                label = "−∞" if j > i and ax is ax_pair[0] else ("0" if j > i else fmt.format(values[i, j]))
                ax.text(j, i, label, ha="center", va="center", fontsize=9, color="#666" if j > i else "black")
        ax.set_facecolor("#e0e0e0")
        ax.set_xticks(range(T), tokens)
        ax.set_yticks(range(T), tokens)
        ax.set_xlabel(text("key", zh))
        ax.set_ylabel(text("query", zh))
        ax.set_title(title, fontsize=11)


def block(ax, zh: bool) -> None:
    from matplotlib.patches import FancyBboxPatch

    rows = [("ids", "#eeeeee"), ("embed", "#e8eefc"), ("LN", "#fff4e0"), ("attn", "#e8eefc"), ("LN", "#fff4e0"),
            ("mlp", "#e8eefc"), ("head", "#fff4e0"), ("logits", "#eeeeee")]
    y = len(rows)
    for name, colour in rows:
        label = "LayerNorm" if name == "LN" else text(name, zh)
        ax.add_patch(FancyBboxPatch((0.2, y - 0.35), 2.6, 0.6, boxstyle="round,pad=0.03", fc=colour, ec="#3f51b5"))
        ax.text(1.5, y - 0.05, label, ha="center", va="center", fontsize=10)
        if y > 1:
            ax.annotate("", xy=(1.5, y - 0.63), xytext=(1.5, y - 0.38), arrowprops=dict(arrowstyle="->"))
        y -= 1
    for top, bottom in ((6, 5), (4, 3)):  # the residual connections around attention and the MLP
        ax.annotate("", xy=(2.85, bottom - 0.65), xytext=(2.85, top + 0.3),
                    arrowprops=dict(arrowstyle="->", color="#c62828", connectionstyle="arc3,rad=-0.5", lw=1.5))
        ax.text(3.45, bottom + 0.1, "+", color="#c62828", fontsize=16, ha="center")
    ax.add_patch(FancyBboxPatch((0.05, 2.5), 3.7, 4.1, boxstyle="round,pad=0.02", fc="none", ec="#888", ls="--"))
    ax.text(-0.1, 4.5, text("block_title", zh), fontsize=10, color="#555", rotation=90, va="center", ha="center")
    ax.text(3.85, 4.5, text("residual", zh), fontsize=9, color="#c62828", rotation=90, va="center")
    ax.set_xlim(-0.35, 4.3)
    ax.set_ylim(0.5, 8.4)
    ax.axis("off")


def bpe(ax, zh: bool) -> None:
    from gptkit import Tokenizer

    corpus = ["lower lowest newer newest wider widest"] * 20  # the same words on both pages: merges are bytes
    sample = corpus[0]
    rows = []
    for merges in (0, 2, 4, 8, 16):
        tokenizer = Tokenizer.train_bpe(corpus, vocab_size=257 + merges)
        pieces = [tokenizer.decode([i]) for i in tokenizer.encode(sample)]
        rows.append((merges, pieces))
    widest = 0.0
    for r, (merges, pieces) in enumerate(rows):
        y = len(rows) - r
        ax.text(-0.2, y, text("merge_n", zh).format(n=merges), ha="right", va="center", fontsize=10)
        x = 0.0
        for piece in pieces:
            width = 0.28 * len(piece) + 0.12
            ax.add_patch(__import__("matplotlib.patches", fromlist=["Rectangle"]).Rectangle(
                (x, y - 0.3), width, 0.6, fc="#e8eefc", ec="#3f51b5"))
            ax.text(x + width / 2, y, piece.replace(" ", "␣"), ha="center", va="center", fontsize=9)
            x += width + 0.05
        widest = max(widest, x)
    ax.set_xlim(-2.0, widest + 0.2)
    ax.set_ylim(0.3, len(rows) + 0.7)
    ax.set_title(text("merges", zh), fontsize=11)
    ax.axis("off")


def kv_cache(axes, zh: bool) -> None:
    from matplotlib.patches import Rectangle

    for n, ax in enumerate(axes, start=1):
        for row in range(n):
            new = row == n - 1
            for x in (0.0, 1.4):  # K, then V
                ax.add_patch(Rectangle((x, -row), 1.0, 0.8, fc="#ffcc80" if new else "#e8eefc", ec="#3f51b5"))
        ax.add_patch(Rectangle((3.0, -(n - 1)), 1.0, 0.8, fc="#a5d6a7", ec="#2e7d32"))
        ax.text(0.5, 1.1, "K", ha="center", fontsize=11)
        ax.text(1.9, 1.1, "V", ha="center", fontsize=11)
        ax.text(3.5, 1.1, "q", ha="center", fontsize=11)
        ax.set_title(text("step", zh).format(n=n), fontsize=10)
        ax.set_xlim(-0.2, 4.3)
        ax.set_ylim(-4.2, 1.6)
        ax.axis("off")
    axes[0].legend(handles=[Rectangle((0, 0), 1, 1, fc=c, ec="#3f51b5") for c in ("#e8eefc", "#ffcc80", "#a5d6a7")],
                    labels=[text("cached", zh), text("new_row", zh), text("one_query", zh)], loc="lower left",
                    fontsize=8)


def sampling(axes, zh: bool) -> None:
    import torch

    from gptkit.generate.sampling import Sampling, filter_logits

    logits = torch.tensor([3.0, 2.5, 2.0, 1.2, 0.8, 0.3, -0.2, -1.0])
    settings = [("T = 1", Sampling()), ("T = 0.5", Sampling(temperature=0.5)), ("T = 2", Sampling(temperature=2.0)),
                ("top_k = 3", Sampling(top_k=3)), ("top_p = 0.6", Sampling(top_p=0.6)),
                ("min_p = 0.1", Sampling(min_p=0.1))]
    for ax, (label, sampling) in zip(axes, settings):
        probs = filter_logits(logits[None], sampling).softmax(-1)[0]
        ax.bar(range(len(probs)), probs.numpy(), color="#3f51b5")
        ax.set_ylim(0, 1)
        ax.set_xticks(range(len(probs)), [f"t{i}" for i in range(len(probs))], fontsize=7)
        ax.set_title(label, fontsize=10)


def lora(ax, zh: bool) -> None:
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((0, 0), 3, 3, fc="#e0e0e0", ec="#555"))
    ax.text(1.5, 1.5, text("frozen", zh), ha="center", va="center", fontsize=11)
    ax.text(3.5, 1.5, "+", fontsize=20, ha="center", va="center")
    ax.add_patch(Rectangle((4.0, 0), 0.5, 3, fc="#ffcc80", ec="#e65100"))
    ax.text(4.25, -0.3, "B  d × r", ha="center", fontsize=10)
    ax.add_patch(Rectangle((4.7, 2.5), 3, 0.5, fc="#ffcc80", ec="#e65100"))
    ax.text(6.2, 3.2, "A  r × k", ha="center", fontsize=10)
    ax.text(6.2, 1.2, "ΔW = (α / r) · B A", ha="center", fontsize=11)
    ax.set_xlim(-0.3, 8.0)
    ax.set_ylim(-0.7, 3.7)
    ax.set_title(text("lora_title", zh), fontsize=11)
    ax.axis("off")


def loss_mask(ax, zh: bool) -> None:
    from matplotlib.patches import Rectangle

    parts = [("<|user|>\n", False), ("What is 2+2?" if not zh else "2+2 等于几？", False), ("\n<|assistant|>\n", False),
             ("4" if not zh else "等于 4", True), ("<|endoftext|>", True)]
    x = 0.0
    for piece, scored in parts:
        width = 0.16 * len(piece.strip()) + 0.4
        ax.add_patch(Rectangle((x, 0), width, 0.8, fc="#a5d6a7" if scored else "#e0e0e0", ec="#555"))
        ax.text(x + width / 2, 0.4, piece.strip(), ha="center", va="center", fontsize=9)
        x += width + 0.08
    ax.legend(handles=[Rectangle((0, 0), 1, 1, fc=c, ec="#555") for c in ("#a5d6a7", "#e0e0e0")],
              labels=[text("in_loss", zh), text("not_in_loss", zh)], loc="upper center", ncol=2, fontsize=9,
              bbox_to_anchor=(0.5, -0.05))
    ax.set_xlim(-0.1, x)
    ax.set_ylim(-0.6, 1.2)
    ax.set_title(text("mask_title", zh), fontsize=11)
    ax.axis("off")


def gqa(ax, zh: bool) -> None:
    from matplotlib.patches import Rectangle

    for h in range(9):
        ax.add_patch(Rectangle((h * 1.1, 2.0), 0.9, 0.6, fc="#e8eefc", ec="#3f51b5"))
        ax.text(h * 1.1 + 0.45, 2.3, f"q{h}", ha="center", va="center", fontsize=9)
        group = h // 3
        ax.annotate("", xy=(group * 3.3 + 1.45, 0.85), xytext=(h * 1.1 + 0.45, 2.0),
                    arrowprops=dict(arrowstyle="->", color="#888"))
    for g in range(3):
        ax.add_patch(Rectangle((g * 3.3 + 0.55, 0.2), 1.8, 0.6, fc="#ffcc80", ec="#e65100"))
        ax.text(g * 3.3 + 1.45, 0.5, f"k{g}, v{g}", ha="center", va="center", fontsize=9)
    ax.text(-0.3, 2.3, text("query_heads", zh), ha="right", va="center", fontsize=9)
    ax.text(-0.3, 0.5, text("kv_heads", zh), ha="right", va="center", fontsize=9)
    ax.set_xlim(-3.2, 10.0)
    ax.set_ylim(0.0, 3.0)
    ax.set_title(text("gqa_title", zh), fontsize=11)
    ax.axis("off")


def tasks(ax, zh: bool) -> None:
    from matplotlib.patches import Rectangle

    from gptkit.data import Record, Task

    rows = [Task("translation").prompt(Record({"source": "A man rides a bike.", "target": ""})),
            Task("summarization").prompt(Record({"document": "The meeting moved to Tuesday.", "summary": ""})),
            Task("qa").prompt(Record({"context": "The Seine flows through Paris.",
                                      "question": "What flows through Paris?", "answer": ""}))]
    answers = ["Ein Mann fährt Fahrrad.", "Meeting on Tuesday", "The Seine"]
    for r, (prompt, answer) in enumerate(zip(rows, answers)):
        y = 2 - r
        shown = prompt.replace("\n", " ⏎ ")
        width = 0.105 * len(shown)
        ax.add_patch(Rectangle((0, y), width, 0.7, fc="#e0e0e0", ec="#555"))
        ax.text(0.1, y + 0.35, shown, va="center", fontsize=8.5, family="monospace")
        ax.add_patch(Rectangle((width + 0.1, y), 0.105 * len(answer) + 0.3, 0.7, fc="#a5d6a7", ec="#555"))
        ax.text(width + 0.25, y + 0.35, answer, va="center", fontsize=8.5, family="monospace")
    ax.legend(handles=[Rectangle((0, 0), 1, 1, fc=c, ec="#555") for c in ("#e0e0e0", "#a5d6a7")],
              labels=[text("prompt", zh), text("completion", zh)], loc="upper center", ncol=2, fontsize=9,
              bbox_to_anchor=(0.5, -0.02))
    ax.set_xlim(-0.1, 12.5)
    ax.set_ylim(-0.2, 2.9)
    ax.set_title(text("tasks_title", zh), fontsize=11)
    ax.axis("off")


def overlap(ax, zh: bool) -> None:
    train = "the quick brown fox jumps over the lazy dog near the river bank".split()
    test = "a quick brown fox jumps over the lazy dog".split()
    n = 5
    grams = {tuple(train[i:i + n]) for i in range(len(train) - n + 1)}
    shared = set()
    for i in range(len(test) - n + 1):
        if tuple(test[i:i + n]) in grams:
            shared.update(range(i, i + n))
    for y, (label, words, marked) in enumerate([(text("test_text", zh), test, shared),
                                                (text("train_text", zh), train, None)]):
        ax.text(-0.2, 1 - y, label, ha="right", va="center", fontsize=10)
        x = 0.0
        for i, word in enumerate(words):
            hit = i in marked if marked is not None else any(
                tuple(train[j:j + n]) in {tuple(test[k:k + n]) for k in range(len(test) - n + 1)}
                for j in range(max(0, i - n + 1), min(i, len(train) - n) + 1))
            width = 0.16 * len(word) + 0.2
            ax.text(x + width / 2, 1 - y, word, ha="center", va="center", fontsize=10,
                    bbox=dict(fc="#ffcc80" if hit else "#f5f5f5", ec="#999", boxstyle="round,pad=0.2"))
            x += width + 0.12
    ax.set_xlim(-2.3, 13)
    ax.set_ylim(-0.6, 1.6)
    ax.set_title(text("overlap_title", zh), fontsize=11)
    ax.axis("off")


FIGURES = {  # name: (draw, rows, columns, size)
    "attention": (attention, 1, 2, (10, 4.4)),
    "block": (block, 1, 1, (5.2, 6.4)),
    "bpe": (bpe, 1, 1, (10, 3.4)),
    "kvcache": (kv_cache, 1, 4, (10, 3.2)),
    "sampling": (sampling, 1, 6, (12, 2.6)),
    "lora": (lora, 1, 1, (7, 3.6)),
    "lossmask": (loss_mask, 1, 1, (8, 1.9)),
    "gqa": (gqa, 1, 1, (9, 2.6)),
    "tasks": (tasks, 1, 1, (10, 2.8)),
    "overlap": (overlap, 1, 1, (10, 2.0)),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "images"))
    p.add_argument("--only", help="comma-separated names: " + ", ".join(FIGURES))
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name in args.only.split(",") if args.only else FIGURES:
        draw, rows, columns, size = FIGURES[name]
        for zh in (False, True):
            # a list falls back glyph by glyph: Chinese from the first, ᵀ and ␣ from DejaVu
            plt.rcParams["font.family"] = [*chinese_font(), "DejaVu Sans"] if zh else ["DejaVu Sans"]
            fig, axes = plt.subplots(rows, columns, figsize=size)
            draw(axes, zh)
            if name == "sampling":
                fig.suptitle(text("knobs_title", zh), fontsize=11)
            if name == "kvcache":
                fig.suptitle(text("cache_title", zh), fontsize=11)
            fig.tight_layout()
            path = Path(args.out) / f"course-{name}{'.zh' if zh else ''}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
