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


def _fake_torch_index(root: Path, version: str, requires: str) -> str:
    """A one-project PEP 503 index holding a stand-in torch wheel of `version`."""
    import zipfile

    name = f"torch-{version}-py3-none-any.whl"
    project = root / "torch"
    project.mkdir(parents=True)
    info = f"torch-{version.split('+')[0]}.dist-info"
    with zipfile.ZipFile(project / name, "w") as whl:
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n{requires}")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")
    (project / "index.html").write_text(f'<a href="{name}">{name}</a>')
    return root.as_uri()


def test_setup_takes_torchs_cpu_build_where_pypi_offers_the_cuda_one(tmp_path):
    """`make setup`'s own torch command, run by pip against a stand-in PyPI whose torch needs CUDA packages and
    a stand-in CPU index, picks the CPU build; the default index is PyTorch's CPU one."""
    import json
    import os

    pypi = _fake_torch_index(tmp_path / "pypi", "2.13.0", "Requires-Dist: nvidia-cublas-cu12\n")
    cpu = _fake_torch_index(tmp_path / "cpu", "2.13.0+cpu", "")
    dry = _sh("make", "-n", "-B", "setup", f"TORCH_INDEX={cpu}", cwd=ROOT)
    command = next(line for line in dry.splitlines() if "torch==" in line).split()
    assert command[:4] == [".venv/bin/python", "-m", "pip", "install"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
    proc = subprocess.run([sys.executable, *command[1:], "--dry-run", "--ignore-installed", "--no-deps",
                           "--index-url", pypi, "--report", tmp_path / "report.json"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    chosen = json.loads((tmp_path / "report.json").read_text())["install"]
    assert [item["metadata"]["version"] for item in chosen] == ["2.13.0+cpu"]
    default = _sh("make", "-n", "-B", "setup", cwd=ROOT)
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in default
