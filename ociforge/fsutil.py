"""Atomic file writes and advisory locks.

A reader (or a crash) must never see half a file: everything ociforge writes
goes to a temporary name in the destination's own directory (same file system,
so the rename is atomic), is fsynced, and only then renamed into place.  Any
failure, KeyboardInterrupt included, removes the temporary file, and errors
name the user's path, never the temporary name.

``open_regular``/``read_regular`` open a file the user named for reading (an
env_file, ociforge.toml, a key, a CA certificate, a tar): a FIFO, device,
socket or folder there is refused (bad input, exit 2) before a byte is read,
and opening never blocks (a FIFO without a writer would hang a plain open).

``check_writable_destination`` lets a command refuse an output it could not
write (missing or read-only folder) *before* it writes anything: bad input,
exit 2, rather than a half-done run that fails at the end.

A path the *user* names as an output (``output_file``) is never replaced by a
regular file when it is something else: a symlink is followed (its target is
replaced atomically, the link stays), a FIFO or character device
(``/dev/null``, a named pipe, ``/dev/stdout``) is written to in place as a
stream (no atomicity is possible there), and a socket, block device or
directory is refused (exit 2).  ``atomic_write`` itself replaces the name it is
given: inside a root we own (a layout's blobs), a link is never followed out.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
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


_OWN_FD = re.compile(r"^/proc/(\d+)(?:/task/\d+)?/fd/(\d+)$")
_MAX_LINKS = 40


@dataclass(frozen=True)
class OutputTarget:
    """Where a user-named output really goes.

    ``path`` is the file to replace atomically (every symlink resolved), unless
    ``stream`` is set: then it is a FIFO or character device written in place, or,
    when ``fd`` is set, one of this process's own descriptors (``/dev/stdout``,
    ``/dev/fd/N``), written through a duplicate so append mode and offset are kept.
    """

    path: Path
    stream: bool = False
    fd: int | None = None


def names_our_stdout(path: str | os.PathLike[str]) -> bool:
    """True when writing to ``path`` writes to this process's own stdout (``-o
    /dev/stdout``, a link to /proc/self/fd/1, the FIFO stdout is): the command's result
    line must then go to stderr, or it would be appended to what was written there."""
    try:
        target = resolve_output(path)
    except InvalidInputError:
        return False
    if not target.stream:
        return False
    if target.fd == 1:
        return True
    try:
        ours, theirs = os.fstat(1), os.stat(target.path)
    except OSError:
        return False
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def resolve_output(path: str | os.PathLike[str], what: str = "output") -> OutputTarget:
    """Follow ``path``'s symlinks to what an output written there would really change.

    A socket, block device or directory is bad input (exit 2), as is a link loop.
    """
    shown = str(path)
    current = os.path.abspath(os.fspath(path))
    for _ in range(_MAX_LINKS):
        parent = os.path.realpath(os.path.dirname(current))
        current = os.path.join(parent, os.path.basename(current))
        own = _OWN_FD.match(current)
        if own is not None and int(own.group(1)) == os.getpid():
            return OutputTarget(Path(current), stream=True,
                                fd=_writable_fd(int(own.group(2)), shown, what))
        try:
            info = os.lstat(current)
        except OSError:
            return OutputTarget(Path(current))  # new file (or a folder problem, found later)
        mode = info.st_mode
        if stat.S_ISLNK(mode):
            current = os.path.join(parent, os.readlink(current))
            continue
        if stat.S_ISREG(mode):
            return OutputTarget(Path(current))
        if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
            return OutputTarget(Path(current), stream=True)
        kind = ("a directory; a file is needed here" if stat.S_ISDIR(mode)
                else "a socket" if stat.S_ISSOCK(mode)
                else "a block device" if stat.S_ISBLK(mode) else "not a regular file")
        raise InvalidInputError(f"{what} {shown!r} is {kind}")
    raise InvalidInputError(f"{what} {shown!r}: too many levels of symbolic links")


def _writable_fd(fd: int, shown: str, what: str) -> int:
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError:
        raise InvalidInputError(f"{what} {shown!r}: descriptor {fd} is not open") from None
    if flags & os.O_ACCMODE not in (os.O_WRONLY, os.O_RDWR):
        raise InvalidInputError(f"{what} {shown!r}: descriptor {fd} is not open for writing")
    return fd


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

    ``path`` must not be a folder, and its folder must be one we can write, or be
    missing and creatable: missing parent folders are created when the file is
    written (like ``mkdir -p``, the same for every kind of output), so the nearest
    folder that exists must be writable and nothing on the way may be a file.
    ``os.access`` alone is not enough (root passes it on read-only file systems),
    so a temporary file is created and removed in that folder too.  Nothing is
    created here.
    """
    shown = str(path)
    resolved = resolve_output(path, what)
    if resolved.stream:
        if resolved.fd is None and not os.access(resolved.path, os.W_OK):
            raise InvalidInputError(f"{what} {shown!r} is not writable")
        return Path(path)
    target = check_file_destination(resolved.path, what)
    if resolved.path != Path(os.path.abspath(path)):
        shown = f"{shown} (-> {resolved.path})"
    parent = target.parent if str(target.parent) else Path(".")
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent  # created on writing: the nearest existing folder decides
    if not parent.is_dir():
        raise InvalidInputError(f"{what} {shown!r}: {str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{what} {shown!r}: folder {str(parent)!r} is not writable")
    _probe_writable(parent, what, shown)
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
    _probe_writable(probe_in, what, shown)
    return folder


