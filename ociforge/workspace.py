"""A per-process scratch folder for blobs we build before a sink takes them.

Built layers live as plain files (so sinks can hardlink or stream them without
re-hashing); they belong to this process only and vanish when it exits.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

_lock = threading.Lock()
_dir: Path | None = None
_owner_pid = -1


def blob_dir() -> Path:
    """The process's blob folder under $TMPDIR, created on first use, removed at exit."""
    global _dir, _owner_pid
    with _lock:
        # A forked child must not share (and later delete) its parent's folder.
        if _dir is None or _owner_pid != os.getpid() or not _dir.is_dir():
            _dir = Path(tempfile.mkdtemp(prefix="ociforge-blobs-"))
            _owner_pid = os.getpid()
            atexit.register(_cleanup, _dir, _owner_pid)
        return _dir


def new_blob_path() -> Path:
    """A fresh, unique, not yet existing file path inside blob_dir()."""
    return blob_dir() / f"{uuid.uuid4().hex}.blob"


def _cleanup(path: Path, pid: int) -> None:
    if os.getpid() == pid:
        shutil.rmtree(path, ignore_errors=True)
