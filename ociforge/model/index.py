"""The Index value: an image index (or Docker manifest list) and its children."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Union

from . import mediatypes as mt
from .descriptor import Descriptor
from .digest import Digest
from .image import Image
from .jsonutil import JSONObject, parse_object
from .platform import Platform

Artifact = Union[Image, "Index"]

# Real indexes name a few dozen manifests; nesting repeats multiply (each level naming
# the one below thousands of times would mean billions of reads from a few KiB).
MAX_REFERENCES = 10_000


class ReferenceBudget:
    """Counts the manifests an index tree names, repeats included, while it is loaded.

    Shared by every reader of indexes (layouts, archives, registries), so a
    hostile tree is refused before it is walked, and everything that walks an
    accepted tree later (push, write, verify) stays bounded too.
    """

    def __init__(self, limit: int = MAX_REFERENCES):
        self.limit = limit
        self._left = limit
        self._lock = threading.Lock()
        self.loaded: dict[tuple[str, str], Any] = {}  # (digest, media type) -> artifact

    def take(self, count: int, where: str) -> None:
        with self._lock:
            self._left -= count
            exhausted = self._left < 0
        if exhausted:
            from ..errors import HostileInputError

            raise HostileInputError(
                f"{where} names more than {self.limit} manifests (nested indexes, repeats "
                "counted); refusing it"
            )


@dataclass(frozen=True)
class Index:
    """An index with its children, in the order of its ``manifests`` array.

    ``children`` pairs each descriptor with the loaded child; raw bytes stay
    authoritative as for Image.
    """

    index_bytes: bytes
    children: tuple[tuple[Descriptor, Artifact], ...]
    source: str | None = field(default=None, compare=False)

    @cached_property
    def manifest(self) -> JSONObject:
        return parse_object(self.index_bytes, "image index")

    @cached_property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.index_bytes)

    @property
    def size(self) -> int:
        return len(self.index_bytes)

    @property
    def manifest_bytes(self) -> bytes:
        return self.index_bytes

    @property
    def media_type(self) -> str:
        mtype = self.manifest.get("mediaType")
        return mtype if isinstance(mtype, str) else mt.OCI_INDEX

    def descriptor(self, annotations: dict[str, str] | None = None) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size, annotations or None)

    def images(self) -> Iterator[tuple[Descriptor, Image]]:
        """Every image below this index, depth first."""
        for desc, child in self.children:
            if isinstance(child, Index):
                yield from child.images()
            else:
                yield desc, child

    def platforms(self) -> list[Platform]:
        return [d.platform for d, _ in self.children if d.platform is not None]


def build_index(
    entries: list[tuple[Artifact, dict[str, str] | None]],
    docker: bool = False,
    annotations: dict[str, str] | None = None,
    source: str | None = None,
) -> Index:
    """A new index over children (with optional per-entry annotations)."""
    from .jsonutil import canonical

    manifests = []
    children = []
    for child, extra in entries:
        platform = child.platform if isinstance(child, Image) else None
        desc = Descriptor(child.media_type, child.digest, child.size, extra or None, platform)
        manifests.append(desc.to_dict())
        children.append((desc, child))
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_LIST if docker else mt.OCI_INDEX,
        "manifests": manifests,
    }
    if annotations and not docker:
        doc["annotations"] = dict(annotations)
    return Index(canonical(doc), tuple(children), source)
