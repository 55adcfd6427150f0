"""MkDocs hook: one search index per language, so English search finds English pages and Chinese search
Chinese ones.

The i18n plugin merges every language into site/search/search_index.json. After the build this hook moves
the Chinese entries to site/zh/search/search_index.json (their locations made relative to /zh/), and
points each Chinese page's search at /zh/ by setting its theme config's `base` there.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from mkdocs.plugins import event_priority

LANGUAGE = "zh"


def split_index(site: Path) -> bool:
    """Split the merged index in `site`; False when there is nothing (left) to split."""
    merged = site / "search" / "search_index.json"
    if not merged.is_file():
        return False
    index = json.loads(merged.read_text(encoding="utf-8"))
    prefix = f"{LANGUAGE}/"
    ours = [doc for doc in index["docs"] if doc["location"].startswith(prefix)]
    if not ours:
        return False
    index_zh = {**index, "docs": [{**doc, "location": doc["location"][len(prefix):]} for doc in ours]}
    index["docs"] = [doc for doc in index["docs"] if not doc["location"].startswith(prefix)]
    (site / LANGUAGE / "search").mkdir(parents=True, exist_ok=True)
    (site / LANGUAGE / "search" / "search_index.json").write_text(json.dumps(index_zh, ensure_ascii=False),
                                                                  encoding="utf-8")
    merged.write_text(json.dumps(index, ensure_ascii=False), encoding="utf-8")
    for page in (site / LANGUAGE).rglob("*.html"):
        base = Path(os.path.relpath(site / LANGUAGE, page.parent)).as_posix()
        html = page.read_text(encoding="utf-8")
        page.write_text(re.sub(r'"base": "[^"]*"', f'"base": "{base}"', html, count=1), encoding="utf-8")
    return True


@event_priority(-200)  # after the i18n plugin (-100) has written the merged index
def on_post_build(config) -> None:
    split_index(Path(config.site_dir))
