"""Where signatures and attached artifacts are stored: an OCI layout or a registry repository.

Signing and referrers need a few raw operations that the Location protocol
(whole images in, whole images out) does not give: resolve a location to the
manifest descriptor it names, read a manifest by tag, put small blobs, put a
manifest byte for byte (under a tag or by digest), and ask the registry's
referrers API.  ``open_store`` gives one of two small adapters over
``ociforge.stores.layout.Layout`` and ``ociforge.remote.client.RegistryClient``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from ..errors import HostileInputError, InvalidInputError, NotFoundError
from ..model import mediatypes as mt
from ..model.descriptor import Descriptor
from ..model.digest import Digest, read_all_verified
from ..model.jsonutil import parse_object
from .refnames import CONTAINERD_NAME, REF_NAME, is_attachment, select_descriptor


class ArtifactStore(Protocol):
    @property
    def identity(self) -> str: ...

    def resolve(self, digest: str | None = None) -> Descriptor: ...

    def get_manifest(self, tag: str) -> tuple[bytes, str] | None: ...

    def read_blob(self, desc: Descriptor, limit: int) -> bytes: ...

    def put_blob(self, data: bytes, media_type: str) -> Descriptor: ...

    def put_manifest(self, data: bytes, media_type: str, tag: str | None) -> Digest: ...

    def put_subject_manifest(self, data: bytes, media_type: str) -> tuple[Digest, bool]: ...

    def referrers(self, digest: Digest, artifact_type: str | None) -> list[dict[str, Any]] | None:
        ...

    def locked(self) -> contextlib.AbstractContextManager[None]: ...

    def __str__(self) -> str: ...


def subject_descriptor(desc: Descriptor) -> Descriptor:
    """The plain (mediaType, digest, size) descriptor an artifact's ``subject`` carries."""
    return Descriptor(desc.media_type, desc.digest, desc.size)


class LayoutStore:
    """Signatures and referrers inside an OCI image layout (``oci:DIR[:TAG]``)."""

    def __init__(self, path: str | os.PathLike[str], tag: str | None, shown: str | None = None):
        from .layout import Layout

        self.layout = Layout(os.path.expanduser(str(path)))
        self.tag = tag
        self._shown = shown or (f"oci:{self.layout.root}:{tag}" if tag else
                                f"oci:{self.layout.root}")
        self._chosen: Descriptor | None = None

    def __str__(self) -> str:
        return self._shown

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
                from ..model.reference import Reference
                from ..trust.sign import docker_reference

                ref = Reference.parse(name)
                return docker_reference(ref.registry, ref.repository)
        return Path(self.layout.root).resolve().name.lower() or "image"

    def get_manifest(self, tag: str) -> tuple[bytes, str] | None:
        """A manifest by ref name in index.json, or by digest among the blobs."""
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

    def read_blob(self, desc: Descriptor, limit: int) -> bytes:
        if desc.size > limit:
            raise InvalidInputError(f"blob {desc.digest} is {desc.size} bytes, over the "
                                    f"{limit} byte limit")
        with self.layout.open_blob(desc) as reader:  # refuses links out of the layout
            return reader.read()

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

    def referrers(self, digest: Digest, artifact_type: str | None) -> list[dict[str, Any]] | None:
        return None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        from ..fsutil import file_lock
        from .layout import ATTACH_LOCK_NAME

        self.layout.init()
        with file_lock(self.layout.root / ATTACH_LOCK_NAME):
            yield


class RegistryStore:
    """Signatures and referrers in the image's own registry repository."""

    def __init__(self, reference: Any, options: Any):
        from .registry import client_for

        self.reference = reference
        # the process-wide client for this registry: tokens and connections are shared
        self.client = client_for(reference.registry, _registry_options(options))
        self.repo = reference.repository

    def __str__(self) -> str:
        return str(self.reference)

    @property
    def identity(self) -> str:
        from ..trust.sign import docker_reference

        return docker_reference(self.reference.registry, self.reference.repository)

    def resolve(self, digest: str | None = None) -> Descriptor:
        ident = digest or self.reference.identifier
        found = self.client.get_manifest(self.repo, ident)
        data, media_type, got = found
        got_digest = Digest.parse(str(got)) if got else Digest.of_bytes(data)
        if digest is not None and got_digest != Digest.parse(digest):
            raise NotFoundError(f"{self} answered {got_digest} for {digest}")
        return Descriptor(media_type, got_digest, len(data))

    def get_manifest(self, tag: str) -> tuple[bytes, str] | None:
        """A manifest by tag or digest; None when the registry says it is unknown."""
        from ..errors import RegistryError

        try:
            data, media_type, _ = self.client.get_manifest(self.repo, tag)
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

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        yield


def _digest_of_put(result: Any, expected: Digest) -> Digest:
    got = getattr(result, "digest", result)
    if got is None:
        return expected
    return Digest.parse(str(got))


def _registry_options(options: Any) -> Any:
    from ..options import Options

    opts = options if options is not None else Options()
    return getattr(opts, "registry", opts)


def check_attachable(location: Any) -> None:
    """Raise InvalidInputError (exit 2) unless signatures/referrers can live at ``location``.

    Cheap and offline: lets ``export --sign``/``--attach-report`` refuse a tar
    destination before anything is built or written.
    """
    from .layout import LayoutLocation
    from .registry import RegistryLocation

    location = _as_location(location)
    if not isinstance(location, LayoutLocation | RegistryLocation):
        _refuse(str(location))


def _as_location(location: Any) -> Any:
    """A location string parsed by the one rule (a bare name is refused, never pushed)."""
    if isinstance(location, str):
        from .locations import parse_location

        return parse_location(location, role="source")
    return location


def _refuse(text: str) -> None:
    raise InvalidInputError(
        f"{text!r}: signatures and referrers live in an OCI layout (oci:DIR) or a registry, "
        "not in a tar archive"
    )


def open_store(location: Any, options: Any = None) -> ArtifactStore:
    """An ArtifactStore for ``oci:DIR[:TAG]``, a registry reference, or such a Location."""
    from .layout import LayoutLocation

    location = _as_location(location)
    check_attachable(location)
    if isinstance(location, LayoutLocation):
        return LayoutStore(location.layout.root, location.tag, str(location))
    return RegistryStore(location.reference, options)
