"""What a layer's bytes depend on, read from the file system without reading any file.

A file counts as unchanged when its path, type, size, mode, mtime_ns, ctime_ns,
device, inode, link count and link target are all unchanged (git's index
decides the same way).  ctime cannot be set by a program: a file rewritten
with its size and mtime put back still shows a new ctime.  The walk mirrors
the layer builder's (layers/layerfiles.py): same excludes, symlinks never
followed; folders a skip rule leaves out are walked too, so a change that
would make a rule decide differently is seen.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..layers.layerfiles import Excluder, LayerSource


@dataclass(frozen=True)
class TreeState:
    """The stat of every entry a layer could hold, hashed, and the newest ctime among them."""

    digest: str
    newest_ctime_ns: int
    entries: int


class Unreadable(Exception):
    """Something could not be listed or stat-ed: the layer is built without the cache (the
    build then reports the problem itself)."""


def _line(path: bytes, info: os.stat_result, target: bytes = b"") -> bytes:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return b"d%o %s\n" % (mode, path)
    return b"%o %d %d %d %d %d %d %s\0%s\n" % (
        mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_dev, info.st_ino,
        info.st_nlink, path, target)


def tree_state(sources: Sequence[LayerSource]) -> TreeState:
    """Stat every entry of every source (in a stable order); raises Unreadable."""
    lines: list[tuple[bytes, bytes]] = []
    newest = 0
    for number, source in enumerate(sources):
        root = os.fsencode(os.path.abspath(source.src))
        prefix = b"%d:" % number
        try:
            info = os.lstat(root)
        except OSError as exc:
            raise Unreadable(f"{os.fsdecode(root)}: {exc.strerror}") from None
        if not stat.S_ISDIR(info.st_mode):
            target = os.readlink(root) if stat.S_ISLNK(info.st_mode) else b""
            lines.append((prefix, _line(prefix, info, target)))
            newest = max(newest, info.st_ctime_ns)
            continue
        newest = max(newest, _walk(root, prefix, Excluder(source.exclude), lines))
    lines.sort()
    digest = hashlib.sha256()
    digest.update(b"".join(line for _, line in lines))
    return TreeState(digest.hexdigest(), newest, len(lines))


def _walk(root: bytes, prefix: bytes, excluder: Excluder,
          lines: list[tuple[bytes, bytes]]) -> int:
    newest = 0
    stack: list[tuple[bytes, bytes]] = [(root, b"")]
    append = lines.append
    while stack:
        host_dir, rel_dir = stack.pop()
        try:
            with os.scandir(host_dir) as it:
                children = list(it)
        except OSError as exc:
            raise Unreadable(f"{os.fsdecode(host_dir)}: {exc.strerror}") from None
        for child in children:
            rel = rel_dir + b"/" + child.name if rel_dir else child.name
            if excluder and excluder.match(os.fsdecode(rel), os.fsdecode(child.name)):
                continue
            try:
                info = child.stat(follow_symlinks=False)
                mode = info.st_mode
                target = os.readlink(child.path) if stat.S_ISLNK(mode) else b""
            except OSError as exc:
                raise Unreadable(f"{os.fsdecode(child.path)}: {exc.strerror}") from None
            path = prefix + rel
            append((path, _line(path, info, target)))
            if stat.S_ISDIR(mode):
                stack.append((child.path, rel))
            elif info.st_ctime_ns > newest:
                newest = info.st_ctime_ns
    return newest


def file_states(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[str], int]:
    """Each file's stat line ("-" when it does not exist) and the newest ctime among them
    (a SQLite database and its journal files, say); raises Unreadable."""
    lines: list[str] = []
    newest = 0
    for path in paths:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            lines.append("-")
            continue
        except OSError as exc:
            raise Unreadable(f"{os.fspath(path)}: {exc.strerror}") from None
        newest = max(newest, info.st_ctime_ns)
        lines.append(_line(os.fsencode(os.fspath(path)), info).decode("utf-8", "surrogateescape"))
    return lines, newest


def code_fingerprint(module_names: Iterable[str]) -> str:
    """A digest of the source of the modules that decide some bytes.

    A change in how layers are written must never be answered from entries made
    by the code before it; the source text itself is the safest version number.
    """
    from .. import __version__

    digest = hashlib.sha256(__version__.encode())
    for name in sorted(module_names):
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None)
        digest.update(b"\0" + name.encode() + b"\0")
        if origin:
            try:
                with open(origin, "rb") as fh:
                    digest.update(fh.read())
            except OSError:
                pass
    return digest.hexdigest()
