"""The file tree an image's layers add up to, from streaming each layer once.

``read_changes`` streams one layer (any compression, every entry checked by
tarsafe) into what it does to the layers below: its entries in order, with a
sha256 of every regular file's content, its whiteouts (``.wh.NAME`` removes NAME
and everything under it) and its opaque folders (``DIR/.wh..wh..opq`` hides all
that lower layers put under DIR).  ``apply_changes`` lays those over a tree
(path -> FileState) as an unpacker would: removals first, then the entries.  A
layer two images share is read once and applied to both trees.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import IO, cast

from ..model.layer import Layer
from .decompress import open_decompressed
from .tarsafe import Limits, TarReader

OPAQUE = ".wh..wh..opq"
_WHITEOUT = ".wh."
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileState:
    """One path of the tree: its type, content digest (regular files and hardlinks to
    them), size, mode, owner, and a symlink's target."""

    type: str
    digest: str | None = None
    size: int = 0
    mode: int = 0
    uid: int = 0
    gid: int = 0
    target: str = ""

    def differences(self, other: FileState) -> list[str]:
        """What differs between two states of one path (empty: the same)."""
        out = []
        if self.type != other.type:
            out.append("type")
        if self.digest != other.digest:
            out.append("content")
        if self.target != other.target:
            out.append("target")
        if self.mode != other.mode:
            out.append("mode")
        if (self.uid, self.gid) != (other.uid, other.gid):
            out.append("owner")
        return out


@dataclass
class LayerChanges:
    """What one layer does: paths it hides (whiteouts), folders it makes opaque, and
    its entries in archive order (a hardlink names the path it links to)."""

    whiteouts: set[str] = field(default_factory=set)
    opaque: set[str] = field(default_factory=set)
    entries: list[tuple[str, FileState, str | None]] = field(default_factory=list)


def read_changes(layer: Layer, what: str | None = None) -> LayerChanges:
    """Stream ``layer`` once (verified against its digest) into its LayerChanges."""
    shown = what or f"layer {layer.digest}"
    changes = LayerChanges()
    limits = Limits()
    with layer.open() as raw:
        plain = open_decompressed(cast(IO[bytes], raw), limit=limits.max_total_bytes, what=shown)
        reader = TarReader(plain, limits, shown)
        for entry in reader:
            parent, _, base = entry.name.rpartition("/")
            if base == OPAQUE:
                changes.opaque.add(parent)
                continue
            if base.startswith(_WHITEOUT):
                changes.whiteouts.add(f"{parent}/{base[len(_WHITEOUT):]}" if parent
                                      else base[len(_WHITEOUT):])
                continue
            digest = None
            if entry.type == "file":
                hasher = hashlib.sha256()
                while True:
                    chunk = reader.read(_CHUNK)
                    if not chunk:
                        break
                    hasher.update(chunk)
                digest = "sha256:" + hasher.hexdigest()
            state = FileState(entry.type, digest, entry.size, entry.mode, entry.uid, entry.gid,
                              entry.linkname if entry.type == "symlink" else "")
            changes.entries.append((entry.name, state,
                                    entry.linkname if entry.type == "hardlink" else None))
        while plain.read(_CHUNK):
            pass  # to the end, so the layer's digest is checked
    return changes


def apply_changes(tree: dict[str, FileState], changes: LayerChanges) -> None:
    """Lay one layer over ``tree`` (in place): opaque folders and whiteouts remove what
    lower layers put there, then the layer's entries are added in order."""
    if changes.whiteouts or changes.opaque:
        for path in [p for p in tree if _hidden(p, changes)]:
            del tree[path]
    for path, state, link in changes.entries:
        if link is not None:
            linked = tree.get(link)
            state = FileState("file", linked.digest if linked else None,
                              linked.size if linked else 0, state.mode, state.uid, state.gid)
        old = tree.get(path)
        if old is not None and old.type == "dir" and state.type != "dir":
            for below in [p for p in tree if p.startswith(path + "/")]:
                del tree[below]
        tree[path] = state


def _hidden(path: str, changes: LayerChanges) -> bool:
    """Whether a lower layer's ``path`` is removed by a whiteout or an opaque folder."""
    probe = path
    while True:
        if probe in changes.whiteouts:
            return True
        parent = probe.rpartition("/")[0] if "/" in probe else ""
        if parent in changes.opaque and probe != parent:
            return True
        if not probe:
            return False
        probe = parent
