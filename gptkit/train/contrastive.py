"""Contrastive fine-tuning: a language model becomes a sentence encoder (task.format = pairs or sts).

The model gets config.pooling (mean or last-token hidden states, L2-normalised:
`GPT.forward`), and each step embeds a batch of records in one forward pass:

    pairs  InfoNCE with in-batch negatives: query i should be closer to its positive than to
           every other document in the batch (the others' positives, and hard negatives if
           every record has one); logits are cosine similarities / task.temperature.
    sts    the cosine of the two sentences regressed onto score / max score (mean squared
           error, as sentence-transformers' CosineSimilarityLoss).

Evaluation: the val loss, recall@1 and MRR@10 of each val query among all val
positives (pairs), or the Spearman correlation of cosines with the scores (sts).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..config import FinetuneConfig
from ..data import Record, Task
from ..eval.retrieval import spearman
from ..model import Encoder
from ..runtime import Distributed
from ..tokenizer import Tokenizer
from .loop import TrainData
from .step import Precision

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def text_ids(tokenizer: Tokenizer, text: str, max_tokens: int) -> list[int]:
    """What an encoder reads for `text`: its first tokens, then end-of-text (which last-token pooling reads)."""
    return encoder_ids(tokenizer.encode(text), tokenizer.eot_id, max_tokens)


def encoder_ids(ids: list[int], eot_id: int | None, max_tokens: int) -> list[int]:
    """What an encoder reads for a text's ids: the first ones, then end-of-text when the tokenizer has one."""
    if eot_id is None:
        return ids[:max_tokens] or [0]  # a text needs one position to pool
    return ids[: max_tokens - 1] + [eot_id]


