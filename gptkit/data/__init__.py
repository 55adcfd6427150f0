"""Data: corpus files in (`corpus`), cleaned (`clean`), tokenized into shards (`prepare`), read back as
batches (`shards`); fine-tuning examples read and tokenized (`tasks`) and batched (`packing`).

    manifest = prepare(["corpus/"], "data/mine", PrepareConfig(vocab_size=8192))
    x, y = Batches(TokenShards("data/mine", "train"), batch_size=8, block_size=256).batch(step=0)
"""

from .clean import CleanConfig, Cleaner
from .corpus import ReadOptions, ReadStats, expand_sources, read_documents
from .packing import ExampleBatches
from .prepare import PrepareConfig, prepare, train_tokenizer
from .shards import Batches, TokenShards, read_manifest
from .tasks import Example, Record, Task, read_records

__all__ = [
    "CleanConfig", "Cleaner", "ReadOptions", "ReadStats", "expand_sources", "read_documents", "PrepareConfig",
    "prepare", "train_tokenizer", "Batches", "TokenShards", "read_manifest", "ExampleBatches", "Example", "Record",
    "Task", "read_records",
]
