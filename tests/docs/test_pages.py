"""The documentation: every page has a Chinese twin with the same headings, every picture says how it is
drawn, and an excerpt of the package shows its real lines (the course's examples run in test_course.py)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
ENGLISH = sorted(p for p in DOCS.glob("*.md") if not p.name.endswith(".zh.md"))
# the course's pages, whose examples run as notebooks (test_course.py)
sys.path.insert(0, str(DOCS / "hooks"))
from notebooks import CHAPTERS as TEACHING  # noqa: E402

# printed lines that the pages show, checked against the page
QUOTED = ("std", "Error", "perplexity", "merges", "tokens", "大语言模型", "T=", "top_", "min_p", "step ", "cosine",
          "wsd", "logit change", "(3, 0.0", "score(", "rms ", "KV cache")


def _headings(path: Path) -> list[int]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return [len(m.group(1)) for m in re.finditer(r"^(#+) ", text, re.M)]


@pytest.mark.parametrize("page", ENGLISH, ids=lambda p: p.name)
def test_every_page_has_a_chinese_twin_with_the_same_headings(page):
    twin = page.with_name(page.stem + ".zh.md")
    assert twin.is_file(), f"{page.name} has no Chinese twin {twin.name}"
    assert _headings(twin) == _headings(page), f"{twin.name}'s headings differ from {page.name}'s"


def blocks(page: Path, lang: str) -> list[str]:
    """The page's fenced code blocks in `lang`."""
    return re.findall(rf"```{lang}\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


def runnable(block: str) -> bool:
    """An example starts with its imports; any other Python block is an excerpt of the package."""
    return re.match(r"(from|import) ", block) is not None


def test_every_picture_is_named_on_the_page_that_says_how_to_draw_it():
    recipes = (DOCS / "contributing.md").read_text(encoding="utf-8")
    pictures = [p for p in DOCS.rglob("*.png") if "assets" not in p.parts]
    assert pictures
    # a Chinese picture (NAME.zh.png) is drawn by the recipe of its English twin
    assert [p.name for p in pictures if p.name.replace(".zh.png", ".png") not in recipes] == []


@pytest.mark.parametrize("command", [["pipeline.py", "--out", "{out}/pipeline.png"],
                                     ["course_figures.py", "--out", "{out}", "--only", "attention,bpe"],
                                     ["attention_map.py", "--steps", "5", "--out", "{out}/attention.png"],
                                     ["training_curves.py", "--steps", "20", "--out", "{out}"],
                                     ["benchmark_charts.py", "--out", "{out}"]], ids=lambda c: c[0])
def test_the_picture_scripts_draw(tmp_path, command):
    pytest.importorskip("matplotlib")
    args = [a.format(out=tmp_path) for a in command]
    subprocess.run([sys.executable, str(DOCS / "scripts" / args[0]), *args[1:]], check=True, capture_output=True,
                   timeout=300)
    assert list(tmp_path.glob("*.png"))


def _excerpts():
    """The Python blocks of the other pages that are not examples (which start with their imports and
    run in tests/docs/test_commands.py) but lines shown from the package."""
    for page in ENGLISH:
        for block in blocks(page, "python") if page.stem not in TEACHING else ():
            if not runnable(block) and not block.startswith("--8<--"):
                yield pytest.param(block, id=f"{page.name}:{block.splitlines()[0][:40]}")


@pytest.mark.parametrize("block", list(_excerpts()))
def test_an_excerpt_shows_the_lines_of_the_file_it_names(block):
    names = re.findall(r"gptkit/[\w/]+\.py", block)
    assert names, "an excerpt names its source file in a comment, e.g. # gptkit/model.py"
    source = " ".join(" ".join((DOCS.parent / name).read_text(encoding="utf-8").split()) for name in names)
    for line in block.splitlines():
        line = " ".join(re.sub(r"(^|\s)#\s.*$", "", line).split())
        assert line in ("", "...") or line in source, f"{line!r} is not in {', '.join(names)}"


def test_a_line_break_inside_chinese_text_does_not_become_a_space():
    sys.path.insert(0, str(DOCS / "hooks"))
    from chinese import join_chinese_lines

    page = "没法整体画出来；但可以画\n一个切面：过最终权重\n  的平面。\n\n新段落，\nSee 英文 words\nstay apart.\n" \
           "```python\nx = 1  # 中文\n# 注释\n```\n"
    joined = "没法整体画出来；但可以画一个切面：过最终权重的平面。\n\n新段落，\nSee 英文 words\nstay apart.\n"
    assert join_chinese_lines(page) == joined + "```python\nx = 1  # 中文\n# 注释\n```\n"
