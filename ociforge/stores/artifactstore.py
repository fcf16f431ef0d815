"""Where signatures and attached artifacts are kept: an OCI layout or a registry repository.

Two ArtifactStores (see store.py): ``LayoutStore`` over ``layout.Layout`` and
``RegistryStore`` over the process's ``RegistryClient`` for the registry.
A Location hands out the right one (``Location.artifact_store``);
``open_store`` and ``check_attachable`` take a location or its string.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import HostileInputError, InvalidInputError, NotFoundError, RegistryError
from ..model import mediatypes as mt
from ..model.annotations import CONTAINERD_NAME, REF_NAME
from ..model.descriptor import Descriptor
from ..model.digest import Digest, read_all_verified
from ..model.jsonutil import MAX_DOCUMENT, parse_object
from ..model.layer import Layer
from ..model.reference import Reference, docker_reference
from ..options import Options
from .layout import ATTACH_LOCK_NAME, Layout
from .locations import Location, parse_location
from .refnames import is_attachment, select_descriptor
from .store import ArtifactStore

if TYPE_CHECKING:
    from ..remote.client import ManifestPut


def subject_descriptor(desc: Descriptor) -> Descriptor:
    """The plain (mediaType, digest, size) descriptor an artifact's ``subject`` carries."""
    return Descriptor(desc.media_type, desc.digest, desc.size)


class LayoutStore(ArtifactStore):
    """Signatures and referrers inside an OCI image layout (``oci:DIR[:TAG]``)."""

    def __init__(self, path: str | os.PathLike[str], tag: str | None, shown: str | None = None):
        self.layout = Layout(os.path.expanduser(str(path)))
        self.tag = tag
        self._shown = shown or (f"oci:{self.layout.root}:{tag}" if tag else
                                f"oci:{self.layout.root}")
        self._chosen: Descriptor | None = None

    def __str__(self) -> str:
        return self._shown

    @property
    def source(self) -> str:
        return self.layout.source

    def read_document(self, desc: Descriptor, what: str = "document") -> bytes:
        return self.layout.read_document(desc, what)

    def layer(self, desc: Descriptor) -> Layer:
        return self.layout.layer(desc)

    def resolve(self, digest: str | None = None) -> Descriptor:
        self.layout.check_readable()
        descs = self.layout.descriptors()
        if digest is not None:
            wanted = Digest.parse(digest)
            for desc in descs:
                if desc.digest == wanted:
                    self._chosen = desc
                    return subject_descriptor(desc)
            return self._describe_blob(wanted)
        images = [d for d in descs if not is_attachment(d)]
        chosen = select_descriptor(images, self.tag, None, f"OCI layout {self.layout.root}",
                                   f"oci:{self.layout.root}:TAG")
        self._chosen = chosen
        return subject_descriptor(chosen)

    def _describe_blob(self, digest: Digest) -> Descriptor:
        """A manifest that is in the layout but not listed in index.json (e.g. an index child)."""
        size = self._blob_size(digest)
        if size is None:
            raise NotFoundError(f"no manifest {digest} in {self}")
        # read through the layout: a blob that is a link out of it is refused, not followed
        data = self.layout.read_document(Descriptor(mt.OCI_MANIFEST, digest, size),
                                         f"manifest {digest}")
        doc = parse_object(data, f"manifest {digest}")
        media_type = doc.get("mediaType")
        if not isinstance(media_type, str):
            media_type = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
        if media_type not in mt.MANIFESTS:
            raise InvalidInputError(f"{digest} in {self} is a {media_type}, not a manifest")
        return Descriptor(media_type, digest, size)

    @property
    def identity(self) -> str:
        """The payload's docker-reference: the image's containerd name, else the folder name."""
        chosen = self._chosen
        name = (chosen.annotations or {}).get(CONTAINERD_NAME) if chosen else None
        if name:
            with contextlib.suppress(InvalidInputError):
                ref = Reference.parse(name)
                return docker_reference(ref.registry, ref.repository)
        return Path(self.layout.root).resolve().name.lower() or "image"

    def get_manifest(self, reference: str) -> tuple[bytes, str] | None:
        """A manifest by ref name in index.json, or by digest among the blobs."""
        tag = reference
        if ":" in tag:
            digest = Digest.parse(tag)
            if self._blob_size(digest) is None:
                return None
            desc = self._describe_blob(digest)
            return self.layout.read_document(desc, f"manifest {digest}"), desc.media_type
        if not self.layout.index_path.is_file():
            return None
        for desc in self.layout.descriptors():
            if (desc.annotations or {}).get(REF_NAME) == tag:
                return self.layout.read_document(desc, f"manifest {tag}"), desc.media_type
        return None

    def _blob_size(self, digest: Digest) -> int | None:
        """The size of a blob that is a regular file here (never through a link), or None."""
        try:
            info = os.lstat(self.layout.blob_path(digest))
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(info.st_mode):
            raise HostileInputError(f"blob {digest} in {self} is a symlink; links out of a "
                                    "layout are not followed")
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    def put_blob(self, data: bytes, media_type: str) -> Descriptor:
        self.layout.init()
        return self.layout.write_bytes_blob(data, media_type)

    def put_manifest(self, data: bytes, media_type: str, tag: str | None) -> Digest:
        self.layout.init()
        if tag is None:
            return self.layout.write_bytes_blob(data, media_type).digest
        return self.layout.put_manifest(data, media_type, [], tag).digest

    def put_subject_manifest(self, data: bytes, media_type: str) -> tuple[Digest, bool]:
        """Layouts have no referrers API: the caller maintains the fallback index."""
        return self.put_manifest(data, media_type, None), False

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        from ..fsutil import file_lock

        self.layout.init()
        with file_lock(self.layout.root / ATTACH_LOCK_NAME):
            yield


