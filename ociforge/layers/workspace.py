"""A per-process scratch folder for blobs we build before a sink takes them.

Built layers live as plain files (so sinks can hardlink or stream them without
re-hashing); they belong to this process only and vanish when it exits.  A
process that is killed (SIGKILL, OOM) cannot clean up, so the next run sweeps
folders whose owner is gone.

"Gone" is decided by a lock, not a pid: the owner holds an exclusive ``flock`` on
``<folder>/.lock`` for its whole life, and the kernel drops it when the process
dies, however it dies.  A pid says nothing across PID namespaces (containers or
CI jobs sharing /tmp see each other's folders but not each other's processes);
a lock on the same file is the same lock everywhere.  The name also carries the
pid (``ociforge-blobs-<pid>-XXXX``), for people reading /tmp and for a folder
without a lock file (no flock on that file system, or an ociforge that took no
lock), which is judged by that pid.

The folder is the process's own, so this module keeps process state (the only
one that does, see docs/architecture.md): the folder, its owner's pid (a forked
child makes its own) and the lock's descriptor.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

PREFIX = "ociforge-blobs-"
STALE_AFTER = 300.0  # seconds: a folder younger than this is left alone whatever its lock
LOCK_NAME = ".lock"
_NAME_RE = re.compile(r"^ociforge-blobs-(\d+)-[^/]+$")

_lock = threading.Lock()
_dir: Path | None = None
_owner_pid = -1
_lock_fd = -1


def blob_dir() -> Path:
    """The process's blob folder under $TMPDIR, created on first use, removed at exit."""
    global _dir, _owner_pid, _lock_fd
    with _lock:
        # A forked child must not share (and later delete) its parent's folder.
        if _dir is None or _owner_pid != os.getpid() or not _dir.is_dir():
            if _owner_pid != os.getpid():
                remove_stale_folders()
            elif _lock_fd >= 0:  # our folder vanished under us: let its lock go
                with contextlib.suppress(OSError):
                    os.close(_lock_fd)
            _dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
            _owner_pid = os.getpid()
            _lock_fd = hold_folder_lock(_dir)
            atexit.register(_cleanup, _dir, _owner_pid)
        return _dir


def hold_folder_lock(folder: Path) -> int:
    """Take the lifetime lock of a fresh blob folder; the descriptor stays open (and
    the lock held) until the process ends.  -1 where the file system has no flock
    (then the folder looks like an old version's, judged by its pid)."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(folder / LOCK_NAME)
        return -1
    return fd


def new_blob_path() -> Path:
    """A fresh, unique, not yet existing file path inside blob_dir()."""
    return blob_dir() / f"{uuid.uuid4().hex}.blob"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, but another user's: alive
    return True


def remove_stale_folders(parent: Path | None = None, now: float | None = None) -> list[Path]:
    """Remove blob folders left by killed ociforge processes; returns what was removed.

    Only folders that are ours (same uid), unchanged for STALE_AFTER seconds, and
    whose lifetime lock nobody holds (we take it, non-blocking, and keep it while
    removing).  A folder without a lock file (no flock there, or none taken) is
    removed only when the pid in its name is dead; one whose name cannot be read is
    never touched.
    """
    root = Path(parent if parent is not None else tempfile.gettempdir())
    moment = time.time() if now is None else now
    removed: list[Path] = []
    try:
        names = [n for n in os.listdir(root) if n.startswith(PREFIX)]
    except OSError:
        return removed
    for name in names:
        match = _NAME_RE.match(name)
        path = root / name
        if match is None or (_dir is not None and path == _dir):
            continue
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if (not os.path.isdir(path) or os.path.islink(path) or info.st_uid != os.getuid()
                or moment - info.st_mtime < STALE_AFTER):
            continue
        with _abandoned(path, int(match.group(1))) as gone:
            if gone:
                with contextlib.suppress(OSError):
                    shutil.rmtree(path)
                    removed.append(path)
    return removed


@contextlib.contextmanager
def _abandoned(folder: Path, pid: int) -> Iterator[bool]:
    """True (holding the folder's lock) when no live process owns ``folder``."""
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        yield pid != os.getpid() and not _pid_alive(pid)  # no lock file: judged by the pid
        return
    except OSError:
        yield False  # a lock we cannot open (a link, not ours): not ours to judge
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False  # held: its owner is alive, in whatever PID namespace
            return
        yield True
    finally:
        os.close(fd)


def _cleanup(path: Path, pid: int) -> None:
    """Remove our folder at exit; its lock goes with the process."""
    if os.getpid() == pid:
        shutil.rmtree(path, ignore_errors=True)
