"""The one index loader: an Image or Index out of any store of documents.

Layouts, archives and registries hand it a ``DocumentSource`` (verified,
bounded document reads and lazy layers) and it applies the same rules to all:
nesting depth, the reference budget against index bombs (a child named again
is read once but counted again, with all it names), and the schema every
index and manifest must have before it is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from ..errors import InvalidInputError, ValidationError
from . import mediatypes as mt
from .descriptor import Descriptor
from .image import Image
from .index import Artifact, Index, ReferenceBudget
from .jsonutil import parse_object
from .layer import Layer
from .platform import Platform
from .selection import select_platform

MAX_DEPTH = 8

T = TypeVar("T")
Mapper = Callable[[Callable[[Descriptor], T], list[Descriptor]], list[T]]


class DocumentSource(Protocol):
    """Where documents and blobs are read from: a layout, an archive, a registry."""

    def read_document(self, desc: Descriptor, what: str) -> bytes:
        """A manifest, index or config: checked against ``desc`` and bounded."""
        ...

    def layer(self, desc: Descriptor) -> Layer:
        """A lazy Layer for a blob (its bytes verified as they are read)."""
        ...


def _in_order(load: Callable[[Descriptor], T], items: list[Descriptor]) -> list[T]:
    return [load(item) for item in items]


def load_artifact(desc: Descriptor, store: DocumentSource, source: str | None = None, *,
                  document: bytes | None = None, budget: ReferenceBudget | None = None,
                  map_children: Mapper[tuple[Artifact, int]] | None = None) -> Artifact:
    """The Image or Index ``desc`` names, with every document below it.

    ``document``: the bytes of ``desc`` when the caller already has them
    (verified).  ``map_children`` loads an index's distinct children (in order;
    a registry passes a parallel map).  ``source`` is recorded on what is loaded.
    """
    return _load(desc, store, source, 0, budget or ReferenceBudget(), document,
                 map_children or _in_order)[0]


def _load(desc: Descriptor, store: DocumentSource, source: str | None, depth: int,
          budget: ReferenceBudget, document: bytes | None,
          map_children: Mapper[tuple[Artifact, int]]) -> tuple[Artifact, int]:
    """(artifact, weight): weight = manifests in its tree, itself included, repeats counted."""
    if depth > MAX_DEPTH:
        raise ValidationError(f"index nesting deeper than {MAX_DEPTH} at {desc.digest}")
    if mt.is_image_manifest(desc.media_type):
        return _image(desc, store, source, document), 1
    if not mt.is_index(desc.media_type):
        raise ValidationError(
            f"manifest {desc.digest} has unsupported media type {desc.media_type!r}")
    data = document if document is not None else store.read_document(desc, "image index")
    entries = index_entries(data, desc)
    where = f"image index {desc.digest}"
    fresh: dict[tuple[str, str], Descriptor] = {}
    for entry in entries:
        key = (str(entry.digest), entry.media_type)
        known = budget.loaded.get(key)
        if known is not None:  # read before: counted again with everything it names
            budget.take(known[1], where)
        elif key not in fresh:
            budget.take(1, where)
            fresh[key] = entry
        else:
            budget.take(1, where)  # a repeat within this index: its full weight below

    def load_child(entry: Descriptor) -> tuple[Artifact, int]:
        return _load(entry, store, source, depth + 1, budget, None, _in_order)

    for key, loaded in zip(fresh, map_children(load_child, list(fresh.values())), strict=True):
        budget.loaded[key] = loaded
    seen: set[tuple[str, str]] = set()
    children = []
    weight = 1
    for entry in entries:
        key = (str(entry.digest), entry.media_type)
        artifact, child_weight = budget.loaded[key]
        if key in fresh:
            if key in seen:
                budget.take(child_weight - 1, where)
            seen.add(key)
        children.append((entry, artifact))
        weight += child_weight
    return Index(data, tuple(children), source), weight


def index_entries(data: bytes, desc: Descriptor) -> list[Descriptor]:
    """The ``manifests`` of an index document, each a checked descriptor."""
    doc = parse_object(data, f"image index {desc.digest}")
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise ValidationError(f"image index {desc.digest} has no manifests array")
    return [Descriptor.from_dict(entry, f"index {desc.digest.short} entry {i}")
            for i, entry in enumerate(entries)]


def _image(desc: Descriptor, store: DocumentSource, source: str | None,
           document: bytes | None) -> Image:
    data = document if document is not None else store.read_document(desc, "image manifest")
    manifest = parse_object(data, f"image manifest {desc.digest}")
    if manifest.get("schemaVersion") == 1:
        raise ValidationError(f"manifest {desc.digest} is a Docker schema 1 manifest "
                              "(deprecated); ociforge reads schema 2 and OCI images only")
    if "manifests" in manifest and "layers" not in manifest:
        raise InvalidInputError(f"manifest {desc.digest} is an index where an image manifest "
                                "was expected")
    config = manifest.get("config")
    if not isinstance(config, dict):
        raise ValidationError(f"image manifest {desc.digest} has no config descriptor")
    if not isinstance(manifest.get("layers"), list):
        raise ValidationError(f"image manifest {desc.digest} has no layers array")
    config_desc = Descriptor.from_dict(config, f"config of {desc.digest.short}")
    config_bytes = store.read_document(config_desc, "image config")
    return Image.from_documents(data, config_bytes, store.layer, source)


def load_for_platform(desc: Descriptor, store: DocumentSource, wanted: Platform,
                      source: str | None = None, *, document: bytes | None = None,
                      where: str | None = None) -> Image:
    """The image for ``wanted`` under an index, reading only the indexes on the way to it
    and the one image chosen (see selection.select_platform)."""
    def entries_of(entry: Descriptor) -> list[Descriptor]:
        return index_entries(store.read_document(entry, "image index"), entry)

    def image_of(entry: Descriptor) -> Image:
        return _image(entry, store, source, None)

    data = document if document is not None else store.read_document(desc, "image index")
    return select_platform(index_entries(data, desc), wanted, where or f"index {desc.digest}",
                           image_of=image_of, entries_of=entries_of, budget=ReferenceBudget(),
                           max_depth=MAX_DEPTH)
