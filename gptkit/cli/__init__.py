"""`gptkit` command line: parse flags, call the Python API, print. No logic a Python user cannot reach.

One module per group of subcommands, each with its `add_parsers(sub)`: `checkpoints` (info, init,
import-hf, export-hf, grow), `generation` (generate), `training` (prepare, train, finetune, demo),
`tasks` (eval, translate); `main` assembles the parser and maps errors to exit codes.
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
