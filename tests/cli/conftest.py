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
