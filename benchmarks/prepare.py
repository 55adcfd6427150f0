"""Data preparation speed and memory: gptkit's pipeline vs calling HF `tokenizers` directly.

    python benchmarks/prepare.py [--data ../shared/data] [--synthetic-mb 200] [--vocab-size 8192] [--huge-mb 20]

For each corpus (tinyshakespeare, wikitext-2 valid, and a synthetic corpus made
by repeating wikitext to --synthetic-mb in a temp dir): BPE training time, then
`prepare` (read, clean, tokenize, write shards) with the trained tokenizer, and
the same documents encoded by `tokenizers.Tokenizer.encode_batch` on text already
in memory. Each measurement runs in a fresh child process so its peak RSS is its own.
The ratio is raw MB/s / pipeline MB/s: our overhead over the bare tokenizer.
Exact dedup is off for the synthetic corpus (every copy would be dropped).

A second table is about memory on one huge document: wikitext-2 valid plus one
--huge-mb single-line document (wikitext joined into one line). gptkit's
prepare, with the trained tokenizer and training its own, against the bare
tokenizer encoding the same documents (the huge one in one call).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _child(kind: str, corpus: str, tokenizer_path: str, out: str, dedup: bool) -> None:
    """Run one measurement and print {seconds, tokens, max_rss_mb} as JSON."""
    from gptkit import Tokenizer
    from gptkit.data import PrepareConfig, prepare
    from gptkit.data.clean import CleanConfig

    start = time.perf_counter()
    if kind == "train":
        from gptkit.data.corpus import read_documents

        tok = Tokenizer.train_bpe(read_documents([corpus]), vocab_size=int(tokenizer_path))
        tok.save(Path(out) / "tokenizer.json")
        tokens = 0
    elif kind in ("pipeline", "pipeline-train"):  # pipeline-train: prepare trains its own BPE (vocab in the arg)
        trains = kind == "pipeline-train"
        config = PrepareConfig(val_fraction=0.1, vocab_size=int(tokenizer_path) if trains else 8192,
                               clean=CleanConfig(dedup_exact=dedup))
        manifest = prepare([corpus], Path(out) / kind, config, None if trains else Tokenizer.load(tokenizer_path))
        tokens = sum(s["tokens"] for s in manifest["splits"].values())
    else:  # raw: the same paragraphs, from memory, straight into the Rust tokenizer
        from tokenizers import Tokenizer as Raw

        raw = Raw.from_file(tokenizer_path)
        docs, paragraph = [], []  # the same paragraphs as gptkit's reader: split at blank lines
        for line in Path(corpus).read_text(encoding="utf-8").splitlines(keepends=True):
            if line.strip():
                paragraph.append(line)
            elif paragraph:
                docs.append("".join(paragraph))
                paragraph = []
        docs += ["".join(paragraph)] if paragraph else []
        start = time.perf_counter()  # time the tokenizer, not the file read
        tokens = 0
        for i in range(0, len(docs), 512):
            tokens += sum(len(e.ids) for e in raw.encode_batch(docs[i : i + 512], add_special_tokens=False))
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "tokens": tokens, "max_rss_mb": rss}))


def _measure(kind: str, corpus: Path, tokenizer: str, out: Path, dedup: bool = True) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, str(corpus), tokenizer, str(out), str(int(dedup))]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--synthetic-mb", type=int, default=200)
    p.add_argument("--vocab-size", type=int, default=8192)
    p.add_argument("--huge-mb", type=int, default=20, help="size of the one-line document (0: skip)")
    p.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("--smoke", action="store_true",
                   help="a tiny run that only checks the script works (seconds; its figures mean nothing)")
    args = p.parse_args()
    if args.smoke:
        import smoke

        args.data, args.synthetic_mb, args.vocab_size, args.huge_mb = str(smoke.datasets(smoke.workdir())), 1, 300, 1
    if args.child:
        kind, corpus, tokenizer, out, dedup = args.child
        return _child(kind, corpus, tokenizer, out, dedup == "1")

    data = Path(args.data)
    shakespeare, wikitext = data / "tinyshakespeare.txt", data / "wikitext-2" / "valid.txt"
    if not shakespeare.is_file() or not wikitext.is_file():
        sys.exit(f"benchmark data not found under {data}: pass --data DIR (see shared/data/README.md)")
    print(f"# prepare benchmark: BPE vocab {args.vocab_size}, 2 measurements per corpus, each in its own process")
    print("| corpus | MB | BPE train s | pipeline MB/s | raw tokenizers MB/s | overhead (raw/pipeline) "
          "| pipeline peak RSS MB | raw peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthetic = tmp / "synthetic.txt"
        chunk = wikitext.read_bytes()
        with open(synthetic, "wb") as fh:
            for _ in range(max(1, args.synthetic_mb * 2**20 // len(chunk))):
                fh.write(chunk)
        for name, corpus, train_on in [("tinyshakespeare", shakespeare, shakespeare),
                                       ("wikitext-2 valid", wikitext, wikitext),
                                       (f"synthetic ({args.synthetic_mb} MB)", synthetic, wikitext)]:
            work = tmp / name.split()[0]
            work.mkdir()
            trained = _measure("train", train_on, str(args.vocab_size), work)
            tok = str(work / "tokenizer.json")
            dedup = corpus != synthetic
            pipe = _measure("pipeline", corpus, tok, work, dedup)
            raw = _measure("raw", corpus, tok, work)
            mb = corpus.stat().st_size / 1e6
            pipe_speed, raw_speed = mb / pipe["seconds"], mb / raw["seconds"]
            train_note = f"{trained['seconds']:.1f}" + ("" if train_on == corpus else " (on wikitext)")
            print(f"| {name} | {mb:.1f} | {train_note} | {pipe_speed:.2f} | {raw_speed:.2f} | "
                  f"{raw_speed / pipe_speed:.2f}x | {pipe['max_rss_mb']:.0f} | {raw['max_rss_mb']:.0f} |", flush=True)
        if args.huge_mb:
            _huge_document(tmp, wikitext, args.huge_mb, args.vocab_size, str(tmp / "wikitext-2" / "tokenizer.json"))


def _huge_document(tmp: Path, wikitext: Path, mb: int, vocab_size: int, tokenizer: str) -> None:
    """Peak memory with one huge single-line document among ordinary ones."""
    corpus = tmp / "huge.txt"
    line = " ".join(wikitext.read_text(encoding="utf-8").split())  # one line, no blank lines
    with open(corpus, "w", encoding="utf-8") as fh:
        fh.write(wikitext.read_text(encoding="utf-8") + "\n\n")
        fh.write((line + " ") * max(1, mb * 2**20 // len(line)) + "\n")
    size = corpus.stat().st_size / 1e6
    print(f"\n# one {mb} MB single-line document plus wikitext-2 valid ({size:.1f} MB in all)")
    print("| run | seconds | peak RSS MB |")
    print("|---|---|---|")
    for label, kind, arg in [("gptkit prepare, given the tokenizer", "pipeline", tokenizer),
                             (f"gptkit prepare, training a {vocab_size} BPE", "pipeline-train", str(vocab_size)),
                             ("bare tokenizers, each document in one call", "raw", tokenizer)]:
        result = _measure(kind, corpus, arg, tmp)
        print(f"| {label} | {result['seconds']:.1f} | {result['max_rss_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
