"""The course: each chapter's notebook is generated from its page and runs in a Jupyter kernel (solutions
included) printing what the page says; the Chinese page shows the same code; every chapter has exercises
with solutions and a picture drawn by a script here; the nav lists the chapters in order."""

import json
import re
import sys
from pathlib import Path

import pytest

from tests.docs.test_commands import code
from tests.docs.test_pages import QUOTED

DOCS = Path(__file__).resolve().parents[2] / "docs"
sys.path.insert(0, str(DOCS / "hooks"))
from notebooks import CHAPTERS, notebook_name, page_to_notebook  # noqa: E402


def _python_blocks(page: Path) -> list[str]:
    """Every Python block, an exercise's solution (indented inside its admonition) too, dedented."""
    found = re.findall(r"^( *)```python\n(.*?)^\1```", page.read_text(encoding="utf-8"), re.M | re.S)
    return [re.sub(rf"^{indent}", "", block, flags=re.M) for indent, block in found]


@pytest.mark.parametrize("stem", CHAPTERS)
def test_a_chapters_notebooks_are_its_pages(stem):
    for zh in (False, True):
        page = DOCS / f"{stem}{'.zh' if zh else ''}.md"
        written = json.loads((DOCS / "notebooks" / notebook_name(stem, zh)).read_text(encoding="utf-8"))
        assert written == page_to_notebook(page.read_text(encoding="utf-8"), zh), \
            "docs/notebooks is stale: run python docs/hooks/notebooks.py"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_a_chapters_notebook_runs_and_prints_what_its_page_says(stem, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.reads((DOCS / "notebooks" / notebook_name(stem)).read_text(encoding="utf-8"), as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = [line for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
               if output.output_type == "stream" and output.name == "stdout" for line in output.text.splitlines()]
    text = " ".join((DOCS / f"{stem}.md").read_text(encoding="utf-8").replace("|", " ").split())
    for line in printed:
        if any(word in line for word in QUOTED):  # the lines the page shows
            shown = " ".join(line.replace("|", " ").split())  # as the page's text above
            assert shown in text or shown.split(" ", 1)[-1] in text, f"{stem}.md does not show {shown!r}"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_a_chinese_chapter_shows_the_same_code(stem):
    english, chinese = (_python_blocks(DOCS / f"{stem}{suffix}.md") for suffix in ("", ".zh"))
    assert [code(b) for b in chinese] == [code(b) for b in english]


@pytest.mark.parametrize("stem", CHAPTERS)
def test_a_chapter_has_exercises_with_solutions_and_a_drawn_picture(stem):
    for suffix in ("", ".zh"):
        page = (DOCS / f"{stem}{suffix}.md").read_text(encoding="utf-8")
        exercises = re.findall(r'^\?\?\? question "[^"]+"\n((?:(?: {4}.*)?\n)*)', page, re.M)
        assert len(exercises) >= 2, f"{stem}{suffix}.md: fewer than two exercises"
        assert all('??? success "' in body for body in exercises), f"{stem}{suffix}.md: an exercise lacks a solution"
        pictures = [path.rsplit("/", 1)[-1] for path in re.findall(r"\]\(((?:images/)?[\w.-]+\.png)\)", page)]
        recipes = (DOCS / "contributing.md").read_text(encoding="utf-8")
        assert any(p in recipes for p in pictures), f"{stem}{suffix}.md: no picture drawn by a script here"


def test_the_nav_lists_the_course_in_order():
    nav = (DOCS.parent / "mkdocs.yml").read_text(encoding="utf-8")
    course = re.search(r"^  - Course:\n((?:      - .*\n)+)", nav, re.M).group(1)
    assert re.findall(r"- (\w+)\.md", course) == list(CHAPTERS)
