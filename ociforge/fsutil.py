"""Atomic file writes and advisory locks.

A reader (or a crash) must never see half a file: everything ociforge writes
goes to a temporary name in the destination's own directory (same file system,
so the rename is atomic), is fsynced, and only then renamed into place.  Any
failure, KeyboardInterrupt included, removes the temporary file, and errors
name the user's path, never the temporary name.

``check_writable_destination`` lets a command refuse an output it could not
write (missing or read-only folder) *before* it writes anything: bad input,
exit 2, rather than a half-done run that fails at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import InvalidInputError, OperationError


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


def check_file_destination(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Refuse a file destination that is a directory (bad input, exit 2)."""
    target = Path(path)
    if target.is_dir():
        raise InvalidInputError(f"{what} {str(path)!r} is a directory; a file is needed here")
    parent = target.parent if str(target.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise InvalidInputError(f"{what} {str(path)!r}: {str(parent)!r} is not a directory")
    return target


def check_writable_destination(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Refuse, before anything is written, a file ``path`` that could not be created.

    The folder must exist, be a folder and be writable, and ``path`` must not be
    a folder.  ``os.access`` alone is not enough (root passes it on read-only
    file systems), so a temporary file is created and removed in the folder too.
    """
    shown = str(path)
    target = check_file_destination(path, what)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.exists():
        raise InvalidInputError(f"{what} {shown!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{what} {shown!r}: folder {str(parent)!r} is not writable")
    try:
        fd, probe = tempfile.mkstemp(prefix=".ociforge-probe.", dir=parent)
    except OSError as exc:
        raise InvalidInputError(
            f"{what} {shown!r}: folder {str(parent)!r} is not writable ({exc.strerror})"
        ) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return target


def check_writable_folder(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Refuse a folder destination (created with its parents if missing) we cannot write."""
    shown = str(path)
    folder = Path(path)
    probe_in = folder
    while not probe_in.exists():
        if probe_in.is_symlink() or probe_in == probe_in.parent:
            break
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise InvalidInputError(f"{what} {shown!r}: {str(probe_in)!r} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".ociforge-probe.", dir=probe_in)
    except OSError as exc:
        raise InvalidInputError(
            f"{what} {shown!r}: folder {str(probe_in)!r} is not writable ({exc.strerror})"
        ) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return folder


class _NamedFile(io.FileIO):
    """A temporary file whose write errors name the final path, not the temporary one."""

    final_path = ""

    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            raise OperationError(f"writing {self.final_path} failed: {exc.strerror}") from None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Yield a binary file that becomes ``path`` only if the block succeeds.

    The parent directory is created when missing.  On any exception (or
    KeyboardInterrupt) the temporary file is removed and ``path`` is untouched.
    A folder that cannot be written is bad input (exit 2); a failure while
    writing (disk full) is a failed operation (exit 1); both name ``path``.
    """
    target = check_file_destination(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
    except OSError as exc:
        raise InvalidInputError(f"cannot write {path}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        raw = _NamedFile(fd, "wb")
        raw.final_path = str(path)
        with io.BufferedWriter(raw) as handle:
            yield handle
            try:
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                raise OperationError(f"writing {path} failed: {exc.strerror}") from None
        try:
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except OSError as exc:
            raise OperationError(f"writing {path} failed: {exc.strerror}") from None
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
