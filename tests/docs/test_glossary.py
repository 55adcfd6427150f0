"""The Chinese pages follow the glossary (docs/glossary.zh.md): no page's prose uses a rendering the glossary
avoids, and each term is used on the page the glossary says it first appears on."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = ROOT / "docs" / "glossary.zh.md"
CHINESE = sorted(p for p in (ROOT / "docs").glob("*.zh.md") if p != GLOSSARY) + [ROOT / "README.zh-CN.md"]


def _rows() -> list[tuple[str, str, str, list[str]]]:
    """(term, English, the page it first appears on, avoided renderings) per row of the glossary's table."""
    rows = []
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and not set(cells[0]) <= set("-") and cells[0] != "中文":
            page = re.search(r"\(([\w.-]+\.md)\)", cells[2]).group(1)
            rows.append((cells[0], cells[1], page, [a.strip() for a in cells[3].split("、") if a.strip()]))
    return rows


def prose(path: Path) -> str:
    """A page without its fenced code blocks and inline code (code keeps its English names)."""
    text = re.sub(r"^```.*?^```[ \t]*$", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def test_the_glossary_has_terms():
    assert len(_rows()) >= 30


@pytest.mark.parametrize("page", CHINESE, ids=lambda p: p.name)
def test_a_chinese_page_avoids_what_the_glossary_avoids(page):
    text = prose(page)
    used = [(term, avoided) for term, _, _, avoids in _rows() for avoided in avoids if avoided in text]
    assert used == [], f"{page.name} uses renderings the glossary avoids: (term, avoided) {used}"


@pytest.mark.parametrize("row", _rows(), ids=lambda r: r[1])
def test_a_term_is_used_where_the_glossary_says_it_first_appears(row):
    term, _, page, _ = row
    text = prose(ROOT / "docs" / page)
    for piece in re.sub(r"（.*?）", "", term).split("、"):
        assert piece in text, f"{page} does not use {piece!r}"
