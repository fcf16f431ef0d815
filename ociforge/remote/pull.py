"""Pull: a reference becomes an Image (or an Index with ``--platform all`` or a list).

Only documents are fetched eagerly (manifests and configs, bounded and
verified); layer bytes stay behind lazy openers that stream from the registry
and verify at EOF, each read a ``pull`` progress task of its own.  Each layer
remembers ``registry/repository`` as its ``source`` so a later push to the
same registry can mount it.  For one platform only the matching child
manifest is fetched, never every child.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Protocol

from ..model import mediatypes as mt
from ..model.descriptor import Descriptor
from ..model.digest import Digest, read_all_verified
from ..model.image import Image
from ..model.index import Artifact
from ..model.jsonutil import MAX_DOCUMENT, parse_object
from ..model.layer import Layer
from ..model.loader import T, index_entries, load_artifact, load_for_platform
from ..model.reference import Reference
from ..model.selection import listed_for
from ..options import Options, RegistryOptions
from ..progress.events import Progress, transfer
from .parallel import run_parallel


class PullSource(Protocol):
    """What a pull reads: a RegistryClient, or one answering from a cache first."""

    registry: str
    options: RegistryOptions

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, Digest]: ...

    def open_blob(self, repository: str, digest: Digest | str) -> IO[bytes]: ...


class _Documents:
    """A repository as a DocumentSource for the shared loader: manifests by digest,
    configs as blobs (both verified and bounded), layers streamed lazily."""

    def __init__(self, client: PullSource, ref: Reference, progress: Progress | None = None):
        self.client = client
        self.repository = ref.repository
        self.source = ref.name
        self.progress = progress or Progress()

    def read_document(self, desc: Descriptor, what: str) -> bytes:
        if mt.is_index(desc.media_type) or mt.is_image_manifest(desc.media_type):
            data, _, _ = self.client.get_manifest(self.repository, str(desc.digest))
            return data  # fetched by digest: the client checked it
        with self.client.open_blob(self.repository, desc.digest) as raw:
            return read_all_verified(raw, desc.digest, desc.size, MAX_DOCUMENT, what)

    def layer(self, desc: Descriptor) -> Layer:
        client, repository, digest, progress = (self.client, self.repository, desc.digest,
                                                self.progress)

        def opener() -> IO[bytes]:
            return transfer(progress, "pull", str(digest), desc.size,
                            lambda: client.open_blob(repository, digest))

        return Layer(desc, None, opener, None, self.source)


def pull(client: PullSource, ref: Reference, options: Options) -> Artifact:
    """The artifact a reference names, resolved to one platform unless all are wanted
    (or several: ``Options.platforms``).  An index listing several images for the one
    platform wanted comes whole, reading every child, so the caller chooses
    (resolve_platform: copy keeps them all, the rest takes the first)."""
    data, media_type, digest = client.get_manifest(ref.repository, ref.identifier)
    if not mt.is_index(media_type):
        media_type = mt.DOCKER_MANIFEST if media_type == mt.DOCKER_MANIFEST else mt.OCI_MANIFEST
    desc = Descriptor(media_type, digest, len(data))
    documents = _Documents(client, ref, Progress.of(options))
    if mt.is_index(media_type) and not options.all_platforms and not options.platforms \
            and listed_for(index_entries(data, desc), options.wanted_platform()) < 2:
        return load_for_platform(desc, documents, options.wanted_platform(), ref.name,
                                 document=data, where=str(ref))
    # several images for the one platform wanted: the whole index, resolve_platform chooses

    def parallel(load: Callable[[Descriptor], T], items: list[Descriptor]) -> list[T]:
        # distinct children's manifests and configs are fetched side by side (order kept)
        return run_parallel(load, items, client.options.jobs, "ociforge-pull")

    return load_artifact(desc, documents, ref.name, document=data, map_children=parallel)


def load_image(client: PullSource, ref: Reference, manifest_bytes: bytes) -> Image:
    """An image manifest already fetched from ``ref``, with its config."""
    declared = parse_object(manifest_bytes, "image manifest").get("mediaType")
    media_type = declared if isinstance(declared, str) else mt.OCI_MANIFEST
    desc = Descriptor(media_type, Digest.of_bytes(manifest_bytes), len(manifest_bytes))
    artifact = load_artifact(desc, _Documents(client, ref), ref.name, document=manifest_bytes)
    assert isinstance(artifact, Image)
    return artifact
