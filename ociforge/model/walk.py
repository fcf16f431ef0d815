"""The one walk over an image tree: its manifests and its blobs, each once, children first.

Every sink and checker goes through here (layout and archive writes, push,
verify), so they agree on what an artifact reaches and in which order it must
be stored: a blob before the manifest naming it, a child manifest before the
index naming it, the root last.
"""

from __future__ import annotations

from collections.abc import Iterator, Set
from dataclasses import dataclass

from .descriptor import Descriptor
from .digest import Digest
from .image import Image
from .index import Artifact, Index
from .layer import Layer


def manifests(artifact: Artifact, skip: Set[Digest] = frozenset()) -> Iterator[Artifact]:
    """Every manifest and index in the tree, children before parents, the root last.

    Each is yielded once even when several indexes (or one, repeatedly) name it;
    a subtree whose root digest is in ``skip`` is left out whole.
    """
    yield from _manifests(artifact, set(skip))


def _manifests(artifact: Artifact, done: set[Digest]) -> Iterator[Artifact]:
    if artifact.digest in done:
        return
    if isinstance(artifact, Index):
        for _, child in artifact.children:
            yield from _manifests(child, done)
    done.add(artifact.digest)
    yield artifact


def children(artifact: Artifact, skip: Set[Digest] = frozenset()) -> Iterator[Artifact]:
    """The manifests below an index, deepest first, each once (not the artifact itself)."""
    for found in manifests(artifact, skip):
        if found is not artifact:
            yield found


def images(artifact: Artifact, skip: Set[Digest] = frozenset()) -> Iterator[Image]:
    """Every distinct image manifest in the tree, in walk order."""
    for found in manifests(artifact, skip):
        if isinstance(found, Image):
            yield found


def image_blobs(image: Image) -> Iterator[Layer]:
    """An image's config (as a Layer over its bytes) and then its layers."""
    yield image.config_layer()
    yield from image.layers


def blobs(artifact: Artifact, skip: Set[Digest] = frozenset(), unique: bool = True
          ) -> Iterator[Layer]:
    """Every config and layer blob the tree names, image by image (config first).

    ``unique``: each digest once (the first time it is named); otherwise every
    mention, for callers that choose among several (push prefers one it can mount).
    """
    seen: set[Digest] = set()
    for image in images(artifact, skip):
        for blob in image_blobs(image):
            if unique:
                if blob.digest in seen:
                    continue
                seen.add(blob.digest)
            yield blob


@dataclass(frozen=True)
class Visit:
    """One step of the top-down walk: a manifest and how its parent names it.

    ``descriptor``/``parent``/``position`` are None for the root; ``first`` is
    False when a descriptor names a manifest that was already visited (its
    subtree is not walked again).
    """

    artifact: Artifact
    descriptor: Descriptor | None = None
    parent: Index | None = None
    position: int | None = None
    first: bool = True


def visits(artifact: Artifact) -> Iterator[Visit]:
    """The tree top-down (parents before children, in index order), as checkers and
    printers read it; a manifest several descriptors name is descended into once."""
    yield Visit(artifact)
    if isinstance(artifact, Index):
        yield from _visits(artifact, set())


def _visits(index: Index, seen: set[Digest]) -> Iterator[Visit]:
    for position, (desc, child) in enumerate(index.children):
        first = desc.digest not in seen
        seen.add(desc.digest)
        yield Visit(child, desc, index, position, first)
        if first and isinstance(child, Index):
            yield from _visits(child, seen)


def descriptors(artifact: Artifact) -> Iterator[Descriptor]:
    """Every descriptor a store must hold for ``artifact`` to be complete, each once:
    blobs, child manifests, and the root manifest last."""
    seen: set[Digest] = set()
    for found in manifests(artifact):
        if isinstance(found, Image):
            for blob in image_blobs(found):
                if blob.digest not in seen:
                    seen.add(blob.digest)
                    yield blob.descriptor
        if found.digest not in seen:
            seen.add(found.digest)
            yield found.descriptor()
