"""Outputs as plain directories, replaced whole, read as one version; small files written atomically.

A directory gptkit writes (a checkpoint, a shard set, an export, an index) is an
ordinary folder holding its files, so `cp -r`, `mv`, `tar` and backups see what
they expect. `atomic_directory` builds the next version in a hidden sibling,
`.NAME.gptkit-<hex>`, and then:

- NAME absent: renames the build to NAME;
- NAME an earlier output: swaps the two in one step (Linux `renameat2` with
  RENAME_EXCHANGE) and deletes the swapped-out one once nobody holds it; where
  the exchange is missing, it renames NAME aside and the build in, and a reader
  that meets the gap between the two renames retries;
- NAME an empty directory (a TemporaryDirectory, a mount point, one the user made):
  builds inside it and moves the files up, so NAME stays the same directory.

Whoever uses a version holds a shared `flock` on it: the writer while it builds
it, a reader (`read_version`) while it reads it. The reader opens NAME once and
reads every file through that descriptor (/proc/self/fd/N/...), so a swap in
the middle of a load cannot mix two versions. A version is deleted only under
an exclusive lock, so never while it is read; every write sweeps the versions
nobody holds (left by a killed writer, or by a reader that was still busy).

An output written in the older layout (NAME -> .NAME.v<hex>, a link to a hidden
version) is still read, becomes a plain directory on its next write, and
`migrate` turns it into one without writing.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from .errors import GptkitError
from .files import check_parent, fsync_directory, umask

T = TypeVar("T")
_READ_ATTEMPTS = 8  # each retry follows a writer's swap; more than a few in a row means something else is wrong
_SIBLING = re.compile(r"\.(.+)\.gptkit-[0-9a-f]{12}")  # a build beside NAME, or a version swapped out of NAME
_LEGACY = re.compile(r"\.(.+)\.v[0-9a-f]{12}")  # a version of the older link layout
_INSIDE = re.compile(r"\.gptkit-[0-9a-f]{12}")  # a build inside an empty directory that is filled in place
_MOVING = ".moving"  # a build inside NAME whose files are being moved up (left only by a killed writer)


@contextlib.contextmanager
def atomic_directory(path: str | Path, ours: Callable[[Path], bool] = lambda p: False) -> Iterator[Path]:
    """Yield a new, empty directory to fill; on success it becomes `path`, on error it vanishes.

    `path` must be absent, an empty directory, a directory that `ours(path)` recognises
    (an earlier output of the same kind), or a link of the older layout. Anything else is
    an error: user files are never replaced.
    """
    path = Path(path)
    _check_replaceable(path, ours)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep(path.parent)
    in_place = path.is_dir() and not path.is_symlink() and (_is_empty(path) or os.path.ismount(path))
    if in_place:
        _sweep_inside(path)
    build = path / f".gptkit-{secrets.token_hex(6)}" if in_place else _hidden_name(path)
    build.mkdir()
    old = None
    try:
        with _held(build):  # keeps sweepers away until it is installed
            yield build
            _finish(build)
            if in_place:
                _move_up(build, path)
            else:
                old = _install(build, path)
    except BaseException:
        if old is None:
            shutil.rmtree(build, ignore_errors=True)
        raise
    fsync_directory(path.parent)
    if old is not None:
        _retire(old)


def read_version(path: str | Path, read: Callable[[Path], T]) -> T:
    """`read(directory)` on one version of `path`, held so that no writer deletes it meanwhile.

    `read` gets a path through an open descriptor of the directory: a swap while it reads
    changes nothing it sees. Errors name `path`, not that descriptor.
    """
    path = Path(path)
    for attempt in range(_READ_ATTEMPTS):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            if attempt < _READ_ATTEMPTS - 1 and _swap_under_way(path):
                time.sleep(0.001 * 2**attempt)  # between the two renames of a swap without RENAME_EXCHANGE
                continue
            return read(path)  # the caller's read says what is missing, in its own words
        except NotADirectoryError:
            return read(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if os.fstat(fd).st_nlink == 0:
                continue  # swapped out and deleted before we held it: read the version there now
            view = Path(f"/proc/self/fd/{fd}")
            if not view.is_dir():  # no procfs (another OS): read by name, and retry if a swap came between
                view = path
            if _interrupted(view):
                raise GptkitError(f"{path}: a write into it was interrupted; write it again")
            try:
                result = read(view)
            except GptkitError as e:
                raise GptkitError(str(e).replace(str(view), str(path))) from e
            if view == path and os.stat(path).st_ino != os.fstat(fd).st_ino:
                continue
            return result
        finally:
            os.close(fd)
    raise GptkitError(f"{path} kept changing while it was read; try again when its writer is done")


def migrate(path: str | Path) -> bool:
    """Turn an output of the older layout (a link to a hidden version) into a plain directory, in place.

    Nothing is rewritten: the version directory takes the link's name in one exchange, and the
    files' modes are set as the umask says. Returns False when `path` already is a plain directory.
    """
    path = Path(path)
    if not path.is_symlink():
        if not path.is_dir():
            raise GptkitError(f"{path}: no such directory")
        return False
    target = path.parent / os.readlink(path)
    if not _is_legacy_link(path) or not target.is_dir():
        raise GptkitError(f"{path} is a link to {os.readlink(path)}, not one gptkit wrote; leaving it as it is")
    _set_modes(target)
    if _exchange(target, path):
        os.unlink(target)  # now the link
    else:
        os.unlink(path)
        os.rename(target, path)
    fsync_directory(path.parent)
    _sweep(path.parent)
    return True


def remove_directory(path: str | Path) -> None:
    """Delete an output directory whole (a reader still busy with it leaves it to the next sweep)."""
    path = Path(path)
    if path.is_symlink():
        _retire(path)
    elif path.is_dir():
        aside = _hidden_name(path)
        os.rename(path, aside)  # the name is free at once; the files go when nobody reads them
        _retire(aside)


def _check_replaceable(path: Path, ours: Callable[[Path], bool]) -> None:
    if path.is_symlink():
        if not _is_legacy_link(path):
            raise GptkitError(f"{path} is a link to {os.readlink(path)}, not one gptkit wrote; remove it or choose "
                              f"another output path")
    elif path.exists() and not path.is_dir():
        raise GptkitError(f"{path} exists and is not a directory; remove it or choose another output path")
    elif path.is_dir() and not _is_empty(path) and not ours(path) and not _interrupted(path):
        raise GptkitError(f"{path} is a directory with other files in it; remove it or choose another output path")
    check_parent(path)


def _is_legacy_link(path: Path) -> bool:
    match = _LEGACY.fullmatch(os.readlink(path))
    return match is not None and match.group(1) == path.name


def _is_empty(path: Path) -> bool:
    """Nothing in it but builds of writers filling it in place (live, or left by a killed one)."""
    return all(_INSIDE.fullmatch(name) for name in os.listdir(path))


def _interrupted(path: Path) -> bool:
    return any(name.endswith(_MOVING) for name in os.listdir(path))


def _hidden_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.gptkit-{secrets.token_hex(6)}")


def _install(build: Path, path: Path) -> Path | None:
    """Put `build` at `path` in one step; return where the replaced version now is (None if there was none)."""
    if not (path.exists() or path.is_symlink()):
        os.rename(build, path)
        return None
    if _exchange(build, path):
        return build  # the name of the build now holds what `path` was
    aside = _hidden_name(path)
    os.rename(path, aside)
    try:
        os.rename(build, path)
    except BaseException:
        os.rename(aside, path)
        raise
    return aside


def _exchange(a: Path, b: Path) -> bool:
    """Swap two names in one step (renameat2 RENAME_EXCHANGE); False where the system or file system lacks it."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _move_up(build: Path, path: Path) -> None:
    """Replace the files of `path` by those of `build` (inside it), holding `path` so that no reader sees a mix."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits for the readers of what is there now
        moving = build.with_name(build.name + _MOVING)  # marks the directory as mid-move until the last file is up
        os.rename(build, moving)
        for entry in os.listdir(path):
            if entry != moving.name and not _INSIDE.fullmatch(entry):
                _remove(path / entry)
        for entry in os.listdir(moving):
            os.rename(moving / entry, path / entry)
        os.rmdir(moving)
        os.fsync(fd)
    finally:
        os.close(fd)


def _retire(old: Path) -> None:
    """Delete a replaced version: a link of the older layout with its version, or a directory."""
    if old.is_symlink():
        version = old.parent / os.readlink(old)
        old.unlink()
        _delete_unless_held(version)
    else:
        _delete_unless_held(old)


@contextlib.contextmanager
def _held(directory: Path) -> Iterator[None]:
    """A shared lock on a directory: no one deletes it while this is open (nothing to hold if absent)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        yield  # the caller's own read reports what is missing
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _delete_unless_held(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError, OSError):
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # in use: a later sweep removes it
    else:
        shutil.rmtree(directory, ignore_errors=True)
    finally:
        os.close(fd)


