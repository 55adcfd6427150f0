"""Flag groups that several commands share, and turning them into library objects once, at the edge.

    add_decoding_flags(p, beams=4)               # --max-new-tokens, --temperature, --beams, ...
    decoding = decoding_from(args, default_max_new_tokens)   # a gptkit.generate.Decoding, errors naming flags
    model = load_task_model(args.checkpoint, args.dtype, args.device)
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from typing import TYPE_CHECKING

from ..errors import GptkitError
from ..runtime import InferenceDtype

if TYPE_CHECKING:
    from ..data import Record, Task
    from ..generate import Decoding
    from ..model import GPT
    from ..tokenizer import Tokenizer

# Decoding's fields and the flags that set them (errors from Decoding name the flag)
FLAG_OF = {"max_new_tokens": "--max-new-tokens", "temperature": "--temperature", "top_k": "--top-k",
           "top_p": "--top-p", "min_p": "--min-p", "repetition_penalty": "--repetition-penalty", "stop": "--stop",
           "seed": "--seed", "num_beams": "--beams", "length_penalty": "--length-penalty",
           "no_repeat_ngram": "--no-repeat-ngram", "truncate_prompt": "--truncate"}


def add_decoding_flags(p, temperature: float = 0.0, max_new_tokens: int | None = None, beams: int = 1,
                       no_repeat_ngram: int = 0, text: bool = False) -> None:
    """The flags of a Decoding; `text` adds those of free text generation (min-p, repetition penalty, stop
    strings, truncation)."""
    default = f"default {max_new_tokens}" if max_new_tokens else "default: half the context window"
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help=default)
    p.add_argument("--temperature", type=float, default=temperature,
                   help=f"0 for greedy decoding, > 0 samples (default {temperature})")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest tokens only (e.g. 50)")
    p.add_argument("--top-p", type=float, default=None,
                   help="sample among the likeliest tokens that together hold this probability (e.g. 0.9)")
    if text:
        p.add_argument("--min-p", type=float, default=None,
                       help="drop tokens below this fraction of the likeliest token's probability (e.g. 0.05)")
        p.add_argument("--repetition-penalty", type=float, default=1.0,
                       help="> 1 discourages repeats (1.2 is usual)")
        p.add_argument("--stop", action="append", default=[], help="stop at this text (not printed); repeatable")
        p.add_argument("--truncate", action="store_true", help="keep the end of a prompt longer than the context")
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible sampling")
    p.add_argument("--beams", type=int, default=beams, help=f"beam search with this many beams (default {beams})")
    p.add_argument("--length-penalty", type=float, default=1.0, help="beam search: > 0 favours longer outputs")
    p.add_argument("--no-repeat-ngram", type=int, default=no_repeat_ngram,
                   help=f"never repeat an n-gram of the output (0 = off; default {no_repeat_ngram})")


def add_model_flags(p) -> None:
    p.add_argument("--dtype", default="auto", choices=typing.get_args(InferenceDtype),
                   help="weights: auto (bf16 where fast, else fp32); int8 and int4 are quantised for a CPU, "
                        "int4 the fastest and smallest")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")


def add_task_flags(p, beams: int = 1, no_repeat_ngram: int = 0) -> None:
    """What the commands on fine-tuned checkpoints share: decoding, batching, the QA threshold, the model."""
    add_decoding_flags(p, beams=beams, no_repeat_ngram=no_repeat_ngram)
    p.add_argument("--null-threshold", type=float, help="extractive QA: answer nothing when the no-answer score "
                   "beats the best span's by more than this (default: 0 if trained with unanswerable questions, "
                   "else never)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences decoded together (greedy)")
    add_model_flags(p)


def check_decoding_flags(args) -> None:
    """Before a checkpoint loads: the decoding flags and --batch-size (0 never means "the default")."""
    _at_least(("--batch-size", getattr(args, "batch_size", 1), 1))
    decoding_from(args, 1)


def _at_least(*flags: tuple[str, int | None, int]) -> None:
    for flag, value, low in flags:
        if value is not None and value < low:
            raise GptkitError(f"{flag} must be at least {low}, got {value}")


def decoding_from(args, max_new_tokens: int) -> Decoding:
    """The Decoding the flags ask for (`max_new_tokens` when --max-new-tokens is not given)."""
    from ..generate import Decoding

    _at_least(("--beams", args.beams, 1), ("--max-new-tokens", args.max_new_tokens, 1),
              ("--no-repeat-ngram", args.no_repeat_ngram, 0))
    values = {"max_new_tokens": args.max_new_tokens or max_new_tokens, "temperature": args.temperature,
              "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed, "num_beams": args.beams,
              "length_penalty": args.length_penalty, "no_repeat_ngram": args.no_repeat_ngram}
    if hasattr(args, "min_p"):  # free text generation
        values.update(min_p=args.min_p, repetition_penalty=args.repetition_penalty, stop=tuple(args.stop),
                      truncate_prompt=args.truncate)
    try:
        return Decoding(**values)
    except GptkitError as e:
        message = str(e).removeprefix("decoding: ")
        name = message.split()[0]
        raise GptkitError(FLAG_OF.get(name, name) + message[len(name):]) from None


@dataclasses.dataclass(frozen=True)
class TaskModel:
    """A fine-tuned checkpoint ready for inference: the model, its tokenizer and task, and what it was trained on."""

    path: str
    model: GPT
    tokenizer: Tokenizer
    task: Task
    unanswerable_seen: bool  # trained with unanswerable questions: "no answer" is a prediction it makes

    def null_threshold(self, given: float | None) -> float | None:
        """--null-threshold, else the checkpoint's default (0 if it was trained with unanswerable questions)."""
        from ..eval.qa import default_null_threshold

        return given if given is not None else default_null_threshold(self.unanswerable_seen)


