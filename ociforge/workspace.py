"""A per-process scratch folder for blobs we build before a sink takes them.

Built layers live as plain files (so sinks can hardlink or stream them without
re-hashing); they belong to this process only and vanish when it exits.  A
process that is killed (SIGKILL, OOM) cannot clean up, so the folder's name
carries its owner's pid (``ociforge-blobs-<pid>-XXXX``) and the next run removes
folders whose owner is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

PREFIX = "ociforge-blobs-"
STALE_AFTER = 300.0  # seconds: a folder younger than this is left alone whatever its pid
_NAME_RE = re.compile(r"^ociforge-blobs-(\d+)-[^/]+$")

_lock = threading.Lock()
_dir: Path | None = None
_owner_pid = -1
_latest: Path | None = None


def blob_dir() -> Path:
    """The process's blob folder under $TMPDIR, created on first use, removed at exit."""
    global _dir, _owner_pid
    with _lock:
        # A forked child must not share (and later delete) its parent's folder.
        if _dir is None or _owner_pid != os.getpid() or not _dir.is_dir():
            if _owner_pid != os.getpid():
                remove_stale_folders()
            _dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
            _owner_pid = os.getpid()
            atexit.register(_cleanup, _dir, _owner_pid)
        return _dir


def new_blob_path() -> Path:
    """A fresh, unique, not yet existing file path inside blob_dir()."""
    global _latest
    path = blob_dir() / f"{uuid.uuid4().hex}.blob"
    _latest = path
    return path


def latest_blob_path() -> Path | None:
    """The blob path handed out last (a progress line watches the layer being built grow)."""
    return _latest


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

    Only folders that are ours (same uid), whose pid (from the name) is dead, and
    that have not changed for STALE_AFTER seconds: a live process's folder, or one
    whose pid cannot be read from its name, is never touched.
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
        if match is None or int(match.group(1)) == os.getpid():
            continue
        path = root / name
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if (not os.path.isdir(path) or os.path.islink(path) or info.st_uid != os.getuid()
                or moment - info.st_mtime < STALE_AFTER or _pid_alive(int(match.group(1)))):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(path)
            removed.append(path)
    return removed


def _cleanup(path: Path, pid: int) -> None:
    if os.getpid() == pid:
        shutil.rmtree(path, ignore_errors=True)
