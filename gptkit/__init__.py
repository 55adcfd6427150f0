"""gptkit: a small, fast, hackable GPT-2 toolkit."""

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import ModelConfig, load_config
from .errors import GptkitError
from .generate import (
    Decoding,
    Generator,
    Request,
    Sampling,
    beam_search,
    generate,
    generate_batch,
    generate_text,
    stream,
    stream_text,
)
from .hf import from_hf, to_hf
from .model import GPT, KVCache
from .tokenizer import Tokenizer

__version__ = "0.1.0"
__all__ = [
    "GPT", "KVCache", "ModelConfig", "load_config", "Tokenizer", "Checkpoint", "load_checkpoint",
    "save_checkpoint", "Decoding", "Sampling", "Generator", "Request", "generate", "generate_batch", "generate_text",
    "stream", "stream_text", "beam_search", "from_hf", "to_hf", "GptkitError",
]
