"""`gptkit generate`: complete a prompt, sample, beam search; `gptkit chat`: a conversation through the
checkpoint's chat template."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import GptkitError
from .common import ask, read_text_file, utf8
from .flags import add_decoding_flags, add_model_flags, decoding_from


def _cmd_generate(args) -> None:
    from ..checkpoint import load_checkpoint
    from ..generate import Chat
    from ..quantize import for_inference
    from ..runtime import pick_device

    if args.num_samples < 1:
        raise GptkitError(f"--num-samples must be at least 1, got {args.num_samples}")
    decoding = decoding_from(args, args.max_new_tokens)
    ckpt = load_checkpoint(args.checkpoint, device=pick_device(args.device))
    ckpt.text_tokenizer("text prompts cannot be encoded")
    model = for_inference(ckpt.model, args.dtype)
    chat = Chat.of_checkpoint(ckpt, args.system) if args.chat else None
    if not args.interactive:
        prompt = _read_prompt(args)
        _complete(model, ckpt.tokenizer, chat.prompt(prompt) if chat else prompt, decoding, args.num_samples,
                  echo=not chat)
        return
    print("interactive: type a prompt and press Enter; an empty line or Ctrl-D quits", file=sys.stderr)
    while prompt := ask("> "):
        try:
            text = utf8(prompt, "the prompt")
            reply = _complete(model, ckpt.tokenizer, chat.prompt(text) if chat else text, decoding,
                              args.num_samples, echo=not chat)
            if chat:
                chat.reply(reply)
        except GptkitError as e:  # e.g. a prompt too long: say so and keep going
            print(f"error: {e}", file=sys.stderr)


def _read_prompt(args) -> str:
    if not args.prompt_file:
        return utf8(args.prompt, "--prompt")
    return read_text_file(Path(args.prompt_file), "--prompt-file")


def _complete(model, tokenizer, prompt: str, decoding, num_samples: int, echo: bool = True) -> str:
    """Print the prompt (if echo) and its continuation(s), streamed: the best beam, or num_samples samples
    (sample i seeded by seed + i). Returns the (last) continuation."""
    from ..generate import stream_text

    samples = 1 if decoding.beam else num_samples
    pieces = []
    for i in range(samples):
        if samples > 1:
            print(f"--- sample {i + 1} ---")
        sys.stdout.write(prompt if echo else "")
        pieces = []
        seeded = decoding.seed_offset(i)
        for piece in stream_text(model, tokenizer, prompt, seeded):
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
    add_decoding_flags(p, temperature=0.8, max_new_tokens=100, text=True)
    p.add_argument("--num-samples", type=int, default=1, help="this many continuations of the prompt (default 1)")
    p.add_argument("--chat", action="store_true",
                   help="the prompt is a user message, rendered by the checkpoint's chat template")
    p.add_argument("--system", help="--chat: a system message to start the conversation with")
    add_model_flags(p)
    p.set_defaults(func=_cmd_generate)
    add_chat_parser(sub)


def add_chat_parser(sub) -> None:
    p = sub.add_parser("chat", help="talk with a checkpoint through its chat template (an instruct model, a chat "
                                    "fine-tune)", epilog="the same as generate --chat -i; --prompt asks one question")
    p.add_argument("checkpoint", help="checkpoint directory (e.g. one import-gguf or import-hf wrote)")
    p.add_argument("--prompt", default="", help="one message: print the reply and exit (default: a conversation "
                                                "on stdin)")
    p.add_argument("--system", help="a system message to start the conversation with")
    add_decoding_flags(p, temperature=0.7, max_new_tokens=512, text=True)
    add_model_flags(p)
    p.set_defaults(func=_cmd_chat)


def _cmd_chat(args) -> None:
    args.chat, args.interactive, args.prompt_file, args.num_samples = True, not args.prompt, None, 1
    _cmd_generate(args)
