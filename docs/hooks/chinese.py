"""MkDocs hook: a line break between two Chinese characters is removed from the Chinese pages.

The pages wrap lines for editing, and Markdown turns each break into a space. Between Latin words that
space belongs; between Chinese characters it shows as a gap in the middle of a sentence. Fenced code
blocks and breaks next to a Latin character (where a space is wanted) are left as they are.
"""

from __future__ import annotations

import re

# CJK ideographs, CJK punctuation (、。「」) and full-width forms (，：（）)
CJK = r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]"
BREAK = re.compile(rf"({CJK})\n[ \t]*(?={CJK})")
FENCE = re.compile(r"(^```.*?^```[ \t]*$)", re.M | re.S)


def join_chinese_lines(markdown: str) -> str:
    parts = FENCE.split(markdown)  # odd items are fenced code blocks
    return "".join(part if i % 2 else BREAK.sub(r"\1", part) for i, part in enumerate(parts))


def on_page_markdown(markdown: str, page, config, files) -> str:
    return join_chinese_lines(markdown) if page.file.src_uri.endswith(".zh.md") else markdown
