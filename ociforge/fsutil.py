"""Atomic file writes and advisory locks.

A reader (or a crash) must never see half a file: everything ociforge writes
goes to a temporary name in the destination's own directory (same file system,
so the rename is atomic), is fsynced, and only then renamed into place.  Any
failure, KeyboardInterrupt included, removes the temporary file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import InvalidInputError


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable; some file systems refuse to open directories."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_file_destination(path: str | os.PathLike[str]) -> Path:
    """Refuse a file destination that is a directory (bad input, exit 2)."""
    target = Path(path)
    if target.is_dir():
        raise InvalidInputError(f"output {str(path)!r} is a directory; a file is needed here")
    parent = target.parent if str(target.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise InvalidInputError(f"output {str(path)!r}: {str(parent)!r} is not a directory")
    return target


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Yield a binary file that becomes ``path`` only if the block succeeds.

    The parent directory is created when missing.  On any exception (or
    KeyboardInterrupt) the temporary file is removed and ``path`` is untouched.
    """
    target = check_file_destination(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Write a small document atomically."""
    with atomic_write(path, mode) as handle:
        handle.write(data)


@contextlib.contextmanager
def file_lock(lock_path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive advisory lock (``flock``) on ``lock_path`` for the block.

    Used for read-modify-write of shared documents such as a layout's
    index.json, so that two processes adding tags at once both win.
    """
    path = Path(lock_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def is_within(root: Path, candidate: Path) -> bool:
    """True when ``candidate`` (made absolute, not resolved) stays inside ``root``."""
    root_abs = os.path.abspath(root)
    cand_abs = os.path.abspath(candidate)
    return cand_abs == root_abs or cand_abs.startswith(root_abs.rstrip(os.sep) + os.sep)