def _probe_writable(folder: Path, what: str, shown: str) -> None:
    """Create and remove a file in ``folder``: root passes os.access on read-only mounts."""
    try:
        # named like a writer's temporary file, so a layout check running meanwhile
        # does not take the probe for a stranger's file
        fd, probe = tempfile.mkstemp(prefix=".ociforge-probe.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InvalidInputError(
            f"{what} {shown!r}: folder {str(folder)!r} is not writable ({exc.strerror})"
        ) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


class _NamedFile(io.FileIO):
    """A temporary file whose write errors name the final path, not the temporary one."""

    final_path = ""

    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            raise OperationError(f"writing {self.final_path} failed: {exc.strerror}") from None


class _StreamFile(_NamedFile):
    """A pipe, device or inherited descriptor: not seekable, but writers such as
    tarfile ask tell() for where they are, so the bytes written are counted."""

    written = 0

    def write(self, data: Any) -> int:
        count = super().write(data)
        self.written += count or 0
        return count

    def tell(self) -> int:
        return self.written

    def seekable(self) -> bool:
        return False


@contextlib.contextmanager
def new_file(path: str | os.PathLike[str], shown: str | None = None,
             buffering: int = io.DEFAULT_BUFFER_SIZE) -> Iterator[IO[bytes]]:
    """Create ``path`` (which must not exist, nor be a link) and yield it for writing.

    For scratch files we own (a layer blob being built).  A failed write (a full
    disk) is an OperationError naming ``shown`` (default: the path); on any failure
    the file is removed, so nothing half-written stays behind.
    """
    label = os.fsdecode(path) if shown is None else shown
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                     | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise OperationError(f"cannot create {label}: {exc.strerror}") from None
    raw = _NamedFile(fd, "wb")
    raw.final_path = label
    try:
        with io.BufferedWriter(raw, buffering) as handle:
            yield handle
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Yield a binary file that becomes ``path`` only if the block succeeds.

    The parent directory is created when missing.  On any exception (or
    KeyboardInterrupt) the temporary file is removed and ``path`` is untouched.
    A folder that cannot be written is bad input (exit 2); a failure while
    writing (disk full) is a failed operation (exit 1); both name ``path``.
    """
    with _atomic_write(path, path, mode) as handle:
        yield handle


@contextlib.contextmanager
def _atomic_write(path: str | os.PathLike[str], shown: str | os.PathLike[str],
                  mode: int) -> Iterator[IO[bytes]]:
    target = check_file_destination(path)
    created = make_parents(target.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
    except OSError as exc:
        remove_made(created)
        raise InvalidInputError(f"cannot write {shown}: {exc.strerror}") from None
    path = shown
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
        remove_made(created)
        raise
    _fsync_dir(target.parent)


def make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; the folders this call created, deepest first (to undo)."""
    missing = []
    probe = Path(os.path.abspath(folder))
    while not os.path.lexists(probe) and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    created: list[Path] = []
    for item in reversed(missing):
        try:
            os.mkdir(item)
        except FileExistsError:
            continue  # someone else made it meanwhile: not ours to remove
        except OSError as exc:
            remove_made(created[::-1])
            raise InvalidInputError(f"cannot create {str(item)!r}: {exc.strerror}") from None
        created.append(item)
    return created[::-1]


