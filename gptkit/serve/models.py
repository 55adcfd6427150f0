"""What a server serves: checkpoints (and sentence-transformers encoders) loaded once, each with its kind.

    kind        answers
    lm          /v1/completions (a pretrained checkpoint, or one fine-tuned on prompt/completion text)
    chat        /v1/chat/completions, rendered by its chat template (a chat fine-tune's, or the one a pretrained
                chat model's tokenizer carries); /v1/completions too
    task        /v1/completions, the input put through its stored task template (translation,
                summarization, instructions): what `gptkit translate` / `summarize` do
    extractive  /v1/answers: a span of a context, picked by a question-answering span head
    encoder     /v1/embeddings (a gptkit encoder or a sentence-transformers directory)
    index       /v1/search: an index built by `gptkit index`, searched with the encoder it was built with
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import load_checkpoint
from ..data import Record, Task
from ..errors import GptkitError
from ..generate import Chat
from ..model import GPT
from ..quantize import for_inference
from ..runtime import pick_device
from ..tokenizer import Tokenizer


@dataclass
class ServedModel:
    """A loaded model under the name clients pick it by (`model` in a request)."""

    name: str
    kind: str
    path: str
    model: GPT | None = None
    tokenizer: Tokenizer | None = None
    task: Task | None = None
    checkpoint: object | None = None  # the Checkpoint (for its chat template)
    encoder: object | None = None  # a gptkit.search encoder (kind "encoder")
    searcher: object | None = None  # a gptkit.search Searcher (kind "index")

    @property
    def generates(self) -> bool:
        return self.kind in ("lm", "chat", "task")

    def chat(self) -> Chat:
        return Chat.of_checkpoint(self.checkpoint)

    def task_prompt(self, text: str) -> str:
        """A task checkpoint's prompt for `text`: its one input field filled, through its template."""
        spec = self.task.spec
        field = next(f for f in spec.fields if f != spec.target)
        return self.task.prompt(Record({field: text, spec.target: ""}))


def load_served(path: str | Path, name: str = "", dtype: str = "auto", device: str = "auto") -> ServedModel:
    """Load a checkpoint directory (or a sentence-transformers directory) for serving, and tell its kind."""
    path = Path(path)
    name = name or path.name
    if not path.is_dir():
        raise GptkitError(f"{path}: no such checkpoint directory")
    if (path / "index.json").is_file():
        return ServedModel(name, "index", str(path), searcher=_searcher(path, dtype))
    if (path / "modules.json").is_file() or _is_encoder(path):
        from ..search.embed import load_encoder

        return ServedModel(name, "encoder", str(path), encoder=load_encoder(path, dtype=dtype))
    ckpt = load_checkpoint(path, device=pick_device(device))
    ckpt.text_tokenizer("it cannot take text")
    task = Task.from_dict(ckpt.meta["task"]) if "task" in ckpt.meta else None
    model = for_inference(ckpt.model, dtype).eval()
    kind = "chat" if task is None and ckpt.tokenizer.chat_template else _kind(task)
    return ServedModel(name, kind, str(path), model, ckpt.tokenizer, task, ckpt)


def _searcher(path: Path, dtype: str):
    from ..search.embed import load_encoder
    from ..search.hybrid import Searcher
    from ..search.index import Index

    index = Index.load(path)
    info = index.encoder
    encoder = None if info is None else load_encoder(info.name, info.pooling if info.kind == "gptkit" else "",
                                                     info.max_tokens, dtype=dtype)
    return Searcher(index, encoder)


def _is_encoder(path: Path) -> bool:
    from ..checkpoint import read_config

    try:
        return bool(read_config(path)[0].pooling)
    except GptkitError:
        return False


def _kind(task: Task | None) -> str:
    if task is None:
        return "lm"
    if task.extractive:
        return "extractive"
    spec = task.spec
    if spec.conversation:
        return "chat"
    if spec.target and len([f for f in spec.fields if f != spec.target]) == 1:
        return "task"
    return "lm"
