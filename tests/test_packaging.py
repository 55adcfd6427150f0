"""A wheel installed outside the checkout works on its own: presets, the demo, training by preset name."""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _sh(*args, cwd, timeout=300) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding the gptkit wheel; its dependencies come from this environment (no network)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # build from a copy, so the checkout gets no build/ or egg-info
    shutil.copytree(ROOT / "gptkit", source / "gptkit", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    _sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist", source,
        cwd=tmp)
    venv = tmp / "venv"
    _sh(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    python = venv / "bin" / "python"
    site = Path(_sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp).strip())
    # a plain path line: the dependencies are visible, but this environment's editable gptkit is not
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next((tmp / "dist").glob("gptkit-*.whl"))
    _sh(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel, cwd=tmp)
    return venv


def test_the_wheel_ships_its_presets_and_imports_from_the_venv(installed, tmp_path):
    out = _sh(installed / "bin" / "python", "-c",
              "import gptkit, gptkit.config as c; print(gptkit.__file__); print(' '.join(c.presets()))", cwd=tmp_path)
    location, names = out.splitlines()
    assert Path(location).is_relative_to(installed)
    assert set(names.split()) >= {"tiny", "demo", "small", "shakespeare-char", "gpt2-124m"}
    assert "usage: gptkit demo" in _sh(installed / "bin" / "gptkit", "demo", "--help", cwd=tmp_path)


def test_the_installed_cli_prepares_and_trains_a_preset_by_name(installed, tmp_path):
    (tmp_path / "corpus.txt").write_text("\n\n".join(f"Paragraph {i}: the fox and the dog." for i in range(300)))
    gptkit = installed / "bin" / "gptkit"
    _sh(gptkit, "prepare", "corpus.txt", "--out", "data", "--vocab-size", "300", "--quiet", cwd=tmp_path)
    _sh(gptkit, "train", "--config", "tiny", "data=data", "out_dir=run", "max_steps=3", "eval_interval=3",
        "eval_batches=1", "--quiet", cwd=tmp_path)
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()


def test_the_installed_demo_prepares_trains_and_samples(installed, tmp_path):
    out = _sh(installed / "bin" / "gptkit", "demo", "--out", "demo", "max_steps=6", "eval_interval=3",
              "eval_batches=1", cwd=tmp_path)
    assert "1/3 prepare" in out and "3/3 generate" in out and out.count("--- ") == 3
    assert (tmp_path / "demo" / "train" / "best" / "model.safetensors").is_file()
    assert (tmp_path / "demo" / "train" / "report.md").is_file()
    assert (tmp_path / "demo" / "data" / "manifest.json").is_file()