def collate(texts: Sequence[list[int]], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (N, T) and lengths (N,): padding sits after every real position, so it changes nothing."""
    lengths = torch.tensor([len(ids) for ids in texts])
    x = torch.zeros(len(texts), int(lengths.max()), dtype=torch.long)
    for row, ids in enumerate(texts):
        x[row, : len(ids)] = torch.tensor(ids)
    return x.to(device), lengths.to(device)


class TextBatches:
    """(ids, lengths, targets) batches of records, their texts stacked field by field: queries (or first
    sentences) in rows [0, B), then their documents. targets: the row (among the documents) of each query's
    positive (pairs), or the scores scaled to [0, 1] (sts)."""

    def __init__(self, columns: list[list[list[int]]], scores: np.ndarray | None, batch_size: int, seed: int = 0,
                 streams: int = 1, shuffle: bool = True, device: str | torch.device = "cpu"):
        self.columns, self.scores, self.batch_size = columns, scores, batch_size
        self.seed, self.streams, self.shuffle, self.device = seed, streams, shuffle, torch.device(device)
        self.size = len(columns[0])
        self._orders: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:  # a batch spans at most two epochs: keep the last two
            self._orders = {e: o for e, o in self._orders.items() if e == epoch - 1}
            self._orders[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.size) \
                if self.shuffle else np.arange(self.size)
        return self._orders[epoch]

    def batch(self, step: int, stream: int = 0) -> Batch:
        start = (step * self.streams + stream) * self.batch_size
        rows = [int(self._order((start + i) // self.size)[(start + i) % self.size]) for i in range(self.batch_size)]
        return self.collate(rows)

    def epoch(self, epoch: int = 0) -> Iterator[Batch]:
        order = self._order(epoch)
        for start in range(0, self.size, self.batch_size):
            yield self.collate([int(i) for i in order[start : start + self.batch_size]])

    def collate(self, rows: list[int]) -> Batch:
        x, lengths = collate([column[i] for column in self.columns for i in rows], self.device)
        if self.scores is not None:
            targets = torch.tensor(self.scores[rows], dtype=torch.float32)
        else:
            targets = torch.arange(len(rows))  # the positives come first among the documents
        return x, lengths, targets.to(self.device)


def contrastive_loss(model: torch.nn.Module, batch: Batch, temperature: float) -> torch.Tensor:
    """InfoNCE over in-batch documents (integer targets) or cosine regression (float targets)."""
    x, lengths, targets = batch
    return _loss(model(x, lengths), targets, temperature)  # embeddings (k * B, C), unit length


def _loss(embeddings: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    queries, documents = embeddings[: len(targets)], embeddings[len(targets):]
    if targets.is_floating_point():
        return F.mse_loss((queries * documents).sum(dim=-1), targets)
    return F.cross_entropy(queries @ documents.T / temperature, targets)


def encoder_data(config: FinetuneConfig, task: Task, tokenizer: Tokenizer, train_records: list[Record],
                 val_records: list[Record], stats: dict, device: torch.device, dist: Distributed,
                 max_tokens: int) -> TrainData:
    """The loop's data for an encoder: text batches (texts cut to max_tokens), the contrastive loss, its evaluation."""
    cfg = config.train
    train = _batches(task, train_records, tokenizer, max_tokens, cfg.batch_size, cfg.seed,
                     cfg.grad_accum * dist.world_size, True, device)
    val = _batches(task, val_records, tokenizer, max_tokens, cfg.batch_size, 0, 1, False, device) \
        if val_records else None
    stats.update(train_examples=len(train_records), val_examples=len(val_records),
                 hard_negatives=len(train.columns) == 3)
    temperature = config.task.encoder.temperature

    def loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return contrastive_loss(model, batch, temperature)

    def evaluate(model: torch.nn.Module, plain: torch.nn.Module, precision: Precision) -> dict:
        return _evaluate(model, val, precision, temperature) if val is not None else {}

    meta = {"task": task.to_dict(), "finetune": stats}
    return TrainData.judged(train, evaluate, tokenizer, config.task.select, config.task.patience, val is not None,
                            meta, loss, entry=Encoder)


def _batches(task: Task, records: list[Record], tokenizer: Tokenizer, max_tokens: int, batch_size: int, seed: int,
             streams: int, shuffle: bool, device: torch.device) -> TextBatches:
    spec = task.spec
    fields, scores = spec.fields, None
    if spec.label:  # scored pairs: cosines in [0, 1] for scores in [0, max]
        scores = np.array([r.fields[spec.label] for r in records])
        scores = scores / max(float(scores.max()), 1e-9)
    elif spec.optional and all(r.fields.get(spec.optional[0]) for r in records):  # a hard negative
        fields += spec.optional[:1]
    elif spec.optional and any(r.fields.get(spec.optional[0]) for r in records):
        log.warning("hard negatives ignored: only some records have one (in-batch negatives remain)")
    columns = [[text_ids(tokenizer, r.fields[f], max_tokens) for r in records] for f in fields]
    return TextBatches(columns, scores, min(batch_size, len(records)), seed, streams, shuffle, device)


@torch.no_grad()
def _evaluate(model: torch.nn.Module, val: TextBatches, precision: Precision, temperature: float) -> dict:
    was_training = model.training
    model.eval()
    losses, firsts, seconds = [], [], []
    with precision.autocast():
        for batch in val.epoch(0):
            x, lengths, targets = batch
            embeddings = model(x, lengths).float()  # an Encoder
            losses.append(_loss(embeddings, targets, temperature).item())
            firsts.append(embeddings[: len(targets)])
            seconds.append(embeddings[len(targets) : 2 * len(targets)])
    model.train(was_training)
    a, b = torch.cat(firsts), torch.cat(seconds)
    record = {"val_loss": float(np.mean(losses))}
    if val.scores is not None:
        record["val_spearman"] = spearman((a * b).sum(-1).tolist(), val.scores.tolist())
        return record
    # each val query against every distinct val positive: recall@1 and MRR@10 of its own
    first_row: dict[tuple, int] = {}
    for row, ids in enumerate(val.columns[1]):
        first_row.setdefault(tuple(ids), row)
    distinct = sorted(first_row.values())
    column = {row: c for c, row in enumerate(distinct)}
    gold = torch.tensor([column[first_row[tuple(ids)]] for ids in val.columns[1]], device=a.device)
    top = (a @ b[distinct].T).argsort(dim=1, descending=True)[:, :10]
    hits = top == gold.unsqueeze(1)  # (queries, 10): where the own positive is, if in the top 10
    reciprocal = hits.float() / torch.arange(1, top.shape[1] + 1, device=a.device)
    record["val_recall1"] = float(hits[:, 0].float().mean())
    record["val_mrr"] = float(reciprocal.sum(dim=1).mean())
    return record
