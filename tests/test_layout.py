"""The package's shape: imports point down the pipeline, tests mirror the modules, and every file and function
stays short enough to read in one sitting."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gptkit"

# The pipeline, first to last: a module may import from its own stage and the ones before it.
STAGES = [
    # base: one error type, config validation, atomic writes, locks, the environment
    {"errors", "validate", "files", "atomic", "lock", "runtime"},
    {"config", "configfile"},
    {"model", "tokenizer"},
    {"checkpoint", "hf", "llamacpp", "quantize", "grow", "lora"},  # llamacpp: GGUF, through hf's family mapping
    {"data"},
    {"generate"},
    {"eval"},  # metrics (torch-free) and their runs over a model: fine-tuning selects checkpoints by them
    {"train"},  # uses generate for samples during training
    {"search", "serve"},  # applications: leaves that only the CLI imports
    {"cli", "__main__"},
]
RANK = {unit: rank for rank, stage in enumerate(STAGES) for unit in stage}


def _unit(path: Path) -> str:
    """A module's place in the pipeline: its top-level module or subpackage under gptkit/."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_units(source: str, package: list[str]) -> set[str]:
    """The gptkit units that `source` (a module of `package`) imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = base + (node.module.split(".") if node.module else [])
            # `from . import x` / `from gptkit import x` may name a module
            names = [module + [alias.name] for alias in node.names] if len(module) == 1 else [module]
        else:
            continue
        found.update(name[1] for name in names if name[0] == "gptkit" and len(name) > 1)
    return found


def _imports_of(path: Path) -> set[str]:
    return _imported_units(path.read_text(encoding="utf-8"), ["gptkit", *path.relative_to(PACKAGE).parent.parts])


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_module_has_a_place_in_the_pipeline():
    assert {_unit(p) for p in _modules()} <= set(RANK)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_pipeline(path):
    later = {unit for unit in _imports_of(path) if RANK.get(unit, -1) > RANK[_unit(path)]}
    assert not later, f"{path.relative_to(PACKAGE)} imports {sorted(later)}, a later stage than {_unit(path)}"


def test_the_import_reader_sees_relative_absolute_and_function_level_imports():
    source = "from ..train import loop\nimport gptkit.cli\ndef f():\n    from .. import serve\n    from . import x\n"
    assert _imported_units(source, ["gptkit", "data"]) == {"train", "cli", "serve", "data"}
    assert _imported_units("from .model import GPT\nimport torch\n", ["gptkit"]) == {"model"}


def test_tests_mirror_the_subpackages():
    for package in (p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        tests = Path(__file__).parent / package.name
        modules = {p.stem for p in package.glob("*.py") if not p.name.startswith("_")}
        assert {p.stem.removeprefix("test_") for p in tests.glob("test_*.py")} >= modules, package.name



# GPT-2's parameter names (ours and transformers'): only the model and the Hugging Face mappings may use them;
# everything else asks the model for its parts by role.
_PARAMETER_NAME = re.compile(r"\.(wte|wpe|ln_f|ln_1|ln_2|qkv|c_attn|c_fc|c_proj)\b|[\"'](attn|mlp)\.(qkv|proj|fc)\b")


def test_only_the_model_and_the_mappings_name_parameters():
    named = []
    for path in _modules():
        if path.relative_to(PACKAGE).parts[0] in ("model", "hf", "llamacpp"):  # ours <-> transformers' <-> GGUF's
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if _PARAMETER_NAME.search(code) and "_LORA_ALIASES" not in code:  # earlier LoRA target names
                named.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert not named, "\n".join(named)


MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 40


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_fits_the_line_budget(path):
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_FILE_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines; split it along a real seam"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.relative_to(PACKAGE)}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"


def test_the_line_budget_counts_a_long_function():
    source = "def f():\n" + "    x = 1\n" * 45
    (node,) = ast.parse(source).body
    assert node.end_lineno - node.lineno + 1 == 46 > MAX_FUNCTION_LINES
