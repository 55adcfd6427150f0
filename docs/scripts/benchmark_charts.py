"""Draw the benchmark charts in docs/images/ from the tables in docs/benchmarks.md.

    python docs/scripts/benchmark_charts.py [--page docs/benchmarks.md] [--out docs/images]

The charts read the published tables, so a chart cannot disagree with its table: after a benchmark
is rerun and its table updated, rerun this script. It draws
- bench-training.png: training tokens/s, gptkit against a transformers loop (the table under
  "Training step throughput");
- bench-generation.png: decode tokens/s at a 32-token prompt, per engine, dtype and batch ("Generation");
- bench-serving.png: tokens/s against concurrent clients, per server ("Serving");
- bench-search.png: nDCG@10 on SciFact per system ("Semantic search on SciFact").
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]


def table_after(page: str, heading: str, first_column: str) -> list[dict[str, str]]:
    """The rows of the first table under `heading` whose first column is `first_column`."""
    section = page[page.index(heading):]
    match = re.search(rf"^\| {re.escape(first_column)} \|.*\n\|[-| ]+\|\n((?:\|.*\n)+)", section, re.M)
    if not match:
        raise SystemExit(f"no table starting with '{first_column}' under '{heading}'")
    names = [c.strip() for c in match.group(0).splitlines()[0].strip("|").split("|")]
    return [dict(zip(names, (c.strip() for c in line.strip("|").split("|")))) for line in
            match.group(1).splitlines()]


def machine(page: str, heading: str) -> str:
    """The machine the text under `heading` names first (the page's list of machines defines them)."""
    section = page[page.index(heading):]
    return re.search(r"XEON-AMX|EPYC-BF16|EPYC-AVX2|H200", section).group(0)


def number(cell: str) -> float:
    """'**25.81**' -> 25.81, '2,052 (78%)' -> 2052."""
    return float(re.search(r"[\d,]+(\.\d+)?", cell.replace("*", "")).group(0).replace(",", ""))


def bars(ax, groups: list[str], series: dict[str, list[float]]) -> None:
    width = 0.8 / len(series)
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
        drawn = ax.bar(xs, values, width, label=name)  # NaN: no bar (not measured)
        ax.bar_label(drawn, labels=["" if v != v else f"{v:.0f}" for v in values], fontsize=6, padding=1)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.legend(fontsize=8)


def training(page: str, plt, out: Path) -> None:
    rows = table_after(page, "### Training step throughput", "shape")
    groups = [f"{r['shape'].split(' (')[0]}\n{r['dtype']}" for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=150)
    bars(ax, groups, {"gptkit": [number(r["gptkit tokens/s (MFU)"]) for r in rows],
                      "transformers loop": [number(r["transformers loop tokens/s (MFU)"]) for r in rows]})
    ax.set(ylabel="training tokens/s",
           title=f"Training step throughput, {machine(page, '### Training step')} (higher is better)")
    _save(fig, out / "bench-training.png")


def generation(page: str, plt, out: Path) -> None:
    rows = [r for r in table_after(page, "## Generation", "dtype") if r["prompt"] == "32"]
    order = ["fp32", "bf16", "int8", "int4"]
    groups = sorted({(r["dtype"], r["batch"]) for r in rows}, key=lambda g: (order.index(g[0]), int(g[1])))
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    speed = {(r["engine"], r["dtype"], r["batch"]): number(r["decode tok/s"]) for r in rows}
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=150)
    bars(ax, [f"{d}\nbatch {b}" for d, b in groups],
         {e: [speed.get((e, d, b), float("nan")) for d, b in groups] for e in engines})
    ax.set(ylabel="decode tokens/s",
           title=f"124M GPT-2 shape, 32-token prompt, {machine(page, '## Generation')} (higher is better)")
    fig.text(0.99, 0.01, "no bar: that engine was not measured in that dtype", ha="right", fontsize=6)
    _save(fig, out / "bench-generation.png")


def serving(page: str, plt, out: Path) -> None:
    rows = table_after(page, "## Serving", "server")
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=150)
    for server in dict.fromkeys(r["server"] for r in rows):
        mine = [r for r in rows if r["server"] == server]
        ax.plot([int(r["clients"]) for r in mine], [number(r["tokens/s"]) for r in mine], "o-", label=server)
    ax.set(xscale="log", xlabel="concurrent streaming clients", ylabel="tokens/s",
           title=f"Serving a 92M model, {machine(page, '## Serving')} (higher is better)")
    ax.set_xticks([1, 4, 16, 64], ["1", "4", "16", "64"])
    ax.legend(fontsize=8)
    _save(fig, out / "bench-serving.png")


def search(page: str, plt, out: Path) -> None:
    rows = table_after(page, "## Semantic search on SciFact", "system")
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=150)
    names = [r["system"] for r in rows][::-1]
    drawn = ax.barh(names, [number(r["nDCG@10"]) for r in rows][::-1],
                    color=["tab:orange" if "gptkit" in n else "tab:blue" for n in names])
    ax.bar_label(drawn, fmt="%.3f", fontsize=7, padding=2)
    ax.tick_params(axis="y", labelsize=7)
    ax.set(xlabel="nDCG@10 on SciFact test (higher is better)", xlim=(0, 0.85),
           title=f"Retrieval on SciFact, {machine(page, '## Semantic search')}")
    _save(fig, out / "bench-search.png")


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--page", type=Path, default=DOCS / "benchmarks.md")
    p.add_argument("--out", type=Path, default=DOCS / "images")
    args = p.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    page = args.page.read_text(encoding="utf-8")
    args.out.mkdir(parents=True, exist_ok=True)
    for chart in (training, generation, serving, search):
        chart(page, plt, args.out)


if __name__ == "__main__":
    main()