class RegistryStore(ArtifactStore):
    """Signatures and referrers in the image's own registry repository."""

    def __init__(self, reference: Reference, options: Options | None = None):
        from .registry import client_for

        self.reference = reference
        # the process-wide client for this registry: tokens and connections are shared
        self.client = client_for(reference.registry, options or Options())
        self.repo = reference.repository

    def __str__(self) -> str:
        return str(self.reference)

    @property
    def source(self) -> str:
        return self.reference.name

    @property
    def identity(self) -> str:
        return docker_reference(self.reference.registry, self.reference.repository)

    def read_document(self, desc: Descriptor, what: str = "document") -> bytes:
        if mt.is_index(desc.media_type) or mt.is_image_manifest(desc.media_type):
            data, _, _ = self.client.get_manifest(self.repo, str(desc.digest))
            return data  # fetched by digest: the client checked it
        return self.read_blob(desc, MAX_DOCUMENT)

    def layer(self, desc: Descriptor) -> Layer:
        client, repo, digest = self.client, self.repo, desc.digest
        return Layer(desc, None, lambda: client.open_blob(repo, digest), None, self.source)

    def resolve(self, digest: str | None = None) -> Descriptor:
        ident = digest or self.reference.identifier
        found = self.client.get_manifest(self.repo, ident)
        data, media_type, got = found
        got_digest = Digest.parse(str(got)) if got else Digest.of_bytes(data)
        if digest is not None and got_digest != Digest.parse(digest):
            raise NotFoundError(f"{self} answered {got_digest} for {digest}")
        return Descriptor(media_type, got_digest, len(data))

    def get_manifest(self, reference: str) -> tuple[bytes, str] | None:
        """A manifest by tag or digest; None when the registry says it is unknown."""
        try:
            data, media_type, _ = self.client.get_manifest(self.repo, reference)
        except NotFoundError:
            return None
        except RegistryError as exc:
            if exc.status == 404 or exc.code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"):
                return None
            raise
        return data, media_type

    def read_blob(self, desc: Descriptor, limit: int) -> bytes:
        if desc.size > limit:
            raise InvalidInputError(f"blob {desc.digest} is {desc.size} bytes, over {limit}")
        with contextlib.closing(self.client.open_blob(self.repo, desc.digest)) as raw:
            return read_all_verified(raw, desc.digest, desc.size, limit, "blob")

    def put_blob(self, data: bytes, media_type: str) -> Descriptor:
        digest = self.client.put_blob_bytes(self.repo, data, media_type)
        return Descriptor(media_type, digest, len(data))

    def put_manifest(self, data: bytes, media_type: str, tag: str | None) -> Digest:
        digest = Digest.of_bytes(data)
        result = self.client.put_manifest(self.repo, tag or str(digest), data, media_type)
        return _digest_of_put(result, digest)

    def put_subject_manifest(self, data: bytes, media_type: str) -> tuple[Digest, bool]:
        """PUT by digest; True when the registry acknowledged the subject (OCI-Subject)."""
        digest = Digest.of_bytes(data)
        result = self.client.put_manifest(self.repo, str(digest), data, media_type)
        return _digest_of_put(result, digest), result.oci_subject is not None

    def referrers(self, digest: Digest, artifact_type: str | None) -> list[dict[str, Any]] | None:
        found = self.client.get_referrers(self.repo, str(digest), artifact_type)
        if found is None:
            return None
        doc = found if isinstance(found, dict) else parse_object(found, "referrers index")
        entries = doc.get("manifests")
        return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _digest_of_put(result: ManifestPut, expected: Digest) -> Digest:
    return result.digest or expected


def _as_location(location: Location | str) -> Location:
    """A location string parsed by the one rule (a bare name is refused, never pushed)."""
    return parse_location(location, role="source") if isinstance(location, str) else location


def check_attachable(location: Location | str) -> None:
    """Raise InvalidInputError (exit 2) unless signatures/referrers can live at ``location``.

    Cheap and offline: lets ``export --sign``/``--attach-report`` refuse a tar
    destination before anything is built or written.
    """
    found = _as_location(location)
    if not found.supports_attachments:
        found.artifact_store()  # raises, naming the location


def open_store(location: Location | str, options: Options | None = None) -> ArtifactStore:
    """The ArtifactStore for ``oci:DIR[:TAG]``, a registry reference, or such a Location."""
    return _as_location(location).artifact_store(options)
