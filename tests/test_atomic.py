"""Outputs are plain directories, replaced whole: readers see one version, killed writers leave the old one
and no leftovers after the next write, user files are never replaced, and the older link layout migrates."""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from gptkit import GptkitError, load_checkpoint, save_checkpoint
from gptkit import atomic as atomic_module
from gptkit.atomic import atomic_directory, migrate, read_version, remove_directory
from gptkit.cli import main
from gptkit.files import atomic_write_text, umask


def _entries(directory):
    return {p.name for p in directory.iterdir()}


def _save_step(path, model, step):
    """A checkpoint whose weights carry its step: a mix of two versions would disagree with config.json."""
    with torch.no_grad():
        model.wte.weight[0, 0] = step
    save_checkpoint(path, model, extra={"step": step})


def _assert_whole(path):
    ckpt = load_checkpoint(path)
    assert ckpt.model.wte.weight[0, 0].item() == ckpt.meta["step"]
    return ckpt.meta["step"]


_READER = """
import json, sys
from safetensors.torch import load_file
from gptkit.atomic import read_version

def load(directory):  # what load_checkpoint reads, without building a model: 10,000 of them take seconds
    step = json.loads((directory / "config.json").read_text())["step"]
    return step, load_file(str(directory / "model.safetensors"))["wte.weight"][0, 0].item()

path, loads = sys.argv[1], int(sys.argv[2])
steps, bad = set(), 0
print("ready", flush=True)
for _ in range(loads):
    try:
        step, weight = read_version(path, load)
        bad += weight != step
        steps.add(step)
    except Exception as e:
        bad += 1
        print(repr(e), file=sys.stderr)
print(bad, len(steps), flush=True)
"""


