"""The CLI end to end: what a user types, what it prints, exit codes, no tracebacks.

Most commands run in-process through `cli.main()` (a traceback would surface as an exception);
a few run as real subprocesses, the way a shell runs them.
"""

import io
import subprocess
import sys

import pytest

from gptkit.cli import main


@pytest.fixture
def cli(capsys, monkeypatch):
    """cli(*args, code=0, stdin="") -> (stdout, stderr) of `gptkit ARGS` run in-process."""
    def run(*args, code=0, stdin=""):
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        assert main([str(a) for a in args]) == code, capsys.readouterr().err
        return capsys.readouterr()
    return run


def subprocess_run(*args, code=0):
    proc = subprocess.run([sys.executable, "-m", "gptkit", *map(str, args)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == code, proc.stderr
    return proc


@pytest.fixture(scope="module")
def translation_files(tmp_path_factory):
    """A tiny parallel corpus (aligned files) and a character tokenizer for it."""
    from gptkit import Tokenizer

    tmp = tmp_path_factory.mktemp("mt")
    words = ["a b", "b c d", "c d", "d a b c", "a c"] * 8
    (tmp / "train.en").write_text("\n".join(words) + "\n")
    (tmp / "train.de").write_text("\n".join(w.upper() for w in words) + "\n")
    Tokenizer.train_char(["English: German:\nabcdABCD "]).save(tmp / "tokenizer.json")
    return tmp


@pytest.fixture(scope="session")
def qa_checkpoint(tmp_path_factory):
    """A tiny extractive QA model (a few steps: the commands' shape matters here, not its answers)."""
    from gptkit.config import FinetuneConfig, load_config
    from gptkit.train import finetune
    from tests.train.conftest import write_facts

    tmp = tmp_path_factory.mktemp("qa")
    train = write_facts(tmp / "train.jsonl", 60, 0, unanswerable=0.2)
    config = load_config(FinetuneConfig, None, [
        f"data={train}", "val_examples=10", f"out_dir={tmp / 'run'}", "format=qa", "n_layer=1", "n_head=2",
        "n_embd=32", "block_size=96", "batch_size=8", "max_steps=4", "eval_interval=4", "dtype=fp32", "device=cpu",
        "task.vocab_size=300", "doc_stride=16"])
    return finetune(config), train
