"""Tiny stand-ins for the benchmark data sets, in their real formats, for each script's `--smoke` run.

    data = smoke.datasets(workdir)   # workdir/shared-like tree: tinyshakespeare.txt, multi30k/, squad/, ...

A smoke run checks that a benchmark script still runs from start to end and prints
its table (seconds, no downloads, no ../shared): its figures mean nothing. The
texts are random sentences over a small vocabulary, with a word-for-word German
"translation", subject lines taken from the e-mail bodies, and questions whose
answers are spans of their paragraphs.
"""

from __future__ import annotations

import atexit
import gzip
import json
import random
import shutil
import tempfile
from pathlib import Path

# A 1-layer, 16-wide model on short windows: what every smoke run trains.
TINY_MODEL = ["model.n_layer=1", "model.n_head=2", "model.n_embd=16", "model.block_size=64", "model.dropout=0",
              "model.attn_dropout=0"]
WORDS = ("man woman dog cat child ball street house water park red blue small big runs plays sits walks "
         "looks eats holds green old young tree car boat field").split()
GERMAN = dict(zip(WORDS, ("mann frau hund katze kind ball strasse haus wasser park rot blau klein gross rennt "
                          "spielt sitzt geht schaut isst haelt gruen alt jung baum auto boot feld").split()))


def workdir() -> Path:
    """A temporary directory, removed when the process exits."""
    path = Path(tempfile.mkdtemp(prefix="gptkit-smoke-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def sentences(n: int, seed: int = 0, words: int = 6) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(n)]


def datasets(root: Path) -> Path:
    """Write every data set a benchmark reads under root (laid out as ../shared/data) and return root."""
    root.mkdir(parents=True, exist_ok=True)
    lines = sentences(400, seed=1, words=10)
    text = "\n\n".join("\n".join(lines[i:i + 4]) for i in range(0, len(lines), 4)) + "\n"  # paragraphs
    (root / "tinyshakespeare.txt").write_text(text)
    (root / "wikitext-2").mkdir(exist_ok=True)
    wiki = sentences(2400, seed=12, words=10)
    (root / "wikitext-2" / "valid.txt").write_text(" = Title = \n\n" + "\n\n".join(
        " ".join(wiki[i:i + 8]) for i in range(0, len(wiki), 8)) + "\n")
    _multi30k(root / "multi30k")
    _squad(root / "squad")
    _aeslc(root / "aeslc")
    _beir(root / "scifact")
    _sts(root / "stsb")
    return root


def _gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)


def _multi30k(directory: Path) -> None:
    for split, n, seed in (("train", 300, 2), ("val", 40, 3), ("test_2016_flickr", 30, 4)):
        english = sentences(n, seed)
        _gz(directory / f"{split}.en.gz", "\n".join(english) + "\n")
        _gz(directory / f"{split}.de.gz", "\n".join(" ".join(GERMAN[w] for w in s.split()) for s in english) + "\n")
        _gz(directory / f"{split}.fr.gz", "\n".join(english) + "\n")


def _squad(directory: Path) -> None:
    for name, n, seed in (("train.json.gz", 60, 5), ("test-xquad-en.json.gz", 20, 6)):
        rng, paragraphs = random.Random(seed), []
        for i in range(n):
            context = ". ".join(sentences(4, seed * 1000 + i)) + "."
            answer = context.split(".")[1].strip().split()[2]
            start = context.index(f" {answer}", context.index(".")) + 1
            paragraphs.append({"context": context, "qas": [{
                "id": f"{seed}-{i}", "question": f"which word is {rng.choice(WORDS)} {answer}?",
                "answers": [{"text": answer, "answer_start": start}]}]})
        _gz(directory / name, json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}))


def _aeslc(directory: Path) -> None:
    for split, n, seed in (("train", 120, 7), ("dev", 30, 8)):
        rows = []
        for body in sentences(n, seed, words=24):
            subject = " ".join(body.split()[:3])
            row = {"email_body": body, "subject": subject}
            if split == "dev":
                row.update(ann0=subject, ann1=" ".join(body.split()[:2]), ann2=subject)
            rows.append(json.dumps(row))
        _gz(directory / f"{split}.jsonl.gz", "\n".join(rows) + "\n")


def _beir(directory: Path) -> None:
    docs = sentences(400, 9, words=12)
    _gz(directory / "corpus.jsonl.gz", "".join(json.dumps({"_id": f"d{i}", "title": "", "text": t}) + "\n"
                                                 for i, t in enumerate(docs)))
    queries = [(f"q{i}", " ".join(docs[i].split()[:5]), f"d{i}") for i in range(60)]
    (directory / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t, _ in queries))
    (directory / "qrels").mkdir(exist_ok=True)
    for split, rows in (("train", queries[:40]), ("test", queries[40:])):
        (directory / "qrels" / f"{split}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, _, d in rows))


def _sts(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", 80, 10), ("dev", 30, 11)):
        rng, lines = random.Random(seed), []
        for i, (a, b) in enumerate(zip(sentences(n, seed), sentences(n, seed + 100))):
            same = rng.random() < 0.5
            lines.append(f"main\tsmoke\t2026\t{i}\t{5.0 if same else rng.uniform(0, 2):.2f}\t{a}\t{a if same else b}")
        (directory / f"sts-{split}.csv").write_text("\n".join(lines) + "\n")


def tiny_base(root: Path) -> Path:
    """A tiny Llama-style checkpoint with a ChatML tokenizer and template, at random: the smoke runs'
    stand-in for a pretrained base such as SmolLM2-135M-Instruct."""
    import sys

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from gptkit import GPT, ModelConfig, Tokenizer, save_checkpoint

    specials = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    trained = Tokenizer.train_bpe(sentences(200), 400, special_tokens=specials)
    template = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    tokenizer = Tokenizer(trained.backend, "<|im_end|>", "<|im_start|>", template)
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tokenizer.vocab_size, block_size=1024, n_layer=1, n_head=2, n_embd=32,
                            norm="rmsnorm", mlp="swiglu", positions="rope", n_kv_head=1, bias=False))
    return save_checkpoint(root / "base", model, tokenizer)
