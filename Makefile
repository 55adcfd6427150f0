# Two commands for a fresh clone:  `make demo`  and  `make test`.
# Each creates .venv when missing and installs torch==2.13.0 (CPU) plus gptkit.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench setup clean docs docs-serve

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# pin torch first: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gptkit demo

test: $(STAMP)
	$(BIN)/python -m pytest

docs: $(STAMP)   # the site, English and Chinese, into site/ (--strict: a broken link or include fails)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

lint: $(STAMP)
	$(BIN)/python -m ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/forward.py
	$(BIN)/python benchmarks/prepare.py

clean:
	rm -rf $(VENV) runs .pytest_cache site
