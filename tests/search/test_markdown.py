"""Markdown in an index: sections with their headings, no code blocks, no bare headings; --exclude; and the
docs as a search demo: asked how the KV cache works, the index answers with the pages that explain it."""

from pathlib import Path

from gptkit.data.corpus import ReadOptions, expand_sources
from gptkit.search.hybrid import Searcher
from gptkit.search.index import Index, read_corpus
from gptkit.search.markdown import markdown_sections

DOCS = Path(__file__).resolve().parents[2] / "docs"

PAGE = """# Caching

Intro text about caches.

## The KV cache

The cache keeps keys and values.

```python
cache = KVCache()  # the KV cache
```

## Only a heading

### A subheading

??? question "Exercise 1: a question"
    Body of the question.
"""


def test_a_page_splits_into_sections_without_code_or_bare_headings():
    sections = markdown_sections(PAGE)
    assert sections == ["Caching\n\nIntro text about caches.", "The KV cache\n\nThe cache keeps keys and values.",
                        "A subheading\n\nExercise 1: a question\nBody of the question."]


def test_exclude_leaves_files_out_by_name_or_path(tmp_path):
    for name in ("a.md", "a.zh.md", "drafts/b.md", "c.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("text\n")
    found = expand_sources([str(tmp_path)], include=("*.md",), exclude=("*.zh.md", "drafts/*"))
    assert [Path(f).name for f in found] == ["a.md"]
    documents = list(read_corpus([str(tmp_path)], options=ReadOptions(include=("*.md",), exclude=("*.zh.md",))))
    assert [doc for doc, _ in documents] == ["a.md#1", "b.md#1"]


def test_the_docs_answer_how_the_kv_cache_works_with_prose():
    documents = read_corpus([str(DOCS)], options=ReadOptions(include=("*.md",), exclude=("*.zh.md",)))
    index = Index.build(documents)  # words only (BM25): no encoder to train here
    hits = Searcher(index).search("how does the KV cache work", k=3)
    assert any(hit.chunk.doc.startswith(("sampling.md", "generation.md")) for hit in hits), hits
    assert all("```" not in hit.chunk.text and len(hit.chunk.text.split()) > 20 for hit in hits)
