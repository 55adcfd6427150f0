"""The "Use" pages' shell commands and Python examples run as written, in page order, in one workspace
(`workspace.py`): `../shared/data` holds tiny stand-ins, and training and fine-tuning get tiny-model
defaults that the page's own settings still override. A page whose command or example fails, or whose
Chinese twin shows other code, fails its test."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.test_pages import blocks, runnable
from tests.docs.workspace import CHECKPOINT_COMMANDS, write_hub_cache, write_shared_data, write_user_files
from tests.serve.conftest import free_port

DOCS = Path(__file__).resolve().parents[2] / "docs"
# in the site's order: a page may use what an earlier one wrote (runs/tiny, runs/squad, runs/embed, ...)
PAGES = ["start", "pretrained", "data", "training", "growth", "generation", "finetuning", "lora", "translation",
         "qa", "summarization", "search", "serving", "eval", "audit", "checkpoints", "runs"]
# set-up, downloads, and other programs (llama.cpp, Ollama)
NOT_HERE = re.compile(r"^(pip install|pip download|make |git clone|cd gptkit|source |curl -L|llama-|ollama )")
TINY = "device=cpu dtype=fp32 max_steps=2 warmup_steps=1 eval_interval=2 checkpoint_interval=2 eval_batches=1 " \
       "batch_size=2"
TINY_MODEL = "n_layer=1 n_head=2 n_embd=32"
TINY_TASK = "task.vocab_size=300 val_examples=4 select_examples=4"


def commands(block: str) -> list[str]:
    """The block's command lines, continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", "", block)
    lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def code(block: str) -> list[str]:
    """A Python block's lines without comments (the Chinese twin translates those)."""
    lines = [re.sub(r"\s+#\s.*$", "", line).rstrip() for line in block.splitlines()]
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


# the same defaults for a page's Python examples, through load_config
TINY_PYTHON = f"""import gptkit.config
_load = gptkit.config.load_config
def load_config(cls, path=None, overrides=()):
    extra = "{TINY}".split() + ([] if any(o.startswith("init=") for o in overrides) else "{TINY_MODEL}".split())
    extra += "{TINY_TASK}".split() if cls.__name__ == "FinetuneConfig" else []
    return _load(cls, path, [*extra, *overrides])
gptkit.config.load_config = load_config
"""


def _tiny(line: str) -> str:
    """Tiny-model defaults go right after the subcommand, so that the page's own settings win."""
    def insert(match):
        extra = TINY + ("" if "init=" in line else " " + TINY_MODEL)
        extra += " " + TINY_TASK if match.group(1) == "finetune" else ""
        return f"gptkit {match.group(1)} {extra}"
    line = re.sub(r"^gptkit (train|finetune)\b", insert, line)
    return re.sub(r"^gptkit (generate|chat|translate|summarize|ask)\b", r"gptkit \1 --max-new-tokens 8", line)


def script(page: Path, port: int) -> str:
    """The page as one shell script: its files written, its commands run in order, a server stopped."""
    lines = ["set -eo pipefail -x", f"PORT={port}", "trap 'kill %1 2>/dev/null || true' EXIT"]
    for block in blocks(page, "toml"):  # a block that starts with `# NAME` is a file the commands read
        name = re.match(r"# ([\w.-]+\.toml)\n", block)
        if name:
            lines.append(f"cat > {name.group(1)} <<'EOF'\n{block}EOF")
    for command in (c for b in blocks(page, "bash") for c in commands(b)):
        if NOT_HERE.match(command):
            continue
        command = re.sub(r"^curl ", "curl -sSf ", _tiny(command)).replace("127.0.0.1:8000", "127.0.0.1:$PORT")
        if command.startswith("gptkit serve"):  # runs in the background until the page is done
            command += " --port $PORT > serve.log 2>&1 &\nfor _ in $(seq 300); do " \
                       "curl -sf 127.0.0.1:$PORT/v1/models > /dev/null && break; sleep 0.2; done"
        lines.append(command)
    for i, block in enumerate(b for b in blocks(page, "python") if runnable(b)):
        block = block.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        lines.append(f"cat > example_{i}.py <<'EOF'\n{TINY_PYTHON}{block}EOF\npython example_{i}.py")
    return "\n".join(lines) + "\n"


def _shell_env() -> dict:
    """This interpreter's `gptkit` and `python` first on the PATH, as an activated .venv puts them."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The pages run in order; each test then reports its own page's outcome."""
    root = tmp_path_factory.mktemp("reader")
    write_shared_data(root / "shared" / "data")
    work = root / "gptkit"
    work.mkdir()
    write_user_files(work)
    shutil.copytree(root / "shared" / "data" / "multi30k", work / "data" / "multi30k")  # as start.md downloads it

    hub = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(root / "hf-cache")}  # Hub ids come from the cache

    def run(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", command], cwd=work, env={**_shell_env(), **hub}, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=600)

    outcomes = {}
    for name in PAGES:
        outcomes[name] = run(script(DOCS / f"{name}.md", free_port()))
        if name == "start":  # its model is the reader's base model from here on
            for command in CHECKPOINT_COMMANDS:
                done = run(command)
                assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
            write_hub_cache(root / "hf-cache", work)
    return outcomes


@pytest.mark.parametrize("name", PAGES)
def test_the_commands_of_a_use_page_run_as_written(workspace, name):
    done = workspace[name]
    assert done.returncode == 0, f"docs/{name}.md: a command failed\n{done.stderr[-4000:]}"


@pytest.mark.parametrize("name", PAGES)
def test_a_chinese_page_shows_the_same_commands(name):
    english, chinese = DOCS / f"{name}.md", DOCS / f"{name}.zh.md"
    assert [commands(b) for b in blocks(chinese, "bash")] == [commands(b) for b in blocks(english, "bash")]
    assert [code(b) for b in blocks(chinese, "python")] == [code(b) for b in blocks(english, "python")]


def test_the_tiny_defaults_leave_the_page_the_last_word():
    line = _tiny("gptkit finetune --config squad-qa init=runs/base/best max_steps=100")
    assert line.index("max_steps=2") < line.index("max_steps=100") and TINY_MODEL not in line
    assert shlex.split(_tiny("gptkit train --config tiny"))[2:4] == ["device=cpu", "dtype=fp32"]


def test_a_page_with_a_wrong_command_fails(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```bash\ngptkit info runs/none/best --no-such-flag\ngptkit --help\n```\n")
    done = subprocess.run(["bash", "-c", script(page, 1)], cwd=tmp_path, env=_shell_env(), capture_output=True,
                          text=True)
    assert done.returncode == 2 and "--no-such-flag" in done.stderr
