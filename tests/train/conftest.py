"""A small shard directory and tiny run configs shared by the training tests."""

import json
import random
from pathlib import Path

import pytest

from gptkit import Tokenizer
from gptkit.config import FinetuneConfig, RunConfig, load_config
from gptkit.data import PrepareConfig, prepare
from gptkit.train.report import read_metrics
from tests.conftest import SAMPLE_TEXT


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Token shards of a small corpus with a 300-token BPE."""
    tmp = tmp_path_factory.mktemp("data")
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n\n".join(f"Paragraph {i}: " + SAMPLE_TEXT[i % 4] for i in range(300)) + "\n")
    prepare([str(corpus)], tmp / "shards", PrepareConfig(vocab_size=300, val_fraction=0.2))
    return tmp / "shards"


def _overrides(shards, out_dir, *extra) -> list[str]:
    """A 2-layer, 32-wide model on 32-token windows, fp32 on CPU; `extra` wins over the defaults."""
    return ["model.n_layer=2", "model.n_embd=32", "model.n_head=2", "model.block_size=32", f"data={shards}",
            f"out_dir={out_dir}", "batch_size=4", "max_steps=12", "warmup_steps=2", "lr=3e-3", "min_lr=3e-4",
            "eval_interval=6", "eval_batches=2", "checkpoint_interval=4", "log_interval=1", "dtype=fp32",
            "device=cpu", "keep_last=5", *extra]


def _run(shards, out_dir, *extra) -> RunConfig:
    return load_config(RunConfig, "tiny", _overrides(shards, out_dir, *extra))


def _cli(*args) -> list[str]:
    return [*args, "train", "--config", "tiny", "--quiet"]


def _losses(out_dir, after=0):
    return [r["loss"] for r in read_metrics(Path(out_dir) / "metrics.jsonl") if "loss" in r and r["step"] > after]


# -- fine-tuning: a synthetic translation task -------------------------------------

LETTERS = "abcdefgh"


def _cipher(words: str) -> str:
    """The synthetic task: every letter moves one place on (a -> b, ..., h -> a)."""
    return " ".join(LETTERS[(LETTERS.index(c) + 1) % len(LETTERS)] for c in words.split())


def _write_task(path, n, seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        source = " ".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 7)))
        rows.append(json.dumps({"source": source, "target": _cipher(source)}))
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("task")
    train, val = _write_task(tmp / "train.jsonl", 600, 0), _write_task(tmp / "val.jsonl", 40, 1)
    tokenizer = Tokenizer.train_char(["English: German:\n" + LETTERS + " "])
    tokenizer.save(tmp / "tokenizer.json")
    return train, val, tmp / "tokenizer.json"


def _finetune_overrides(task_files, out_dir, *extra) -> list[str]:
    train, val, tokenizer = task_files
    return [f"data={train}", f"val_data={val}", f"tokenizer={tokenizer}", f"out_dir={out_dir}", "n_layer=2",
            "n_head=2", "n_embd=48", "block_size=48", "batch_size=16", "max_steps=12", "warmup_steps=2", "lr=3e-3",
            "min_lr=3e-4", "eval_interval=4", "checkpoint_interval=4", "log_interval=1", "dtype=fp32", "device=cpu",
            "keep_last=5", *extra]


def _finetune_config(task_files, out_dir, *extra) -> FinetuneConfig:
    return load_config(FinetuneConfig, None, _finetune_overrides(task_files, out_dir, *extra))


# -- fine-tuning: synthetic extractive QA ------------------------------------------

THINGS = ["Zorland", "Quibe", "Marnia", "Teluk", "Vesper", "Orlan", "Pym", "Kast", "Duvo", "Rell"]
RELATIONS = ["capital", "river", "king", "colour", "animal", "mountain"]
VALUES = ["Amber", "Boro", "Cinder", "Dax", "Elm", "Fjord", "Gale", "Hollow", "Ink", "Jade", "Kelp", "Lumen"]


def _facts(n, seed, unanswerable=0.0):
    """QA rows about made-up facts: "The river of Teluk is Jade." ... "What is the river of Teluk?" """
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        facts = [(rng.choice(RELATIONS), thing, rng.choice(VALUES)) for thing in rng.sample(THINGS, 4)]
        context = " ".join(f"The {r} of {t} is {v}." for r, t, v in facts)
        relation, thing, value = rng.choice(facts)
        answers = [{"text": value, "answer_start": context.index(f"The {relation} of {thing} is ") +
                    len(f"The {relation} of {thing} is ")}]
        if rng.random() < unanswerable:  # ask about a thing the context does not mention
            thing = next(t for t in THINGS if t not in context)
            answers = []
        rows.append({"id": f"q{i}", "context": context, "question": f"What is the {relation} of {thing}?",
                     "answers": answers})
    return rows


def write_facts(path, n, seed, unanswerable=0.0):
    path.write_text("".join(json.dumps(row) + "\n" for row in _facts(n, seed, unanswerable)))
    return path
