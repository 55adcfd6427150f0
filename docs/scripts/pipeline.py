"""Draw docs/images/pipeline.png (and pipeline.zh.png, in Chinese): gptkit's stages and what flows between them.

    python docs/scripts/pipeline.py [--out docs/images/pipeline.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

STAGES = [  # (label, its Chinese, command, x, y)
    ("corpus files", "语料文件", "txt, jsonl, csv, parquet", 0.0, 1.0),
    ("token shards", "token 分片", "gptkit prepare", 1.0, 1.0),
    ("checkpoint", "检查点", "gptkit train (grow)", 2.0, 1.0),
    ("text", "文本", "gptkit generate", 3.0, 1.9),
    ("task model", "任务模型", "gptkit finetune", 3.0, 1.3),
    ("index", "索引", "gptkit index / search", 3.0, 0.7),
    ("HTTP API", "HTTP API", "gptkit serve", 3.0, 0.1),
]
EDGES = [(0, 1), (1, 2), (2, 3), (2, 4), (2, 5), (2, 6)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "images" / "pipeline.png"))
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from course_figures import chinese_font

    for zh in (False, True):
        plt.rcParams["font.family"] = [*chinese_font(), "DejaVu Sans"] if zh else ["DejaVu Sans"]
        fig, ax = plt.subplots(figsize=(10, 3.6))
        for a, b in EDGES:
            (*_, xa, ya), (*_, xb, yb) = STAGES[a], STAGES[b]
            start = (xa + 0.36, ya) if xb > xa else (xa, ya - 0.2)
            end = (xb - 0.36, yb) if xb > xa else (xb, yb + 0.2)
            ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", color="#555", lw=1.4))
        for label, label_zh, command, x, y in STAGES:
            ax.add_patch(FancyBboxPatch((x - 0.35, y - 0.2), 0.7, 0.4, boxstyle="round,pad=0.02", fc="#e8eefc",
                                        ec="#3f51b5", lw=1.2))
            ax.text(x, y + 0.05, label_zh if zh else label, ha="center", va="center", fontsize=10, weight="bold")
            ax.text(x, y - 0.1, command, ha="center", va="center", fontsize=7.5, family="monospace", color="#333")
        ax.set_xlim(-0.45, 3.45)
        ax.set_ylim(-0.2, 2.2)
        ax.axis("off")
        fig.tight_layout()
        out = Path(args.out)
        fig.savefig(out.with_name(out.stem + ".zh.png") if zh else out, dpi=90)
        plt.close(fig)
    print(f"wrote {args.out} and its Chinese twin")


if __name__ == "__main__":
    main()
