"""Image archives: ``oci-archive:FILE[:TAG]`` and ``docker-archive:FILE[:NAME:TAG]``.

Reading: any tar (or gzip/zstd-compressed tar) that holds an OCI layout, a
Docker 25+ save (OCI layout plus manifest.json), or a classic ``docker save``
(manifest.json, ``<id>.json``, ``<id>/layer.tar``).  Blobs are read in place
by member offset, never extracted whole; every entry name is checked.

Writing: one deterministic tar (sorted entries, mtime 0, uid/gid 0, fixed
modes) written atomically.  The docker-archive we write is both an OCI layout
(index.json with ``io.containerd.image.name`` and ``org.opencontainers.image.ref.name``)
and a classic docker-archive (manifest.json + repositories), so that classic
``docker load``, the containerd-backed one and ``podman load`` all accept it.

Random access to the tar and its member checks live in tarblobs; image names
and the classic ``docker save`` reader in dockerarchive.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import posixpath
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from ..errors import (
    InvalidInputError,
    NotFoundError,
    OciforgeError,
    SizeMismatchError,
    ValidationError,
)
from ..fsutil import check_writable_destination, output_file
from ..model import mediatypes as mt
from ..model import walk
from ..model.annotations import CONTAINERD_NAME, REF_NAME
from ..model.descriptor import Descriptor
from ..model.digest import CHUNK, Digest, VerifyingReader
from ..model.image import Image
from ..model.index import Artifact, Index
from ..model.jsonutil import canonical, parse_object
from ..model.selection import same_platform_images
from ..options import Options
from ..progress.events import Progress
from .dockerarchive import ImageName, docker_manifest, matches_name, select_legacy_image
from .layout import LAYOUT_VERSION, fresh_blob
from .locations import ARCHIVE_SUFFIXES, Location, WriteResult, has_file_suffix
from .refnames import check_ref_name
from .refnames import select_descriptor as _select
from .tarblobs import (
    EXPANSION_SLACK,
    MAX_EXPANSION,
    MAX_MEMBERS,
    MAX_NAME,
    TarBlobs,
    clean_member_name,
)

# The archive API: the locations, the reader and writer, and the tar and name helpers.
__all__ = [
    "EXPANSION_SLACK",
    "MAX_EXPANSION",
    "MAX_MEMBERS",
    "MAX_NAME",
    "DockerArchiveLocation",
    "ImageName",
    "OciArchiveLocation",
    "TarBlobs",
    "clean_member_name",
    "read_archive",
    "write_tar",
]


# -- reading archives as images -----------------------------------------------


def _oci_descriptors(blobs: TarBlobs) -> list[Descriptor] | None:
    if not (blobs.has("oci-layout") and blobs.has("index.json")):
        return None
    layout = parse_object(blobs.read_small("oci-layout", "oci-layout"), "oci-layout")
    if layout.get("imageLayoutVersion") != LAYOUT_VERSION:
        raise ValidationError(
            f"archive {blobs.where!r} has imageLayoutVersion "
            f"{layout.get('imageLayoutVersion')!r}, expected {LAYOUT_VERSION!r}"
        )
    index = parse_object(blobs.read_small("index.json", "index.json"), "index.json")
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise ValidationError(f"index.json in {blobs.where!r} has no manifests array")
    return [Descriptor.from_dict(e, f"index.json entry {i}") for i, e in enumerate(entries)]


def read_archive(path: str, selector: str | None, docker: bool) -> Artifact:
    """Read an image out of any supported archive.

    ``selector`` is a tag (oci-archive), a ``NAME[:TAG]`` or ``@N`` (docker-archive).
    The OCI layout part is preferred when present, so digests survive.
    """
    blobs = TarBlobs(path)
    where = f"archive {path!r}"
    descs = _oci_descriptors(blobs)
    entries = docker_manifest(blobs)
    if descs is None and entries is None:
        raise InvalidInputError(
            f"{where} holds neither an OCI layout (oci-layout, index.json) nor a manifest.json"
        )
    position: int | None = None
    name: ImageName | None = None
    if selector and selector.startswith("@"):
        if not selector[1:].isdigit():
            raise InvalidInputError(f"archive selector {selector!r} must be @N")
        position = int(selector[1:])
    elif selector and docker:
        name = ImageName.parse(selector)
    if descs is not None:
        if position is not None:
            if position >= len(descs):
                raise NotFoundError(f"{where} has no image @{position}")
            return blobs.load(descs[position])
        chosen: Descriptor | None = None
        if name is not None:
            found = [d for d in descs if matches_name(d, name)]
            if not found and entries is None:
                raise NotFoundError(f"{where} has no image named {name.repo_tag}")
            chosen = found[0] if found else None
        elif not docker or entries is None or len(descs) == 1:
            chosen = _select(descs, selector, None, where, f"oci-archive:{path}:TAG")
        if chosen is not None:
            return blobs.load(chosen)
    assert entries is not None
    return select_legacy_image(blobs, entries, position, name, path)


# -- writing ------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    name: str
    size: int
    opener: Callable[[], IO[bytes]]
    digest: Digest | None = None  # verified while copying when known


def _bytes_opener(data: bytes) -> Callable[[], IO[bytes]]:
    return lambda: io.BytesIO(data)


def _bytes_entry(name: str, data: bytes) -> _Entry:
    return _Entry(name, len(data), _bytes_opener(data))


def _layout_entries(artifact: Artifact, notes: dict[str, str] | None) -> list[_Entry]:
    """oci-layout and an index.json naming ``artifact``: what makes a tar an OCI layout."""
    index = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [artifact.descriptor(notes).to_dict()],
    }
    return [
        _bytes_entry("oci-layout", canonical({"imageLayoutVersion": LAYOUT_VERSION})),
        _bytes_entry("index.json", canonical(index)),
    ]


def _blob_entries(artifact: Artifact) -> Iterator[_Entry]:
    """Every blob an artifact reaches, each manifest after what it names (see model.walk)."""
    for manifest in walk.manifests(artifact):
        if isinstance(manifest, Image):
            for blob in walk.image_blobs(manifest):
                # a blob this process just built was hashed while written; others are verified
                check = None if fresh_blob(blob) is not None else blob.digest
                yield _Entry(_blob_name(blob.digest), blob.size, blob.opener, check)
        data = manifest.manifest_bytes
        yield _Entry(_blob_name(manifest.digest), len(data), _bytes_opener(data),
                     manifest.digest)


def _blob_name(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


def _tarinfo(name: str, size: int, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tar(path: str, entries: list[_Entry], options: Options, item: str | None = None
              ) -> None:
    """Write entries as one deterministic tar (gzip-compressed for .gz/.tgz), atomically;
    a ``write`` progress task named ``item`` (default: the path) counts the bytes."""
    unique: dict[str, _Entry] = {}
    for entry in entries:
        unique.setdefault(entry.name, entry)
    dirs = {posixpath.dirname(n) for n in unique if "/" in n}
    for d in list(dirs):
        while "/" in d:
            d = posixpath.dirname(d)
            dirs.add(d)
    names = sorted(set(unique) | dirs)
    total = sum(e.size for e in unique.values())
    compress = path.endswith((".gz", ".tgz"))
    with output_file(path) as raw, \
            Progress.of(options).task("write", item or path, total) as task:
        out: Any = (
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0)
            if compress else raw
        )
        with out if compress else contextlib.nullcontext(), tarfile.TarFile(
            fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK
        ) as tar:
            for name in names:
                found = unique.get(name)
                if found is None:
                    tar.addfile(_tarinfo(name, 0, directory=True))
                    continue
                entry = found
                source = entry.opener()
                try:
                    stream: Any = (
                        VerifyingReader(source, entry.digest, entry.size, "blob")
                        if entry.digest is not None else source
                    )
                    tar.addfile(_tarinfo(name, entry.size), task.reading(stream))
                    if entry.digest is not None and stream.read(1):
                        raise SizeMismatchError(f"blob {entry.digest} is longer than {entry.size}")
                except OSError as exc:
                    if "unexpected end of data" in str(exc):
                        raise SizeMismatchError(
                            f"blob {entry.digest or name} is shorter than {entry.size} bytes"
                        ) from None
                    raise
                finally:
                    source.close()


def _check_archive_destination(path: str) -> None:
    """An archive goes into an existing, writable folder (else exit 2, nothing written)."""
    check_writable_destination(path)


class OciArchiveLocation(Location):
    """``oci-archive:FILE[:TAG]``: a tar of an OCI image layout."""

    kind = "oci-archive"

    def __init__(self, path: str | os.PathLike[str], tag: str | None = None):
        self.path: str = os.path.expanduser(str(path))
        self.tag = tag

    def __str__(self) -> str:
        return f"oci-archive:{self.path}:{self.tag}" if self.tag else f"oci-archive:{self.path}"

    def check_destination(self) -> None:
        if self.tag is not None:
            check_ref_name(self.tag)
        _check_archive_destination(self.path)

    def with_default_name(self, name: str | None) -> OciArchiveLocation:
        if self.tag is not None or not name:
            return self
        return OciArchiveLocation(self.path, ImageName.parse(name).tag)

    def read(self, options: Options) -> Artifact:
        return read_archive(self.path, self.tag, docker=False)

    def write(self, artifact: Artifact, options: Options) -> WriteResult:
        self.check_destination()
        notes = {REF_NAME: self.tag} if self.tag else None
        entries = [*_layout_entries(artifact, notes), *_blob_entries(artifact)]
        write_tar(self.path, entries, options, str(self))
        return WriteResult(str(artifact.digest), str(self), artifact.media_type)


class DockerArchiveLocation(Location):
    """``docker-archive:FILE[:NAME[:TAG]]`` and bare ``FILE.tar``: see the module doc."""

    kind = "docker-archive"

    def __init__(self, path: str | os.PathLike[str], name: str | None = None,
                 bare: bool = False):
        self.path: str = os.path.expanduser(str(path))
        self.name = name
        self.bare = bare  # written as a bare path: only archive names are written that way

    def __str__(self) -> str:
        return f"docker-archive:{self.path}:{self.name}" if self.name else \
            f"docker-archive:{self.path}"

    def carried_name(self) -> str | None:
        """The name given after the path, else the one image's name in the archive
        (``RepoTags`` of a one-image manifest.json)."""
        if self.name and not self.name.startswith("@"):
            return ImageName.parse(self.name).full
        try:
            entries = docker_manifest(TarBlobs(self.path)) if os.path.isfile(self.path) else None
        except (OciforgeError, OSError):
            return None
        if entries is None or len(entries) != 1:
            return None
        tags = entries[0].get("RepoTags")
        return tags[0] if isinstance(tags, list) and len(tags) == 1 and isinstance(
            tags[0], str) else None

    def image_name(self) -> ImageName:
        if self.name and not self.name.startswith("@"):
            return ImageName.parse(self.name)
        return ImageName.from_path(self.path)

    def check_destination(self) -> None:
        if self.name and self.name.startswith("@"):
            raise InvalidInputError(f"{self}: @N selects an image to read; name one to write")
        if self.bare and has_file_suffix(self.path) and not self.path.lower().endswith(
                ARCHIVE_SUFFIXES):
            raise InvalidInputError(
                f"{self.path!r} is not an archive name ociforge writes (.tar, .tar.gz, .tgz): "
                f"write oci:{self.path} for an OCI layout folder, or name the archive with one "
                "of those endings")
        self.image_name()
        _check_archive_destination(self.path)

    def with_default_name(self, name: str | None) -> DockerArchiveLocation:
        if self.name or not name:
            return self
        return DockerArchiveLocation(self.path, name, self.bare)

    def read(self, options: Options) -> Artifact:
        return read_archive(self.path, self.name, docker=True)

    def check_artifact(self, artifact: Artifact) -> None:
        """What docker load can take: one image with gzip or uncompressed layers."""
        self._loadable(artifact)

    def check_compression(self, compression: str) -> None:
        if compression == "zstd":
            raise InvalidInputError(f"{self}: docker load cannot read zstd layers; use "
                                    "--compression gzip or write oci-archive:")

    def _loadable(self, artifact: Artifact) -> Image:
        if isinstance(artifact, Index):
            releases = same_platform_images(artifact)
            if releases is not None:
                listed = ", ".join(
                    f"{platform.os_version or 'no os.version'}"
                    + (f" +{','.join(platform.os_features)}" if platform.os_features else "")
                    + f" ({image.digest})" for platform, image in releases)
                raise InvalidInputError(
                    f"{self} holds one image; index {artifact.digest.short} has "
                    f"{len(releases)} for {releases[0][0]} that differ in os.version or "
                    f"os.features: {listed}; copy one by its digest (NAME@sha256:...) from "
                    "a registry, or write the index to oci: or oci-archive:")
            raise InvalidInputError(
                f"{self} holds single-platform images; pick one with --platform "
                "(or write an index to oci: or oci-archive:)"
            )
        for layer in artifact.layers:
            if mt.compression_of(layer.media_type) == "zstd":
                raise InvalidInputError(
                    f"{self}: docker load cannot read zstd layers ({layer.digest.short}); "
                    "use --compression gzip or write oci-archive:"
                )
        return artifact

    def write(self, artifact: Artifact, options: Options) -> WriteResult:
        self.check_destination()
        artifact = self._loadable(artifact)
        name = self.image_name()
        notes = {CONTAINERD_NAME: name.full, REF_NAME: name.tag}
        docker_manifest = [{
            "Config": _blob_name(artifact.config_descriptor.digest),
            "RepoTags": [name.repo_tag],
            "Layers": [_blob_name(layer.digest) for layer in artifact.layers],
        }]
        entries = [
            *_layout_entries(artifact, notes),
            _bytes_entry("manifest.json", canonical(docker_manifest)),
            *_blob_entries(artifact),
        ]
        diff_ids = artifact.diff_ids
        if diff_ids:
            top = Digest.parse(diff_ids[-1]).hex
            entries.append(_bytes_entry(
                "repositories", canonical({name.familiar: {name.tag: top}})))
        bare = self.path.endswith(ARCHIVE_SUFFIXES)  # parse_location reads it bare
        write_tar(self.path, entries, options, str(self))
        return WriteResult(str(artifact.digest),
                           self.path if bare else f"docker-archive:{self.path}",
                           artifact.media_type, name.repo_tag)
