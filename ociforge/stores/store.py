"""The one store abstraction: raw manifests and blobs, addressed by descriptor.

``BlobStore`` is what reading needs (the loader's DocumentSource): verified,
bounded documents and lazy layers.  An OCI layout (``layout.Layout``) and an
image archive (``tarblobs.TarBlobs``) are BlobStores.  ``ArtifactStore`` adds
what signing and referrers need on top: manifests by tag or digest written
byte for byte, small blobs, the registry's referrers API and a lock around a
read-modify-write; ``artifactstore`` implements it over a layout and over a
registry repository.  A Location hands out its ArtifactStore
(``Location.artifact_store``).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from typing import Any

from ..errors import InvalidInputError
from ..model.descriptor import Descriptor
from ..model.digest import Digest
from ..model.index import Artifact
from ..model.layer import Layer
from ..model.loader import load_artifact


class BlobStore(ABC):
    """Documents and blobs by descriptor, every read verified against it."""

    @property
    def source(self) -> str | None:
        """Recorded on what is loaded from here (a layout's folder, a registry repository)."""
        return None

    @abstractmethod
    def read_document(self, desc: Descriptor, what: str = "document") -> bytes:
        """A manifest, index or config: checked against ``desc``, bounded to 4 MiB."""

    @abstractmethod
    def layer(self, desc: Descriptor) -> Layer:
        """A lazy Layer for a blob; its bytes are verified as they are read."""

    def read_blob(self, desc: Descriptor, limit: int) -> bytes:
        """A small blob, whole (an attached report, a signature payload)."""
        if desc.size > limit:
            raise InvalidInputError(f"blob {desc.digest} is {desc.size} bytes, over the "
                                    f"{limit} byte limit")
        with self.layer(desc).open() as reader:
            return reader.read()

    def load(self, desc: Descriptor) -> Artifact:
        """The Image or Index ``desc`` names, through the one loader."""
        return load_artifact(desc, self, self.source)


class ArtifactStore(BlobStore):
    """A BlobStore that keeps manifests by tag and takes attachments."""

    @property
    @abstractmethod
    def identity(self) -> str:
        """The docker-reference a signature payload names for images here."""

    @abstractmethod
    def resolve(self, digest: str | None = None) -> Descriptor:
        """The manifest this store's location names (or the one with ``digest``)."""

    @abstractmethod
    def get_manifest(self, reference: str) -> tuple[bytes, str] | None:
        """(bytes, media type) of a manifest by tag or digest; None when there is none."""

    @abstractmethod
    def put_blob(self, data: bytes, media_type: str) -> Descriptor:
        """Store a small blob."""

    @abstractmethod
    def put_manifest(self, data: bytes, media_type: str, tag: str | None) -> Digest:
        """Store manifest bytes as they are, under ``tag`` (or by digest only)."""

    @abstractmethod
    def put_subject_manifest(self, data: bytes, media_type: str) -> tuple[Digest, bool]:
        """Store a manifest with a ``subject``; True when the store indexed the referrer
        itself (a registry's referrers API), else the caller keeps the fallback tag."""

    def referrers(self, digest: Digest, artifact_type: str | None
                  ) -> list[dict[str, Any]] | None:
        """The referrers API's answer; None where there is no such API."""
        return None

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Held across a read-modify-write of a signature manifest or referrers index."""
        return contextlib.nullcontext()

    def __str__(self) -> str:
        return type(self).__name__
