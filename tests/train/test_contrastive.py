"""Contrastive fine-tuning: text pairs make a language model an encoder that retrieves paraphrases."""

import json
import random

import numpy as np
import pytest
import torch

from gptkit import Tokenizer
from gptkit.checkpoint import load_checkpoint, save_checkpoint
from gptkit.config import FinetuneConfig, ModelConfig, load_config
from gptkit.data import Task
from gptkit.data.tasks import Record
from gptkit.errors import GptkitError
from gptkit.model import GPT, Encoder
from gptkit.model import embed as embed_ids
from gptkit.search.embed import embed
from gptkit.train import finetune
from gptkit.train.contrastive import TextBatches, collate, contrastive_loss, text_ids
from gptkit.train.report import read_metrics

SYNONYMS = [("big", "large"), ("small", "tiny"), ("fast", "quick"), ("happy", "glad"), ("car", "automobile"),
            ("house", "home"), ("begin", "start"), ("end", "finish"), ("buy", "purchase"), ("help", "assist"),
            ("smart", "clever"), ("angry", "mad"), ("rich", "wealthy"), ("hard", "difficult"), ("easy", "simple"),
            ("shut", "close"), ("talk", "speak"), ("jump", "leap"), ("cry", "weep"), ("look", "see")]


def paraphrases(n: int, seed: int) -> list[dict]:
    """Three words and the same three said with their synonyms: no token in common."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        pairs = rng.sample(SYNONYMS, 3)
        rows.append({"query": " ".join(a for a, _ in pairs), "positive": " ".join(b for _, b in pairs)})
    return rows


def recall_at_1(model, tokenizer, rows) -> float:
    queries = embed(model, tokenizer, [r["query"] for r in rows])
    documents = embed(model, tokenizer, [r["positive"] for r in rows])
    return float(np.mean((queries @ documents.T).argmax(axis=1) == np.arange(len(rows))))


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pairs")
    for name, n, seed in (("train", 800, 0), ("val", 64, 1)):
        (tmp / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in paraphrases(n, seed)))
    words = " ".join(w for pair in SYNONYMS for w in pair)
    Tokenizer.train_bpe([words] * 20, 400).save(tmp / "tokenizer.json")
    return tmp


def _config(pair_files, out, *extra) -> FinetuneConfig:
    return load_config(FinetuneConfig, None, [
        f"data={pair_files / 'train.jsonl'}", f"val_data={pair_files / 'val.jsonl'}",
        f"tokenizer={pair_files / 'tokenizer.json'}", f"out_dir={out}", "n_layer=2", "n_head=2", "n_embd=64",
        "block_size=32", "batch_size=32", "max_steps=80", "warmup_steps=5", "lr=3e-3", "min_lr=3e-4",
        "eval_interval=40", "checkpoint_interval=40", "log_interval=10", "dtype=fp32", "device=cpu",
        "select=recall1", "temperature=0.05", *extra])


def test_contrastive_finetuning_raises_paraphrase_recall(pair_files, tmp_path):
    torch.manual_seed(0)
    config = _config(pair_files, tmp_path / "run")
    best = finetune(config)
    ckpt = load_checkpoint(best)
    assert ckpt.model.config.pooling == "mean" and ckpt.meta["task"]["format"] == "pairs"
    val = [json.loads(line) for line in (pair_files / "val.jsonl").read_text().splitlines()]
    untrained = GPT(ModelConfig(vocab_size=ckpt.model.config.vocab_size, n_layer=2, n_head=2, n_embd=64,
                                block_size=32, pooling="mean")).eval()
    before, after = recall_at_1(untrained, ckpt.tokenizer, val), recall_at_1(ckpt.model.eval(), ckpt.tokenizer, val)
    assert before < 0.25 and after > 0.6, (before, after)
    evaluations = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "val_recall1" in r]
    assert evaluations[-1]["val_recall1"] == pytest.approx(after, abs=1e-6)  # the loop's metric is this recall
    assert 0 < evaluations[-1]["val_mrr"] <= 1


def test_sts_pairs_train_cosines_toward_scores(tmp_path, pair_files):
    rng = random.Random(0)
    rows = []
    for _ in range(300):  # a paraphrase scores 5, an unrelated pair 0
        row = paraphrases(1, rng.random() * 1e9)[0]
        other = paraphrases(1, rng.random() * 1e9)[0]
        same = rng.random() < 0.5
        rows.append({"sentence1": row["query"], "sentence2": row["positive"] if same else other["positive"],
                     "score": 5.0 if same else 0.0})
    (tmp_path / "sts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = load_config(FinetuneConfig, None, [
        f"data={tmp_path / 'sts.jsonl'}", "val_examples=60", f"tokenizer={pair_files / 'tokenizer.json'}",
        f"out_dir={tmp_path / 'run'}", "n_layer=1", "n_head=2", "n_embd=32", "block_size=16", "batch_size=32",
        "max_steps=60", "warmup_steps=5", "lr=3e-3", "eval_interval=30", "checkpoint_interval=30", "dtype=fp32",
        "device=cpu", "select=spearman", "pooling=last"])
    finetune(config)
    evaluations = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "val_spearman" in r]
    assert evaluations[-1]["val_spearman"] > 0.5
    assert load_checkpoint(tmp_path / "run" / "best").model.config.pooling == "last"


def test_infonce_loss_matches_a_hand_computation():
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=50, n_layer=1, n_head=2, n_embd=16, block_size=8, pooling="mean"))
    columns = [[[1, 2, 3], [4, 5]], [[6, 7], [8, 9, 10, 11]]]
    batch = TextBatches(columns, None, batch_size=2, shuffle=False).batch(0)
    loss = contrastive_loss(Encoder(model), batch, temperature=0.1)
    q = torch.stack([embed_ids(model, torch.tensor([ids])).squeeze(0) for ids in columns[0]])
    d = torch.stack([embed_ids(model, torch.tensor([ids])).squeeze(0) for ids in columns[1]])
    logits = q @ d.T / 0.1
    expected = -(torch.log_softmax(logits, dim=1).diagonal()).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_padding_does_not_change_an_embedding():
    torch.manual_seed(0)
    for pooling in ("mean", "last"):
        model = Encoder(GPT(ModelConfig(vocab_size=50, n_layer=2, n_head=2, n_embd=16, block_size=16,
                                        pooling=pooling)))
        alone = model(torch.tensor([[3, 4, 5]]))
        x, lengths = collate([[3, 4, 5], [1, 2, 3, 4, 5, 6, 7, 8]])
        assert torch.allclose(model(x, lengths)[0], alone[0], atol=1e-6)
        assert torch.allclose(model(x, lengths).norm(dim=-1), torch.ones(2))


def test_text_ids_end_with_end_of_text_within_the_limit():
    tokenizer = Tokenizer.train_bpe(["hello world " * 50], 300)
    ids = text_ids(tokenizer, "hello world " * 50, 10)
    assert len(ids) == 10 and ids[-1] == tokenizer.eot_id


def test_batches_are_the_same_after_a_resume():
    columns = [[[i, i + 1] for i in range(10)], [[i + 2] for i in range(10)]]
    a, b = TextBatches(columns, None, 4, seed=3), TextBatches(columns, None, 4, seed=3)
    first = [a.batch(step) for step in range(6)]
    again = [b.batch(step) for step in (5, 3)]
    assert all(torch.equal(x, y) for x, y in zip(first[5], again[0]))
    assert all(torch.equal(x, y) for x, y in zip(first[3], again[1]))


def test_encoder_settings_are_checked(pair_files, tmp_path):
    with pytest.raises(GptkitError, match="not a score of pairs"):
        finetune(_config(pair_files, tmp_path / "a", "select=spearman"))
    tokenizer = Tokenizer.load(pair_files / "tokenizer.json")
    save_checkpoint(tmp_path / "lm", GPT(ModelConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=32,
                                                      block_size=32)), tokenizer)
    with pytest.raises(GptkitError, match="LoRA"):
        finetune(_config(pair_files, tmp_path / "b", f"init={tmp_path / 'lm'}", "lora.rank=4"))
    (tmp_path / "bad.jsonl").write_text(json.dumps({"sentence1": "a", "sentence2": "b", "score": "high"}) + "\n")
    with pytest.raises(GptkitError, match="score"):
        finetune(_config(pair_files, tmp_path / "c", f"data={tmp_path / 'bad.jsonl'}", "format=sts",
                         "on_malformed=error", "select=loss"))


def test_pairs_records_read_with_optional_negatives(tmp_path):
    from gptkit.data import read_records

    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"query": "q", "positive": "p", "negative": "n"}) + "\n")
    task, records, _ = read_records(path, Task("auto"))
    assert task.format == "pairs" and records == [Record({"query": "q", "positive": "p", "negative": "n"})]
