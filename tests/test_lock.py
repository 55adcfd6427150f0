"""One writer per directory: the lock names its holder, and a dead holder's lock is taken over."""

import os
import signal
import subprocess
import sys
import time

import pytest

from gptkit import GptkitError
from gptkit.lock import DirectoryLock


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    refused = pytest.raises(GptkitError, match=rf"in use by another training run \(pid {os.getpid()}\)")
    with DirectoryLock(tmp_path, "training run"), refused:
        DirectoryLock(tmp_path, "training run").__enter__()
    with DirectoryLock(tmp_path):  # released on exit
        pass


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from gptkit.lock import DirectoryLock\n"
        f"DirectoryLock({str(tmp_path)!r}).__enter__(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(GptkitError, match=f"pid {holder.pid}"):
            DirectoryLock(tmp_path).__enter__()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the kernel releases the lock with the process
        try:
            with DirectoryLock(tmp_path):
                break
        except GptkitError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
