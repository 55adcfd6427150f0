"""MkDocs hook: the reference pages are generated from the code at build time, so they cannot drift.

A page's `<!-- gptkit:cli -->`, `<!-- gptkit:config -->` or `<!-- gptkit:presets -->` is replaced by the
`gptkit` command's help (from its argparse parsers), every configuration key (type, default and the
comment beside it, from the config dataclasses), or the presets shipped in the package.
"""

from __future__ import annotations

import argparse


def on_page_markdown(markdown: str, page, config, files) -> str:
    for name, make in (("cli", _cli), ("config", _config), ("presets", _presets)):
        marker = f"<!-- gptkit:{name} -->"
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown


def _cli() -> str:
    from gptkit.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summary = {action.dest: action.help for action in sub._choices_actions}
    table = ["| command | what it does |", "|---|---|"]
    table += [f"| [`{name}`](#gptkit-{name}) | {summary[name]} |" for name in sub.choices]
    parts = ["\n".join(table) + "\n"]
    for name, command in sub.choices.items():
        command.prog = f"gptkit {name}"
        parts.append(f"### gptkit {name}\n\n{summary[name][0].upper()}{summary[name][1:]}.\n\n"
                     f"```text\n{command.format_help().strip()}\n```\n")
    return "\n".join(parts)


def _config() -> str:
    from gptkit.config import FinetuneConfig, RunConfig
    from gptkit.data.prepare import PrepareConfig

    parts = []
    for title, cls in (("gptkit train: RunConfig", RunConfig), ("gptkit finetune: FinetuneConfig", FinetuneConfig),
                       ("gptkit prepare: PrepareConfig", PrepareConfig)):
        parts.append(f"### {title}\n\n| key | type | default | what |\n|---|---|---|---|")
        parts += _rows(cls, "")
        parts.append("")
    return "\n".join(parts)


def _rows(cls, prefix: str) -> list[str]:
    from gptkit.cli.keys import config_keys

    rows = []
    for key, type_, default, meaning in config_keys(cls, prefix):
        meaning = meaning.replace("|", "\\|")  # a table cell
        rows.append(f"| `{key}` | `{type_}` | `{default}` | {meaning} |")
    return rows


def _presets() -> str:
    from gptkit.configfile import presets, read_config_file

    rows = ["| preset | kind | what |", "|---|---|---|"]
    for name in presets():
        data, _ = read_config_file(name)
        model = data.get("model", {})
        shape = f"{model.get('n_layer', '?')} x {model.get('n_embd', '?')}" if model else ""
        kind = "fine-tuning" if "task" in data else "training"
        rows.append(f"| `{name}` | {kind} | {shape} |")
    return "\n".join(rows)
