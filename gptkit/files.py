"""Files written whole: a temporary file in the same directory, synced, then renamed over the target.

    with atomic_file("runs/x/loss.png", "wb") as fh:   # readers see the old file or the new one, never a part
        fig.savefig(fh, format="png")
    atomic_write_text("runs/x/run.json", text)

Files get the modes the umask gives (0666 & ~umask), as any tool's output. A
temporary file left by a killed writer is removed by the next write of the same
file. `writing(what)` turns the many ways libraries report a failed write into
one GptkitError that names what could not be written.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import GptkitError

_TEMP_FILE = re.compile(r"\.(.+)\.tmp-(\d+)-[0-9a-f]{8}")  # atomic_file's temporary, with its writer's pid


@contextlib.contextmanager
def writing(what: str | Path) -> Iterator[None]:
    """A failed write (a full disk, a size limit, no permission) becomes a GptkitError that names `what`.

    Libraries report these in their own ways (OSError, SafetensorError, a bare Exception
    from Rust, a RuntimeError from torch), so any exception from the writes inside counts.
    """
    try:
        yield
    except GptkitError:
        raise
    except Exception as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else (str(e).splitlines() or [repr(e)])[0]
        raise GptkitError(f"cannot write {what}: {reason}; check the free space and permissions there") from e


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Yield a file to write; on success it replaces `path` in one rename, on error it vanishes.

    Readers see the old contents or the new, never a part; the file gets the umask's mode.
    """
    path = Path(path)
    if path.is_dir():
        raise GptkitError(f"{path} is a directory; give a file name to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_temp_files(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with writing(path), open(tmp, mode.replace("w", "x"), **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_directory(path.parent)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (see `atomic_file`)."""
    with atomic_file(path) as f:
        f.write(text)
    return Path(path)


def check_parent(path: Path) -> None:
    """The nearest existing parent of `path` is a directory (so `path` can be created)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise GptkitError(f"{parent} is a file, so {path} cannot be created under it")
            return


def _sweep_temp_files(path: Path) -> None:
    """Temporary files of `atomic_file` for `path` whose writer died."""
    for entry in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        match = _TEMP_FILE.fullmatch(entry.name)
        if match and not _alive(int(match.group(2))):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
