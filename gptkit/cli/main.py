"""The `gptkit` entry point: the parser (each command module adds its subcommands) and exit codes."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import traceback

from ..errors import GptkitError
from . import applications, checkpoints, generation, search, serve, tasks, training

# `gptkit --help` and the reference page list the commands in the order a user reaches them
WORKFLOW = ("demo", "prepare", "train", "generate", "chat", "finetune", "eval", "translate", "ask", "summarize",
            "embed", "index", "search", "serve", "audit", "info", "init", "grow", "import-hf", "import-gguf",
            "export-hf", "export-gguf", "migrate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gptkit", description="Build, train, fine-tune and serve GPT-2 and Llama-family language models.",
        epilog="New here? `gptkit demo` trains a small model and samples from it. Each command has --help; "
               "train, finetune, prepare and init also take key=value settings, listed by --keys.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (checkpoints, generation, training, tasks, applications, search, serve):
        module.add_parsers(sub)
    sub._choices_actions.sort(key=lambda action: WORKFLOW.index(action.dest))  # a command missing there fails
    sub.choices = {name: sub.choices[name] for name in WORKFLOW}
    return parser


def _terminated(signum, frame):
    print("terminated", file=sys.stderr)
    _terminated.received = signum  # C code (e.g. a module import) can swallow the exception below
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C does, so half-written outputs are removed


_terminated.received = None


def main(argv: list[str] | None = None) -> int:
    """Run a command; exit status 0 done, 2 a user or environment fault, 130 Ctrl-C, 143 SIGTERM."""
    for stream in (sys.stdout, sys.stderr):  # a log file or pipe sees each line as it is printed
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(line_buffering=True)
    parser = build_parser()
    # `key=value` config overrides may appear anywhere after the subcommand
    args, extra = parser.parse_known_args(argv)
    args.overrides = [a for a in extra if "=" in a and not a.startswith("-")]
    if len(args.overrides) != len(extra) or (extra and not getattr(args, "takes_overrides", False)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", force=True)
    for chatty in ("faiss", "bm25s"):  # they log how they loaded at INFO
        logging.getLogger(chatty).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread (e.g. called from a worker): leave signals alone
        previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args) -> int:
    try:
        args.func(args)
        if _terminated.received:  # the stop was swallowed and the command finished: its output is whole
            return 128 + _terminated.received
    except GptkitError as e:
        if args.verbose and e.__cause__ is not None:  # what went wrong underneath, for a bug report
            traceback.print_exception(e.__cause__)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `gptkit generate ... | head`
        return 0
    except OSError as e:  # the environment: a full disk, no permission, a read-only place
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    return 0
