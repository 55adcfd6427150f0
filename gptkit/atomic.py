"""Directories written all at once, replaced without a gap, and read as one version.

A directory that gptkit writes (a checkpoint, a shard set) is a link, `NAME ->
.NAME.v<random>`, to an immutable version directory. `atomic_directory` builds
the next version beside it and swaps the link in one rename, so a reader sees
the old version or the new one, never neither and never a mix.

Whoever uses a version holds a shared `flock` on it: the writer while it
builds one, a reader (`read_version`) while it reads one. A version is deleted
only by someone who can take it exclusively, so nobody deletes a version that
is being read or written. The writer deletes the version it replaced, when no
reader holds it; every write also sweeps versions nobody holds and no link
points to, for any name in that directory (left by a reader that was still
busy, or by a writer that was killed: the kernel drops a dead process's locks).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from .errors import GptkitError

T = TypeVar("T")
_READ_ATTEMPTS = 5  # each retry follows a writer's swap; more than a few in a row means something else is wrong
_LINK = ".link"  # built inside the new version, then renamed over NAME: a killed writer leaves no stray link
_VERSION = re.compile(r"\.(.+)\.v[0-9a-f]{12}")  # .NAME.v<12 hex digits>, as atomic_directory names versions


@contextlib.contextmanager
def atomic_directory(path: str | Path, ours: Callable[[Path], bool] = lambda p: False) -> Iterator[Path]:
    """Yield a new, empty version directory; on success `path` points to it, on error it vanishes.

    `path` must be absent, a link written here before, an empty directory, or a
    plain directory that `ours(path)` recognises (e.g. a checkpoint written by an
    older gptkit, moved aside once). Anything else is an error: user files are
    never replaced.
    """
    path = Path(path)
    _check_replaceable(path, ours)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep(path.parent)
    version = path.with_name(f".{path.name}.v{secrets.token_hex(6)}")
    version.mkdir()
    swapped = False
    try:
        with _held(version):  # keeps sweepers away until the link makes it current
            yield version
            _fsync_files(version)
            (version / _LINK).symlink_to(version.name)
            old = _swap_link(path, version / _LINK)
            swapped = True
    except BaseException:
        if not swapped:
            shutil.rmtree(version, ignore_errors=True)
        raise
    _fsync_directory(path.parent)
    if old is not None:
        _delete_unless_held(old)


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


def read_version(path: str | Path, read: Callable[[Path], T]) -> T:
    """`read(directory)` on the version `path` points to now, held so that no writer deletes it meanwhile."""
    path = Path(path)
    for attempt in range(_READ_ATTEMPTS):
        version = path.resolve()
        try:
            with _held(version):
                return read(version)
        except (GptkitError, OSError) as e:
            if attempt < _READ_ATTEMPTS - 1 and path.resolve() != version:
                continue  # a writer swapped in a new version (and deleted this one) meanwhile: read the new one
            if isinstance(e, GptkitError) and version != path:  # name the path the caller gave, not the version
                raise GptkitError(str(e).replace(str(version), str(path))) from e
            raise
    raise AssertionError("unreachable")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a text file so that readers see the old contents or the new, never a part (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def remove_directory(path: str | Path) -> None:
    """Delete a directory written by `atomic_directory` (the link and its version), or a plain one."""
    path = Path(path)
    if path.is_symlink():
        version = path.resolve()
        path.unlink()
        _delete_unless_held(version)  # a reader still busy with it leaves it to the next sweep
    else:
        shutil.rmtree(path, ignore_errors=True)


def _check_replaceable(path: Path, ours: Callable[[Path], bool]) -> None:
    if path.is_symlink():
        if not path.resolve().name.startswith(f".{path.name}.v"):
            raise GptkitError(f"{path} is a link to {os.readlink(path)}, not one gptkit wrote; remove it or choose "
                              f"another output path")
    elif path.exists() and not path.is_dir():
        raise GptkitError(f"{path} exists and is not a directory; remove it or choose another output path")
    elif path.is_dir() and any(path.iterdir()) and not ours(path):
        raise GptkitError(f"{path} is a directory with other files in it; remove it or choose another output path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise GptkitError(f"{parent} is a file, so {path} cannot be created under it")
            break


def _swap_link(path: Path, link: Path) -> Path | None:
    """Rename `link` over `path` (one atomic step); return the version `path` pointed to before."""
    if not path.is_dir() or path.is_symlink():
        old = path.resolve() if path.is_symlink() else None
        os.replace(link, path)
        return old
    old = path.with_name(f".{path.name}.v{secrets.token_hex(6)}")  # a plain directory becomes a version first
    os.replace(path, old)
    try:
        os.replace(link, path)
    except BaseException:
        os.replace(old, path)
        raise
    return old


@contextlib.contextmanager
def _held(version: Path) -> Iterator[None]:
    """A shared lock on a version directory: no one deletes it while this is open (nothing to hold if absent)."""
    try:
        fd = os.open(version, os.O_RDONLY)
    except FileNotFoundError:
        yield  # the caller's own read reports what is missing
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _delete_unless_held(version: Path) -> None:
    try:
        fd = os.open(version, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # in use: a later sweep removes it
    else:
        shutil.rmtree(version, ignore_errors=True)
    finally:
        os.close(fd)


def _sweep(directory: Path) -> None:
    """Delete versions in `directory` that no link points to and nobody holds: left by a killed writer, or
    by a reader that was still busy with a version when it was replaced or removed."""
    for entry in directory.iterdir():
        name = _VERSION.fullmatch(entry.name)
        if name is None or entry.is_symlink() or not entry.is_dir():
            continue
        link = directory / name.group(1)
        if not (link.is_symlink() and os.readlink(link) == entry.name):
            _delete_unless_held(entry)


def _fsync_files(directory: Path) -> None:
    for f in directory.iterdir():
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