def test_readers_in_other_processes_see_the_old_or_the_new_version_never_a_mix(tmp_path, tiny_model):
    path = tmp_path / "best"
    _save_step(path, tiny_model, 0)
    readers = [subprocess.Popen([sys.executable, "-c", _READER, str(path), "5000"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for r in readers:
        assert r.stdout.readline().strip() == "ready"
    rewrites = 0
    while rewrites < 200 or any(r.poll() is None for r in readers):  # 10,000 loads in all, 200+ rewrites
        rewrites += 1
        _save_step(path, tiny_model, rewrites)
    results = [r.communicate() for r in readers]
    for out, err in results:
        bad, versions = map(int, out.split())
        assert bad == 0, err
        assert versions > 5  # the reader really ran alongside the writer
    _save_step(path, tiny_model, rewrites + 1)  # versions a reader still held at a swap are swept by the next write
    assert _entries(tmp_path) == {"best"}
    assert path.is_dir() and not path.is_symlink()


_WRITER = """
import os, signal, sys, torch
torch.set_num_threads(1)
from gptkit import GPT, ModelConfig, save_checkpoint
model = GPT(ModelConfig(vocab_size=320, block_size=64, n_layer=2, n_head=4, n_embd=32))
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed children are reaped by the kernel
for line in sys.stdin:  # each line: fork a writer that saves new versions until it is killed
    step = int(line)
    pid = os.fork()
    if pid == 0:
        while True:
            step += 1
            with torch.no_grad():
                model.wte.weight[0, 0] = step
            save_checkpoint(sys.argv[1], model, extra={"step": step})
    print(pid, flush=True)
"""


def test_a_writer_killed_at_random_points_leaves_a_loadable_version_and_the_next_write_sweeps(tmp_path, tiny_model):
    path = tmp_path / "ck"
    _save_step(path, tiny_model, 0)
    rng = random.Random(0)
    step, interrupted = 0, 0
    forker = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(20):
            forker.stdin.write(f"{step}\n")
            forker.stdin.flush()
            writer = int(forker.stdout.readline())
            while _assert_whole(path) <= step:  # this writer's first save has landed: it is writing
                time.sleep(0.001)
            time.sleep(rng.uniform(0.002, 0.05))  # somewhere inside one of its next saves
            os.kill(writer, signal.SIGKILL)
            while Path(f"/proc/{writer}").exists():  # gone, with its locks
                time.sleep(0.001)
            step = _assert_whole(path)  # the old or a new version, whole
            interrupted += len(_entries(tmp_path)) > 1  # killed mid-save: its build is left until the next write
    finally:
        forker.kill()
        forker.wait()
    assert step >= 20 and interrupted > 0  # each writer saved at least once; some were killed in the middle
    _save_step(path, tiny_model, step + 1)
    assert _entries(tmp_path) == {"ck"}  # the killed writers' builds are gone
    assert _assert_whole(path) == step + 1


def test_without_rename_exchange_readers_retry_across_the_gap(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setattr(atomic_module, "_exchange", lambda a, b: False)  # as on a file system without it
    path = tmp_path / "best"
    _save_step(path, tiny_model, 0)
    done, failures, loads = threading.Event(), [], []

    def read():
        while not done.is_set():
            try:
                loads.append(_assert_whole(path))
            except Exception as e:  # noqa: BLE001 (any failure counts)
                failures.append(repr(e))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for step in range(1, 101):
            _save_step(path, tiny_model, step)
    finally:
        done.set()
        reader.join()
    assert failures == [] and len(set(loads)) > 3
    _save_step(path, tiny_model, 101)  # sweeps what the reader held at the last swap
    assert _entries(tmp_path) == {"best"}


def _ours(path):
    return (path / "a.txt").is_file()


def test_a_failed_write_leaves_the_previous_version_and_nothing_else(tmp_path):
    with atomic_directory(tmp_path / "out") as build:
        (build / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "out", _ours) as build:
        (build / "a.txt").write_text("second")
        raise RuntimeError("interrupted")
    assert (tmp_path / "out" / "a.txt").read_text() == "first"
    assert _entries(tmp_path) == {"out"}


def test_builds_nobody_holds_are_swept_and_held_ones_kept(tmp_path):
    with atomic_directory(tmp_path / "out") as build:
        (build / "a.txt").write_text("kept")
    (tmp_path / ".out.gptkit-00000000dead").mkdir()  # what a SIGKILLed writer leaves: its lock died with it
    busy = tmp_path / ".out.gptkit-00000000beef"  # a build another process is writing, or a version being read
    busy.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(busy)!r}, os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_SH); print('held', flush=True)\n"
        "time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with atomic_directory(tmp_path / "out", _ours) as build:
            (build / "a.txt").write_text("new")
        assert _entries(tmp_path) == {"out", busy.name}
    finally:
        holder.kill()
        holder.wait()
    with atomic_directory(tmp_path / "out", _ours) as build:  # released: the next write sweeps it
        (build / "a.txt").write_text("newer")
    assert _entries(tmp_path) == {"out"}


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("user data"), "exists and is not a directory"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("user data")), "directory with other files"),
    (lambda p: p.symlink_to(p.parent), "not one gptkit wrote"),
    (lambda p: p.parent.joinpath("file").write_text("x"), "is a file"),
])
def test_user_files_are_never_replaced(tmp_path, make, message):
    target = tmp_path / "out"
    make(target)
    before = {p.name: p.lstat().st_mtime_ns for p in tmp_path.iterdir()}
    out = tmp_path / "file" / "out" if message == "is a file" else target
    with pytest.raises(GptkitError, match=message), atomic_directory(out):
        pass
    assert {p.name: p.lstat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_an_empty_directory_is_filled_in_place(tmp_path):
    (tmp_path / "out").mkdir()
    inode = (tmp_path / "out").stat().st_ino
    with atomic_directory(tmp_path / "out") as build:
        (build / "manifest.json").write_text("{}")
    assert (tmp_path / "out").stat().st_ino == inode and _entries(tmp_path / "out") == {"manifest.json"}
    with atomic_directory(tmp_path / "out", ours=lambda p: (p / "manifest.json").is_file()) as build:
        (build / "manifest.json").write_text('{"new": true}')  # the next write swaps as usual
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == {"new": True}
    assert _entries(tmp_path) == {"out"}


def test_an_interrupted_fill_in_place_is_reported_and_replaced_by_the_next_write(tmp_path, tiny_model):
    path = tmp_path / "ck"
    path.mkdir()
    (path / ".gptkit-0123456789ab.moving").mkdir()  # a writer killed while moving its files up
    (path / "config.json").write_text("{}")
    with pytest.raises(GptkitError, match="write into it was interrupted; write it again"):
        load_checkpoint(path)
    _save_step(path, tiny_model, 3)
    assert _assert_whole(path) == 3 and not any(p.name.startswith(".") for p in path.iterdir())


def test_read_errors_name_the_path_the_caller_gave(tmp_path):
    with atomic_directory(tmp_path / "out"):
        pass

    def read(directory):
        raise GptkitError(f"{directory}/x.json: corrupt")

    with pytest.raises(GptkitError, match=rf"^{tmp_path}/out/x\.json: corrupt$"):
        read_version(tmp_path / "out", read)


def test_a_removed_output_a_reader_still_holds_is_swept_by_a_later_write_of_any_name(tmp_path):
    with atomic_directory(tmp_path / "ckpt-1") as build:
        (build / "w").write_text("weights")
    reader = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys\n"
        f"fd = os.open({str(tmp_path / 'ckpt-1')!r}, os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_SH)\n"
        "print('held', flush=True); sys.stdin.readline()")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "held"
        remove_directory(tmp_path / "ckpt-1")  # pruned while a reader is busy with it
        assert not (tmp_path / "ckpt-1").exists() and len(_entries(tmp_path)) == 1  # kept aside, hidden
    finally:
        reader.communicate("done\n")
    with atomic_directory(tmp_path / "ckpt-2"):
        pass
    assert _entries(tmp_path) == {"ckpt-2"}


