"""Every benchmark script runs end to end on its --smoke setting (tiny models, synthetic data, seconds) and prints
its table, so a script that no longer runs is caught here rather than by the next person who needs its figures."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if "__main__" in p.read_text(encoding="utf-8"))
RUNS = [[p.name] for p in SCRIPTS] + [["search.py", "--scale"]]


KNOWN = ["aeslc.py", "architectures.py", "dropout.py", "forward.py", "generate.py", "growth.py", "llamacpp.py",
         "matmul.py", "multi30k.py", "perplexity.py", "prepare.py", "search.py", "serve.py", "shakespeare.py",
         "squad.py", "train.py"]


def test_every_script_is_covered():
    assert [p.name for p in SCRIPTS] == KNOWN  # a new script joins this list, and so the smoke runs below


@pytest.mark.parametrize("run", RUNS, ids=" ".join)
def test_a_benchmark_runs_its_smoke_setting_and_prints_a_table(run, tmp_path):
    proc = subprocess.run([sys.executable, str(BENCHMARKS / run[0]), "--smoke", *run[1:]], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("|") and line.count("|") >= 3 for line in lines) or \
        any(len(line.split()) >= 6 for line in lines[-6:]), proc.stdout[-2000:]  # a markdown table, or columns
    assert list(tmp_path.iterdir()) == []  # nothing left where it ran: smoke runs write to a temporary directory
