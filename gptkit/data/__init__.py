"""Data: corpus files in (`corpus`), cleaned (`clean`), tokenized into shards (`prepare`), read back as
batches (`shards`); fine-tuning examples in their formats (`formats`, `chat`), read (`reading`), rendered
and tokenized (`tasks`) and batched (`packing`).

    manifest = prepare(["corpus/"], "data/mine", PrepareConfig(vocab_size=8192))
    x, y = Batches(TokenShards("data/mine", "train"), batch_size=8, block_size=256).batch(step=0)
"""

from .chat import CHAT_TEMPLATE, render_chat
from .clean import CleanConfig, Cleaner
from .corpus import ReadOptions, ReadStats, expand_sources, read_documents
from .formats import FORMATS, Format, get_format
from .packing import ExampleBatches
from .prepare import PrepareConfig, prepare, train_tokenizer
from .reading import read_records
from .records import Example, Record, TaskStats
from .shards import Batches, TokenShards, read_manifest
from .tasks import Task

__all__ = [
    "CHAT_TEMPLATE", "render_chat", "CleanConfig", "Cleaner", "ReadOptions", "ReadStats", "expand_sources",
    "read_documents", "FORMATS", "Format", "get_format", "PrepareConfig", "prepare", "train_tokenizer",
    "Batches", "TokenShards", "read_manifest", "ExampleBatches", "Example", "Record", "TaskStats", "Task",
    "read_records",
]