def load_task_model(path: str, dtype: str, device: str) -> TaskModel:
    from ..checkpoint import load_checkpoint
    from ..data import Task
    from ..quantize import for_inference
    from ..runtime import pick_device

    ckpt = load_checkpoint(path, device=pick_device(device))
    if ckpt.tokenizer is None or "task" not in ckpt.meta:
        raise GptkitError(f"{path} is not a fine-tuned checkpoint (no task or tokenizer): make one with "
                          f"`gptkit finetune`")
    unanswerable = bool(ckpt.meta.get("finetune", {}).get("unanswerable"))
    return TaskModel(str(path), for_inference(ckpt.model, dtype), ckpt.tokenizer, Task.from_dict(ckpt.meta["task"]),
                     unanswerable)


def task_decoding(args, loaded: TaskModel) -> Decoding:
    """The decoding flags against the loaded model (half its context by default; beams within its vocabulary)."""
    from ..generate.beam import check_num_beams

    config = loaded.model.config
    try:
        check_num_beams(args.beams, config.vocab_size)
    except GptkitError as e:
        raise GptkitError(str(e).replace("num_beams", "--beams", 1)) from None
    return decoding_from(args, config.block_size // 2)


def predict_with_progress(loaded: TaskModel, records: list[Record], decoding: Decoding, batch_size: int,
                          null_threshold: float | None) -> list[str]:
    """Predictions for records, with a progress bar on stderr when there is more than one batch."""
    from tqdm import tqdm

    from ..eval.tasks import predict

    quiet = len(records) <= batch_size
    with tqdm(total=len(records), desc=loaded.task.format, unit="ex", file=sys.stderr, disable=quiet) as bar:
        return predict(loaded.model, loaded.tokenizer, loaded.task, records, decoding, batch_size,
                       on_done=lambda n: bar.update(n - bar.n), null_threshold=loaded.null_threshold(null_threshold))


def add_encoder_flags(p, batching: bool = True) -> None:
    p.add_argument("--pooling", choices=["mean", "last"], help="gptkit encoders: mean or last-token hidden states "
                   "(default: the checkpoint's, else mean)")
    p.add_argument("--max-tokens", type=int, help="a longer text keeps its first tokens (default: the encoder's "
                   "limit, 256 for gptkit checkpoints)")
    if batching:
        p.add_argument("--batch-size", type=int, default=32, help="texts embedded together")
        p.add_argument("--dtype", default="auto", help="gptkit encoders: auto, fp32, bf16, int8, int4")


def add_search_flags(p, fusion: bool = True) -> None:
    from ..search.hybrid import MODES

    p.add_argument("--mode", choices=MODES, help="dense (vectors), bm25 (words) or hybrid (both fused); default: "
                   "hybrid when the index has both")
    if fusion:
        p.add_argument("--fusion", choices=["rrf", "weighted"], default="rrf",
                       help="hybrid: reciprocal-rank fusion, or min-max scaled scores added")
        p.add_argument("--rrf-k", type=int, default=60, help="hybrid rrf: the constant k in 1 / (k + rank)")
        p.add_argument("--dense-weight", type=float, default=0.5, help="hybrid: the dense ranking's weight against "
                       "BM25's, in [0, 1] (0.5 = equal)")