def _sweep(directory: Path) -> None:
    """Delete hidden versions in `directory` that nobody holds and no name uses: left by a killed writer, or by
    a reader that was still busy with a version when it was replaced or removed."""
    for entry in directory.iterdir():
        if _SIBLING.fullmatch(entry.name):
            if entry.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()  # an old-layout link swapped out by a killed writer
            else:
                _delete_unless_held(entry)
        elif (name := _LEGACY.fullmatch(entry.name)) and entry.is_dir() and not entry.is_symlink():
            link = directory / name.group(1)
            if not (link.is_symlink() and os.readlink(link) == entry.name):
                _delete_unless_held(entry)


def _sweep_inside(path: Path) -> None:
    for entry in os.listdir(path):
        if _INSIDE.fullmatch(entry):
            _delete_unless_held(path / entry)


def _swap_under_way(path: Path) -> bool:
    try:
        names = os.listdir(path.parent)
    except OSError:
        return False
    return any(n.startswith(f".{path.name}.") and (_SIBLING.fullmatch(n) or _LEGACY.fullmatch(n)) for n in names)


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink()


def _set_modes(directory: Path) -> None:
    """Modes as a plain `cp` or `mkdir` would give them: files 0666 and directories 0777, less the umask
    (libraries write some files through temporary files of mode 0600)."""
    mask = umask()
    os.chmod(directory, 0o777 & ~mask)
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)


def _finish(directory: Path) -> None:
    """Modes set, and every file and directory on disk before the build becomes visible."""
    _set_modes(directory)
    for root, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                os.fsync(fh.fileno())
        fsync_directory(Path(root))
