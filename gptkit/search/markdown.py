"""Markdown in a search index: one document per section, its heading on top, code blocks left out.

A reader searching documentation wants the passage that explains; a code block that quotes the query's
words, or a heading alone, matches well and answers nothing.
"""

from __future__ import annotations

import re

FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", re.M | re.S)
COMMENT = re.compile(r"<!--.*?-->", re.S)
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$")
ADMONITION = re.compile(r'^[ \t]*(\?\?\?\+?|!!!)[ \t]+\w+(?:[ \t]+"([^"]*)")?[ \t]*$')  # keeps its title


def is_markdown(name: str) -> bool:
    return name.removesuffix(".gz").endswith((".md", ".markdown"))


def markdown_sections(text: str) -> list[str]:
    """The sections of a Markdown text, each "heading\\n\\nprose", without code blocks or bare headings."""
    text = COMMENT.sub("", FENCE.sub("", text))
    sections: list[str] = []
    title, body = "", []
    for line in text.splitlines():
        if heading := HEADING.match(line):
            _keep(sections, title, body)
            title, body = heading.group(1), []
        else:
            admonition = ADMONITION.match(line)
            body.append((admonition.group(2) or "") if admonition else line)  # an admonition keeps its title
    _keep(sections, title, body)
    return sections


def _keep(sections: list[str], title: str, body: list[str]) -> None:
    prose = "\n".join(line.strip() for line in body).strip()
    if prose:
        sections.append(f"{title}\n\n{prose}" if title else prose)