def _legacy_checkpoint(tmp_path, model, step, name="ck"):
    """The link layout of earlier gptkit versions: NAME -> .NAME.v<12 hex>, plus a stale version beside it."""
    _save_step(tmp_path / "build", model, step)
    version = tmp_path / f".{name}.v0123456789ab"
    (tmp_path / "build").rename(version)
    (tmp_path / name).symlink_to(version.name)
    (tmp_path / f".{name}.v00000000dead").mkdir()  # one a killed writer of that layout left
    return tmp_path / name


def test_the_older_link_layout_is_read_and_becomes_a_plain_directory_on_its_next_write(tmp_path, tiny_model):
    path = _legacy_checkpoint(tmp_path, tiny_model, 5)
    assert _assert_whole(path) == 5
    _save_step(path, tiny_model, 6)
    assert path.is_dir() and not path.is_symlink() and _entries(tmp_path) == {"ck"}
    assert _assert_whole(path) == 6


def test_migrate_turns_the_link_layout_into_a_plain_directory_without_writing(tmp_path, tiny_model, capsys):
    path = _legacy_checkpoint(tmp_path, tiny_model, 5)
    (path / "model.safetensors").chmod(0o600)  # as the older layout wrote it
    weights = (path / "model.safetensors").stat().st_ino
    assert main(["migrate", str(path)]) == 0
    assert "now a plain directory" in capsys.readouterr().out
    assert path.is_dir() and not path.is_symlink() and _entries(tmp_path) == {"ck"}
    assert (path / "model.safetensors").stat().st_ino == weights  # the same files, not copies
    assert (path / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask()
    assert _assert_whole(path) == 5
    assert migrate(path) is False


def test_small_files_are_replaced_whole_with_the_umask_mode(tmp_path):
    target = tmp_path / "run.json"
    atomic_write_text(target, "old")
    (tmp_path / f".run.json.tmp-{2**22 + 7}-deadbeef").write_text("left by a killed writer")  # no such pid
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and _entries(tmp_path) == {"run.json"}
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask()
