"""Draw docs/images/pipeline.png: gptkit's stages and what flows between them.

    python docs/scripts/pipeline.py [--out docs/images/pipeline.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

STAGES = [  # (label, command, x, y)
    ("corpus files", "txt, jsonl, csv, parquet", 0.0, 1.0),
    ("token shards", "gptkit prepare", 1.0, 1.0),
    ("checkpoint", "gptkit train (grow)", 2.0, 1.0),
    ("text", "gptkit generate", 3.0, 1.9),
    ("task model", "gptkit finetune", 3.0, 1.3),
    ("index", "gptkit index / search", 3.0, 0.7),
    ("HTTP API", "gptkit serve", 3.0, 0.1),
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

    fig, ax = plt.subplots(figsize=(10, 3.6))
    for a, b in EDGES:
        (_, _, xa, ya), (_, _, xb, yb) = STAGES[a], STAGES[b]
        start = (xa + 0.36, ya) if xb > xa else (xa, ya - 0.2)
        end = (xb - 0.36, yb) if xb > xa else (xb, yb + 0.2)
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", color="#555", lw=1.4))
    for label, command, x, y in STAGES:
        ax.add_patch(FancyBboxPatch((x - 0.35, y - 0.2), 0.7, 0.4, boxstyle="round,pad=0.02", fc="#e8eefc",
                                    ec="#3f51b5", lw=1.2))
        ax.text(x, y + 0.05, label, ha="center", va="center", fontsize=10, weight="bold")
        ax.text(x, y - 0.1, command, ha="center", va="center", fontsize=7.5, family="monospace", color="#333")
    ax.set_xlim(-0.45, 3.45)
    ax.set_ylim(-0.2, 2.2)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
