"""One writer per directory: an exclusive lock file that names its holder.

    with DirectoryLock("runs/tiny", "training run"):
        ...  # a second process gets a GptkitError naming this one's PID

The lock is `flock` on `DIR/.lock`. The kernel drops it when its process dies,
so a lock left by a killed run is taken over by the next one with no clean-up;
the file itself stays (removing it would race with a new holder).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import GptkitError

LOCK_FILE = ".lock"


class DirectoryLock:
    def __init__(self, directory: str | Path, holder: str = "run"):
        self.directory, self.holder = Path(directory), holder
        self._fd: int | None = None

    def __enter__(self) -> DirectoryLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)  # less the umask, as any file
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise GptkitError(f"{self.directory} is in use by another {self.holder} (pid {pid}): wait for it to "
                              f"finish, or choose another directory") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


_OUTPUTS = {"config.json": "a checkpoint (or an export)", "manifest.json": "a shard set",
            "index.json": "a search index", "adapter_config.json": "LoRA adapters"}


def check_out_dir(out_dir: Path) -> None:
    """A run writes a directory of its own (best/, ckpt-N/, logs): never into a file or another output."""
    if out_dir.exists() and not out_dir.is_dir():
        raise GptkitError(f"out_dir {out_dir} is a file; a run writes a directory (checkpoints, metrics, report): "
                          f"choose another out_dir")
    for marker, kind in _OUTPUTS.items():
        if (out_dir / marker).is_file():
            raise GptkitError(f"out_dir {out_dir} is {kind}, not a run directory: choose another out_dir (a run "
                              f"writes best/ and ckpt-N/ inside it)")
