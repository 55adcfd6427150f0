# Two commands for a fresh clone:  `make demo`  and  `make test`.
# Each creates .venv when missing and installs torch==2.13.0 (CPU) plus gptkit.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# PyPI's Linux torch is the multi-GB CUDA build; PyTorch's own index holds the CPU build (2.13.0+cpu, which pip
# prefers over 2.13.0 when both are offered). Offline from it, pip warns and takes torch from PyPI or local wheels.
# On a CUDA machine: make setup TORCH_INDEX=https://download.pytorch.org/whl/cu128 (or install torch first).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: demo test lint bench setup clean docs docs-serve

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0 --extra-index-url $(TORCH_INDEX)
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
