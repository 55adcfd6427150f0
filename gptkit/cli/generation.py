"""`gptkit generate`: complete a prompt, sample, beam search, chat through the checkpoint's template."""

from __future__ import annotations

import sys
import typing
from pathlib import Path

from ..errors import GptkitError
from ..runtime import InferenceDtype
from .common import ask, read_text_file, utf8


def _cmd_generate(args) -> None:
    from ..checkpoint import load_checkpoint
    from ..generate import Sampling
    from ..quantize import for_inference
    from ..runtime import pick_device

    if min(args.num_samples, args.max_new_tokens, args.beams) < 1:
        raise GptkitError("--num-samples, --max-new-tokens and --beams must be at least 1")
    ckpt = load_checkpoint(args.checkpoint, device=pick_device(args.device))
    if ckpt.tokenizer is None:
        raise GptkitError(f"{args.checkpoint} has no tokenizer.json, so text prompts cannot be encoded")
    model = for_inference(ckpt.model, args.dtype)
    sampling = Sampling(args.temperature, args.top_k, args.top_p, args.min_p, args.repetition_penalty)
    chat = _Chat(ckpt, args.system) if args.chat else None
    if not args.interactive:
        prompt = _read_prompt(args)
        _complete(model, ckpt.tokenizer, chat.prompt(prompt) if chat else prompt, sampling, args, echo=not chat)
        return
    print("interactive: type a prompt and press Enter; an empty line or Ctrl-D quits", file=sys.stderr)
    while prompt := ask("> "):
        try:
            text = utf8(prompt, "the prompt")
            reply = _complete(model, ckpt.tokenizer, chat.prompt(text) if chat else text, sampling, args,
                              echo=not chat)
            if chat:
                chat.reply(reply)
        except GptkitError as e:  # e.g. a prompt too long: say so and keep going
            print(f"error: {e}", file=sys.stderr)


class _Chat:
    """A conversation rendered by the checkpoint's chat template (the one fine-tuning used)."""

    def __init__(self, ckpt, system: str | None):
        from ..data import Task

        self.task = Task.from_dict({**ckpt.meta.get("task", {}), "format": "chat"})
        self.eos = ckpt.tokenizer.eot_token
        self.messages = [{"role": "system", "content": system}] if system else []

    def prompt(self, text: str) -> str:
        self.messages.append({"role": "user", "content": text})
        return self.task.render_chat(self.messages, add_generation_prompt=True, eos_token=self.eos)

    def reply(self, text: str) -> None:
        self.messages.append({"role": "assistant", "content": text})


def _read_prompt(args) -> str:
    if not args.prompt_file:
        return utf8(args.prompt, "--prompt")
    return read_text_file(Path(args.prompt_file), "--prompt-file")


def _complete(model, tokenizer, prompt: str, sampling, args, echo: bool = True) -> str:
    """Print the prompt (if echo) and its continuation(s): the best beam, or num_samples streamed samples.

    Returns the (last) continuation."""
    from ..generate import beam_search_text, stream_text

    shown = prompt if echo else ""
    if args.beams > 1:
        text = beam_search_text(model, tokenizer, prompt, args.max_new_tokens, args.beams, args.length_penalty)
        print(shown + text)
        return text
    pieces = []
    for i in range(args.num_samples):
        if args.num_samples > 1:
            print(f"--- sample {i + 1} ---")
        sys.stdout.write(shown)
        seed = None if args.seed is None else args.seed + i
        pieces = []
        for piece in stream_text(model, tokenizer, prompt, args.max_new_tokens, sampling, args.stop, seed,
                                 args.truncate):
            pieces.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
    return "".join(pieces)


def add_parsers(sub) -> None:
    p = sub.add_parser("generate", help="generate text from a checkpoint (streams to stdout)")
    p.add_argument("checkpoint", help="checkpoint directory")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--prompt", default="", help="prompt text (default: start from end-of-text)")
    source.add_argument("--prompt-file", help="read the prompt from this file")
    source.add_argument("-i", "--interactive", action="store_true", help="keep reading prompts from stdin")
    p.add_argument("--max-new-tokens", type=int, default=100)
    p.add_argument("--temperature", type=float, default=0.8, help="0 for greedy decoding")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--min-p", type=float, default=None)
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeats (1.2 is usual)")
    p.add_argument("--stop", action="append", default=[], help="stop at this text (not printed); repeatable")
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible sampling")
    p.add_argument("--beams", type=int, default=1, help="beam search with this many beams (prints the best)")
    p.add_argument("--length-penalty", type=float, default=1.0, help="beam search: > 0 favours longer outputs")
    p.add_argument("--truncate", action="store_true", help="keep the end of a prompt longer than the context")
    p.add_argument("--chat", action="store_true",
                   help="the prompt is a user message, rendered by the checkpoint's chat template")
    p.add_argument("--system", help="--chat: a system message to start the conversation with")
    p.add_argument("--dtype", default="auto", choices=typing.get_args(InferenceDtype),
                   help="weights: auto (bf16 where fast, else fp32), int8 is the fastest on a CPU")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.set_defaults(func=_cmd_generate)