def remove_made(created: list[Path]) -> None:
    """Remove folders make_parents created (deepest first), where they are still empty."""
    for item in created:
        with contextlib.suppress(OSError):
            os.rmdir(item)


@contextlib.contextmanager
def output_file(path: str | os.PathLike[str], mode: int = 0o644,
                what: str = "output") -> Iterator[IO[bytes]]:
    """Like atomic_write, for a path the user named: see resolve_output.

    A symlink's target is replaced atomically (the link stays a link); a FIFO,
    character device or our own descriptor is written in place, without
    atomicity: a failure leaves what was already sent, and the run exits 1.
    """
    target = resolve_output(path, what)
    if not target.stream:
        with _atomic_write(target.path, path, mode) as handle:
            yield handle
        return
    try:
        fd = (os.dup(target.fd) if target.fd is not None
              else os.open(target.path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC))
    except OSError as exc:
        raise InvalidInputError(f"cannot write {path}: {exc.strerror}") from None
    raw = _StreamFile(fd, "wb")
    raw.final_path = str(path)
    with io.BufferedWriter(raw) as handle:
        yield handle
        try:
            handle.flush()
        except OSError as exc:
            raise OperationError(f"writing {path} failed: {exc.strerror}") from None


def write_output_bytes(path: str | os.PathLike[str], data: bytes, mode: int = 0o644,
                       what: str = "output") -> None:
    """Write a small document to a user-named output (see output_file)."""
    with output_file(path, mode, what) as handle:
        handle.write(data)


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
    with holding_lock(fd):
        yield


@contextlib.contextmanager
def holding_lock(fd: int) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the open ``fd`` for the block, then close it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _FILE_KINDS if test(mode)), "not a regular file")


def open_regular(path: str | os.PathLike[str], what: str,
                 shown: str | None = None) -> IO[bytes]:
    """Open a user-named file for reading; anything but a regular file is bad input.

    Symlinks are followed (a key may well be a link), but what they lead to must be
    a regular file.  The kind is checked before the open (so a device is never
    opened) and again on the open descriptor (so a file swapped for a FIFO or a
    device in between is refused too); the open itself is non-blocking, so a FIFO
    with no writer cannot hang it.  Errors name ``what`` and ``shown`` (default: the
    path as given).  The caller closes the file (``with open_regular(...) as f``).
    """
    if shown is None:
        shown = os.fsdecode(path)
    try:
        kind = _not_regular(os.stat(path).st_mode)
        if kind is not None:
            raise InvalidInputError(f"{what} {shown!r} is {kind}; a regular file is needed")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InvalidInputError(f"{what} {shown!r} does not exist") from None
    except NotADirectoryError:
        raise InvalidInputError(f"{what} {shown!r}: a folder on its path is a file") from None
    except OSError as exc:
        raise InvalidInputError(f"{what} {shown!r} cannot be read: {exc.strerror}") from None
    try:
        kind = _not_regular(os.fstat(fd).st_mode)
        if kind is not None:
            raise InvalidInputError(f"{what} {shown!r} is {kind}; a regular file is needed")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], what: str, limit: int | None = None,
                 shown: str | None = None) -> bytes:
    """The whole of a user-named regular file (see open_regular).

    With ``limit``, a file larger than that is bad input rather than read into memory.
    """
    with open_regular(path, what, shown) as handle:
        data = handle.read() if limit is None else handle.read(limit + 1)
    if limit is not None and len(data) > limit:
        shown = os.fsdecode(path) if shown is None else shown
        raise InvalidInputError(f"{what} {shown!r} is larger than {limit} bytes")
    return data

