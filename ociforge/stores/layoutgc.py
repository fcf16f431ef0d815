"""Removing a tag from an OCI layout, and the blobs nothing needs any more.

Under every lock of the layout (``Layout.exclusive``): the tag goes from
index.json (with ``all_tags`` every image tag naming the same manifest), and
when nothing left in the layout reaches that manifest, so do its attachments
(``sha256-<hex>.sig``/``.att``/``.sbom``, the referrers fallback ``sha256-<hex>``,
untagged entries whose ``subject`` it is).  Then every blob that no remaining
index.json entry reaches (through indexes, manifests, configs, layers and the
referrers a fallback index lists) is deleted.

Everything is worked out before anything changes: a manifest that cannot be
read or parsed stops the removal with nothing touched, because a graph we do
not understand is no ground for deleting blobs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

from ..errors import OciforgeError, SelectionError, ValidationError
from ..fsutil import atomic_write_bytes
from ..model import mediatypes as mt
from ..model.annotations import REF_NAME
from ..model.descriptor import Descriptor
from ..model.digest import Digest
from ..model.jsonutil import canonical, parse_object
from .layout import Layout
from .locations import TagRemoval
from .refnames import ATTACHMENT_TAG_RE, is_attachment_tag

_HEX = MappingProxyType({"sha256": re.compile(r"^[a-f0-9]{64}$"),
                         "sha512": re.compile(r"^[a-f0-9]{128}$")})


def _name(entry: dict[str, Any]) -> str | None:
    annotations = entry.get("annotations")
    name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
    return name if isinstance(name, str) else None


def remove_layout_tag(layout: Layout, tag: str, *, all_tags: bool = False,
                      shown: str | None = None) -> TagRemoval:
    """Remove ``tag`` (and with ``all_tags`` every tag of the same manifest) from the
    layout and delete what nothing needs any more; see the module docstring."""
    where = shown or f"oci:{layout.root}"
    layout.check_readable()
    _named(layout, tag, where)  # an unknown tag is bad input before any lock file is made
    with layout.exclusive():
        layout.check_contents()
        doc = layout.read_index()
        entries: list[dict[str, Any]] = [e for e in doc["manifests"] if isinstance(e, dict)]
        named = _named(layout, tag, where, entries)
        target = Descriptor.from_dict(named[0], f"index.json entry {tag}")
        digest = target.digest
        siblings = sorted({n for e in entries if (n := _name(e)) and n != tag
                           and not is_attachment_tag(n) and e.get("digest") == str(digest)})
        removed = {tag, *(siblings if all_tags else ())}
        kept = [e for e in entries if _name(e) not in removed]
        graph = _Graph(layout)
        kept_images = [e for e in kept if not _is_attachment_entry(e, graph)]
        still = graph.reach(kept_images)
        gone = graph.reach([named[0]]) - still
        dropped: list[dict[str, Any]] = []
        while True:  # attachments of attachments (a signature on an SBOM) go with them
            more = [e for e in kept if e not in dropped and _attachment_of(e, graph) in gone]
            if not more:
                break
            dropped += more
            gone |= graph.reach(more) - graph.reach([e for e in kept if e not in dropped])
        kept = [e for e in kept if e not in dropped]
        live = graph.reach(kept)
        doc["manifests"] = kept
        atomic_write_bytes(layout.index_path, canonical(doc))
        count, freed = _sweep(layout, live)
    attachments = tuple(sorted(_name(e) or str(e.get("digest")) for e in dropped))
    return TagRemoval(location=where, digest=str(digest), tags=tuple(sorted(removed)),
                      attachments=attachments, manifest_deleted=digest not in live,
                      blobs_removed=count, bytes_freed=freed, via="layout")


def _named(layout: Layout, tag: str, where: str,
           entries: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The index.json entries tagged ``tag`` (an image tag); SelectionError when none."""
    if entries is None:
        entries = [e for e in layout.read_index()["manifests"] if isinstance(e, dict)]
    named = [e for e in entries if _name(e) == tag]
    if not named or is_attachment_tag(tag):
        images = sorted(n for e in entries if (n := _name(e)) and not is_attachment_tag(n))
        raise SelectionError(f"no tag {tag!r} in {where}; tags: {', '.join(images) or 'none'}")
    return named


