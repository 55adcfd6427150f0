"""Directories written all at once: replaced without a gap, read as one version, leftovers of dead writers removed."""

import subprocess
import sys
import threading

import pytest
import torch

from gptkit import GptkitError, load_checkpoint, save_checkpoint
from gptkit.atomic import atomic_directory, read_version, remove_directory


def test_a_reader_sees_the_old_or_the_new_checkpoint_never_neither_nor_a_mix(tmp_path, tiny_model):
    path = tmp_path / "best"
    with torch.no_grad():
        tiny_model.wte.weight[0, 0] = 0
    save_checkpoint(path, tiny_model, extra={"step": 0})
    done, loads, failures = threading.Event(), [], []

    def read():
        while not done.is_set():
            try:
                ckpt = load_checkpoint(path)
                # each version's weights carry its step: a mix of two versions would disagree
                assert ckpt.model.wte.weight[0, 0].item() == ckpt.meta["step"]
                loads.append(ckpt.meta["step"])
            except Exception as e:  # noqa: BLE001 (any failure counts)
                failures.append(repr(e))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for step in range(1, 201):
            with torch.no_grad():
                tiny_model.wte.weight[0, 0] = step
            save_checkpoint(path, tiny_model, extra={"step": step})
    finally:
        done.set()
        reader.join()
    assert failures == []
    assert len(loads) > 20 and len(set(loads)) > 5  # the reader really ran alongside the writer
    save_checkpoint(path, tiny_model)  # versions the reader still held at a swap are swept by the next write
    assert {p.name for p in tmp_path.iterdir()} == {"best", path.resolve().name}


def test_a_failed_write_leaves_the_previous_version_and_nothing_else(tmp_path):
    with atomic_directory(tmp_path / "out") as version:
        (version / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "out") as version:
        (version / "a.txt").write_text("second")
        raise RuntimeError("interrupted")
    assert (tmp_path / "out" / "a.txt").read_text() == "first"
    assert {p.name for p in tmp_path.iterdir()} == {"out", (tmp_path / "out").resolve().name}


def test_versions_nobody_holds_are_swept_and_held_ones_kept(tmp_path):
    with atomic_directory(tmp_path / "out") as version:
        (version / "a.txt").write_text("kept")
    (tmp_path / ".out.v00000000dead").mkdir()  # what a SIGKILLed writer leaves: its lock died with it
    busy = tmp_path / ".out.v00000000beef"  # a version another process is writing or reading right now
    busy.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(busy)!r}, os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_SH); print('held', flush=True)\n"
        "time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with atomic_directory(tmp_path / "out") as version:
            (version / "a.txt").write_text("new")
        assert {p.name for p in tmp_path.iterdir()} == {"out", (tmp_path / "out").resolve().name, busy.name}
    finally:
        holder.kill()
        holder.wait()
    with atomic_directory(tmp_path / "out"):  # released: the next write sweeps it
        pass
    assert {p.name for p in tmp_path.iterdir()} == {"out", (tmp_path / "out").resolve().name}


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("user data"), "exists and is not a directory"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("user data")), "directory with other files"),
    (lambda p: p.symlink_to(p.parent), "not one gptkit wrote"),
    (lambda p: p.parent.joinpath("file").write_text("x"), "is a file"),
])
def test_user_files_are_never_replaced(tmp_path, make, message):
    target = tmp_path / "out"
    make(target)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    out = tmp_path / "file" / "out" if message == "is a file" else target
    with pytest.raises(GptkitError, match=message), atomic_directory(out):
        pass
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_a_plain_directory_of_our_own_becomes_a_version(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "manifest.json").write_text("{}")
    with atomic_directory(tmp_path / "out", ours=lambda p: (p / "manifest.json").is_file()) as version:
        (version / "manifest.json").write_text('{"new": true}')
    assert (tmp_path / "out").is_symlink() and (tmp_path / "out" / "manifest.json").read_text() == '{"new": true}'
    remove_directory(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_read_errors_name_the_path_the_caller_gave(tmp_path):
    with atomic_directory(tmp_path / "out"):
        pass

    def read(directory):
        raise GptkitError(f"{directory}/x.json: corrupt")

    with pytest.raises(GptkitError, match=r"^.*/out/x\.json: corrupt$"):
        read_version(tmp_path / "out", read)


def test_a_removed_version_a_reader_still_holds_is_swept_by_a_later_write_of_any_name(tmp_path):
    with atomic_directory(tmp_path / "ckpt-1") as version:
        (version / "w").write_text("weights")
    held = (tmp_path / "ckpt-1").resolve()
    reader = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(held)!r}, os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_SH); print('held', flush=True)\n"
        "sys.stdin.readline()")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "held"
        remove_directory(tmp_path / "ckpt-1")  # pruned while a reader is busy with it
        assert held.is_dir() and not (tmp_path / "ckpt-1").exists()
    finally:
        reader.communicate("done\n")
    with atomic_directory(tmp_path / "ckpt-2"):
        pass
    assert {p.name for p in tmp_path.iterdir()} == {"ckpt-2", (tmp_path / "ckpt-2").resolve().name}
