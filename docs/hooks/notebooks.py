"""Each course chapter's page becomes a Jupyter notebook with the same code; the page is the one source.

Prose becomes markdown cells and each runnable Python example (a block that starts with its imports) a
code cell. An exercise (`??? question "..."`) keeps its text, and its solution's code (`??? success`)
becomes code cells after it, so running the notebook checks the solutions too. Pictures travel inside the
notebook as attachments; links to other chapters point at their notebooks.

    python docs/hooks/notebooks.py            # (re)write docs/notebooks/NN-NAME.ipynb and NN-NAME.zh.ipynb

As an MkDocs hook it puts a download link under each chapter's title. The notebooks sit in docs/notebooks,
so the site serves them beside the pages (the Chinese ones under /zh/) and a clone opens them in Jupyter.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
OUT = DOCS / "notebooks"
# the course, in order: the pages of the "Course" section of mkdocs.yml's nav (a test holds them equal)
CHAPTERS = ("tokenization", "attention", "gpt", "learning", "sampling", "growing", "tuning", "modern",
            "applications", "responsible")
RUNNABLE = re.compile(r"(from|import) ")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*\n?", re.M | re.S)
ADMONITION = re.compile(r'^(\?\?\?|!!!)\+? (\w+)(?: "([^"]*)")?\n((?:(?:    .*)?\n)*)', re.M)
IMAGE = re.compile(r"!\[([^\]]*)\]\((images/[\w.-]+\.png)\)")
LINK = re.compile(r"\]\((\w+)\.md(#[\w-]+)?\)")
SNIPPET = re.compile(r'^--8<-- "([^":]+):(\w+)"$', re.M)


def notebook_name(stem: str, zh: bool = False) -> str:
    return f"{CHAPTERS.index(stem) + 1:02d}-{stem}{'.zh' if zh else ''}.ipynb"


def page_to_notebook(markdown: str, zh: bool = False) -> dict:
    """A page's markdown as an nbformat-4 notebook (a dict; no outputs)."""
    if zh:
        sys.path.insert(0, str(Path(__file__).parent))
        from chinese import join_chinese_lines

        markdown = join_chinese_lines(markdown)
    cells: list[dict] = []
    _convert(markdown, cells, zh)
    cells = [{"id": f"c{n}", **cell} for n, cell in enumerate(c for c in cells if "".join(c["source"]).strip())]
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}}}


def _convert(markdown: str, cells: list[dict], zh: bool, solution: bool = False) -> None:
    """Append the cells of `markdown`: code for runnable fences (every fence of a solution), markdown for the
    rest, admonitions opened."""
    position = 0
    for match in _blocks(markdown):
        _markdown(markdown[position:match.start()], cells, zh)
        if match.re is FENCE:
            language, code = match.group(1), match.group(2)
            if language == "python" and (solution or RUNNABLE.match(code)):
                cells.append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                              "source": _lines(code.rstrip("\n"))})
            else:
                _markdown(f"```{language}\n{SNIPPET.sub(_included, code)}```\n", cells, zh)
        else:
            kind, title, body = match.group(2), match.group(3), match.group(4)
            heading = title or {"success": "答案" if zh else "Solution"}.get(kind, kind.title())
            _markdown(f"**{heading}**\n\n", cells, zh)
            _convert(re.sub(r"^    ", "", body, flags=re.M), cells, zh, solution or kind == "success")
        position = match.end()
    _markdown(markdown[position:], cells, zh)


def _blocks(markdown: str):
    """Top-level fences and admonitions in order (a fence inside an admonition is the admonition's)."""
    found, position = [], 0
    while True:
        candidates = [m for m in (FENCE.search(markdown, position), ADMONITION.search(markdown, position)) if m]
        if not candidates:
            return found
        first = min(candidates, key=lambda m: m.start())
        found.append(first)
        position = first.end()


def _markdown(text: str, cells: list[dict], zh: bool) -> None:
    attachments = {}

    def attach(match):
        path = DOCS / match.group(2)
        if zh and path.with_suffix(".zh.png").is_file():  # the picture drawn with Chinese labels
            path = path.with_suffix(".zh.png")
        attachments[path.name] = {"image/png": base64.b64encode(path.read_bytes()).decode("ascii")}
        return f"![{match.group(1)}](attachment:{path.name})"

    text = IMAGE.sub(attach, text)
    text = LINK.sub(lambda m: f"]({notebook_name(m.group(1))})" if m.group(1) in CHAPTERS else m.group(0), text)
    if cells and cells[-1]["cell_type"] == "markdown" and not attachments:
        cells[-1]["source"] = _lines("".join(cells[-1]["source"]) + text)
        return
    cell = {"cell_type": "markdown", "metadata": {}, "source": _lines(text)}
    if attachments:
        cell["attachments"] = attachments
    cells.append(cell)


def _included(match) -> str:
    """A `--8<-- "FILE:NAME"` line as the source lines it includes on the site."""
    source = (ROOT / match.group(1)).read_text(encoding="utf-8")
    section = re.search(rf"# --8<-- \[start:{match.group(2)}\]\n(.*?)^\s*# --8<-- \[end:{match.group(2)}\]",
                        source, re.S | re.M)
    return section.group(1)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def write_notebooks(out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem in CHAPTERS:
        for zh in (False, True):
            page = DOCS / f"{stem}{'.zh' if zh else ''}.md"
            path = out / notebook_name(stem, zh)
            path.write_text(json.dumps(page_to_notebook(page.read_text(encoding="utf-8"), zh), indent=1,
                                       ensure_ascii=False) + "\n", encoding="utf-8")
            written.append(path)
    return written


def on_page_markdown(markdown: str, page, config, files) -> str:
    stem = page.file.src_uri.removesuffix(".md").removesuffix(".zh")
    if stem not in CHAPTERS:
        return markdown
    zh = page.file.src_uri.endswith(".zh.md")
    number = CHAPTERS.index(stem) + 1
    label = f"第 {number} 章 · 下载本章的 Jupyter 笔记本" if zh else f"Chapter {number} · download this chapter as a " \
        "Jupyter notebook"
    link = f'<p class="notebook-link"><a href="../notebooks/{notebook_name(stem)}" download>{label}</a></p>\n\n'
    title_end = markdown.index("\n", markdown.index("# ")) + 1
    return markdown[:title_end] + "\n" + link + markdown[title_end:]


if __name__ == "__main__":
    for written in write_notebooks():
        print(written.relative_to(ROOT))