def _is_attachment_entry(entry: dict[str, Any], graph: _Graph) -> bool:
    return _attachment_of(entry, graph) is not None


def _attachment_of(entry: dict[str, Any], graph: _Graph) -> Digest | None:
    """The image an index.json entry is attached to: by its tag (``sha256-<hex>.sig``,
    ``sha256-<hex>``) or, untagged, by the ``subject`` its manifest names; else None."""
    name = _name(entry)
    if name is not None:
        match = ATTACHMENT_TAG_RE.match(name)
        if match is None:
            return None
        algorithm, _, hex_part = match.group(1).partition("-")
        return Digest(algorithm, hex_part)
    return graph.subject(entry)


class _Graph:
    """What the manifests of a layout reach, each manifest read and parsed once."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self._docs: dict[Digest, dict[str, Any] | None] = {}

    def _doc(self, desc: Descriptor) -> dict[str, Any] | None:
        """The parsed manifest or index; None when its blob is not in the layout."""
        if desc.digest not in self._docs:
            if not self.layout.has_blob(desc):
                self._docs[desc.digest] = None
            else:
                try:
                    data = self.layout.read_document(desc, f"manifest {desc.digest}")
                    self._docs[desc.digest] = parse_object(data, f"manifest {desc.digest}")
                except (OciforgeError, OSError) as exc:
                    raise ValidationError(
                        f"{self.layout.root}: cannot read manifest {desc.digest} ({exc}); "
                        "nothing was removed") from None
        return self._docs[desc.digest]

    def subject(self, entry: dict[str, Any]) -> Digest | None:
        desc = Descriptor.from_dict(entry, "index.json entry")
        if desc.media_type not in mt.MANIFESTS:
            return None
        doc = self._doc(desc)
        subject = doc.get("subject") if doc else None
        if not isinstance(subject, dict):
            return None
        return Descriptor.from_dict(subject, f"subject of {desc.digest}").digest

    def reach(self, entries: Iterable[dict[str, Any]]) -> set[Digest]:
        """Every blob digest the entries reach (their own manifests included)."""
        seen: set[Digest] = set()
        todo = [Descriptor.from_dict(e, "index.json entry") for e in entries]
        while todo:
            desc = todo.pop()
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            if desc.media_type not in mt.MANIFESTS:
                continue
            doc = self._doc(desc)
            if doc is None:
                continue
            for key in ("manifests", "layers", "blobs"):
                listed = doc.get(key)
                if isinstance(listed, list):
                    todo += [Descriptor.from_dict(item, f"{desc.digest} {key}")
                             for item in listed if isinstance(item, dict)]
            config = doc.get("config")
            if isinstance(config, dict):
                todo.append(Descriptor.from_dict(config, f"{desc.digest} config"))
        return seen


def _sweep(layout: Layout, live: set[Digest]) -> tuple[int, int]:
    """Delete every blob file not in ``live``; (how many, how many bytes)."""
    blobs = layout.root / "blobs"
    count = freed = 0
    if not blobs.is_dir():
        return 0, 0
    for algorithm, pattern in _HEX.items():
        folder = blobs / algorithm
        if not folder.is_dir() or folder.is_symlink():
            continue
        with os.scandir(folder) as found:
            for entry in found:
                if not pattern.match(entry.name) or not entry.is_file(follow_symlinks=False):
                    continue  # a writer's temporary file, or something that is not a blob
                if Digest(algorithm, entry.name) in live:
                    continue
                size = entry.stat(follow_symlinks=False).st_size
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                count += 1
                freed += size
    return count, freed
