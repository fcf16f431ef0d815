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
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import posixpath
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from . import mediatypes as mt
from .descriptor import Descriptor
from .digest import CHUNK, Digest, HashingWriter, VerifyingReader, read_all_verified
from .errors import (
    HostileInputError,
    InvalidInputError,
    InvalidReferenceError,
    NotFoundError,
    SizeMismatchError,
    ValidationError,
)
from .fsutil import check_writable_destination, output_file
from .image import Image
from .index import Artifact, Index
from .jsonutil import MAX_DOCUMENT, canonical, parse_object
from .layer import Layer
from .layout import (
    CONTAINERD_NAME,
    LAYOUT_VERSION,
    REF_NAME,
    check_ref_name,
    fresh_blob,
    load_artifact,
)
from .layout import select_descriptor as _select
from .locations import WriteResult
from .options import Options
from .progress import CountingReader, Progress

MAX_MEMBERS = 200_000
MAX_NAME = 4096
# A compressed archive may expand at most this much (zip-bomb guard); real image
# archives hold compressed layers and expand by a few percent.
MAX_EXPANSION = 200
EXPANSION_SLACK = 64 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


# -- reading: random access to the members of a tar ---------------------------


def clean_member_name(name: str) -> str:
    """A tar entry name made relative; HostileInputError if it escapes the root."""
    if "\x00" in name or len(name) > MAX_NAME:
        raise HostileInputError(f"archive entry name {name[:80]!r} is malformed")
    if name.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", name):
        raise HostileInputError(f"archive entry {name[:200]!r} has an absolute path")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise HostileInputError(f"archive entry {name[:200]!r} climbs out of the archive root")
    return "/".join(parts)


class _Slice:
    """A read-only stream over ``size`` bytes at ``offset`` of a shared file (pread)."""

    def __init__(self, owner: TarBlobs, offset: int, size: int):
        self._owner = owner
        self._offset = offset
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        left = self._size - self._pos
        if left <= 0:
            return b""
        want = left if n is None or n < 0 else min(n, left)
        data = os.pread(self._owner.fileno(), want, self._offset + self._pos)
        if not data:
            raise SizeMismatchError(f"archive {self._owner.where} is truncated")
        self._pos += len(data)
        return data

    def close(self) -> None:
        pass

    def __enter__(self) -> _Slice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Member:
    offset: int
    size: int


class TarBlobs:
    """The regular files of a tar, by cleaned name, readable in place.

    The archive stays open (by descriptor) for as long as the layers read from
    it live, so writing a new file over the same path cannot pull the bytes
    out from under them.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.where = str(path)
        self.members: dict[str, _Member] = {}
        try:
            handle: IO[bytes] = open(path, "rb")  # noqa: SIM115 - kept open for lazy layers
        except FileNotFoundError:
            raise InvalidInputError(f"archive {self.where!r} does not exist") from None
        except IsADirectoryError:
            raise InvalidInputError(f"{self.where!r} is a directory, not an archive") from None
        self._file = self._decompressed(handle)
        self._scan()

    def fileno(self) -> int:
        return self._file.fileno()

    def _decompressed(self, handle: IO[bytes]) -> IO[bytes]:
        magic = handle.read(4)
        handle.seek(0)
        if not (magic.startswith(_GZIP_MAGIC) or magic == _ZSTD_MAGIC):
            return handle
        limit = os.fstat(handle.fileno()).st_size * MAX_EXPANSION + EXPANSION_SLACK
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the layers
        try:
            with handle:
                if magic.startswith(_GZIP_MAGIC):
                    stream: Any = gzip.GzipFile(fileobj=handle, mode="rb")
                else:
                    import zstandard

                    stream = zstandard.ZstdDecompressor().stream_reader(handle)
                total = 0
                while True:
                    chunk = stream.read(CHUNK)
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > limit:
                        raise HostileInputError(
                            f"archive {self.where!r} expands past {limit} bytes; refusing it"
                        )
                    spool.write(chunk)
        except HostileInputError:
            spool.close()
            raise
        except Exception as exc:  # gzip/zstd decoders raise their own types on bad data
            spool.close()
            raise InvalidInputError(f"archive {self.where!r} is not a readable compressed tar: "
                                    f"{exc}") from None
        except BaseException:
            spool.close()
            raise
        spool.flush()
        spool.seek(0)
        return spool

    def _scan(self) -> None:
        links: dict[str, str] = {}
        try:
            with tarfile.open(fileobj=self._file, mode="r:") as tar:
                self._index(iter(tar), links)
        except (tarfile.TarError, ValueError, UnicodeError, OverflowError, EOFError) as exc:
            raise InvalidInputError(
                f"{self.where!r} is not a readable tar archive: {exc}") from None
        # Classic docker save links duplicate layers: <id>/layer.tar -> ../<other>/layer.tar
        for name, target in links.items():
            if name not in self.members and target in self.members:
                self.members[name] = self.members[target]

    def _index(self, infos: Iterator[tarfile.TarInfo], links: dict[str, str]) -> None:
        end = os.fstat(self._file.fileno()).st_size
        for count, info in enumerate(infos, 1):
            if count > MAX_MEMBERS:
                raise HostileInputError(f"archive {self.where!r} has over {MAX_MEMBERS} entries")
            name = clean_member_name(info.name)
            if not name or info.isdir():
                continue
            if info.issparse():
                raise InvalidInputError(f"archive entry {name!r} is a sparse file")
            if info.isreg():
                if info.offset_data + info.size > end:
                    raise HostileInputError(
                        f"archive entry {name!r} claims {info.size} bytes, past the end of "
                        f"{self.where!r}"
                    )
                self.members[name] = _Member(info.offset_data, info.size)
                links.pop(name, None)
            elif info.islnk():
                target = clean_member_name(info.linkname)
                if target not in self.members:
                    raise HostileInputError(
                        f"archive hardlink {name!r} points to {info.linkname!r}, "
                        "which is not an earlier entry"
                    )
                self.members[name] = self.members[target]
            elif info.issym() and not info.linkname.startswith("/"):
                joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), info.linkname))
                if not joined.startswith("../") and joined != "..":
                    links[name] = joined  # an alias only; nothing is followed on disk

    def has(self, name: str) -> bool:
        return name in self.members

    def _member(self, name: str) -> _Member:
        cleaned = clean_member_name(name)
        member = self.members.get(cleaned)
        if member is None:
            raise NotFoundError(f"archive {self.where!r} has no entry {name!r}")
        return member

    def size(self, name: str) -> int:
        return self._member(name).size

    def open(self, name: str) -> _Slice:
        member = self._member(name)
        return _Slice(self, member.offset, member.size)

    def read_small(self, name: str, what: str) -> bytes:
        member = self._member(name)
        if member.size > MAX_DOCUMENT:
            raise InvalidInputError(f"{what} in {self.where!r} is over {MAX_DOCUMENT} bytes")
        return self.open(name).read()

    def blob_name(self, digest: Digest) -> str:
        return f"blobs/{digest.algorithm}/{digest.hex}"

    def layer(self, desc: Descriptor) -> Layer:
        name = self.blob_name(desc.digest)
        member = self._member(name)
        if member.size != desc.size:
            raise SizeMismatchError(
                f"blob {desc.digest} in {self.where!r} has {member.size} bytes, "
                f"expected {desc.size}"
            )
        return Layer(desc, None, self.opener(member))

    def opener(self, member: _Member) -> Callable[[], IO[bytes]]:
        return lambda: cast(IO[bytes], _Slice(self, member.offset, member.size))

    def read_document(self, desc: Descriptor, what: str) -> bytes:
        with self.open(self.blob_name(desc.digest)) as raw:
            return read_all_verified(raw, desc.digest, desc.size, MAX_DOCUMENT, what)  # type: ignore[arg-type]

    def hash_member(self, name: str) -> Digest:
        writer = HashingWriter()
        with self.open(name) as raw:
            while True:
                chunk = raw.read(CHUNK)
                if not chunk:
                    break
                writer.write(chunk)
        return writer.digest

    def sniff(self, name: str) -> bytes:
        with self.open(name) as raw:
            return raw.read(4)


# -- names --------------------------------------------------------------------


@dataclass(frozen=True)
class ImageName:
    """A docker-archive image name: fully qualified, familiar form, and tag."""

    full: str        # docker.io/library/app:latest
    familiar: str    # app
    tag: str         # latest

    @property
    def repo_tag(self) -> str:
        return f"{self.familiar}:{self.tag}"

    @classmethod
    def parse(cls, text: str) -> ImageName:
        from .reference import Reference

        ref = Reference.parse(text)
        if ref.digest is not None or ref.tag is None:
            raise InvalidReferenceError(
                f"docker-archive name {text!r} must be NAME[:TAG], without a digest"
            )
        familiar = ref.name
        if ref.registry == "docker.io":
            familiar = ref.repository.removeprefix("library/")
        return cls(str(ref), familiar, ref.tag)

    @classmethod
    def from_path(cls, path: str) -> ImageName:
        """``out/My App.tar.gz`` -> ``my-app:latest``: a usable default name."""
        base = os.path.basename(path)
        for suffix in (".tar.gz", ".tgz", ".tar.zst", ".tar", ".gz"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
                break
        name = re.sub(r"[^a-z0-9._-]+", "-", base.lower())
        name = re.sub(r"^[^a-z0-9]+|[^a-z0-9]+$", "", name)
        name = re.sub(r"[._-]{2,}", "-", name)
        return cls.parse(name or "image")


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


def _docker_manifest(blobs: TarBlobs) -> list[dict[str, Any]] | None:
    if not blobs.has("manifest.json"):
        return None
    import json

    data = blobs.read_small("manifest.json", "manifest.json")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInputError(f"manifest.json in {blobs.where!r} is not JSON: {exc}") from None
    if not isinstance(doc, list) or not all(isinstance(e, dict) for e in doc):
        raise ValidationError(f"manifest.json in {blobs.where!r} is not a list of objects")
    return doc


def _legacy_image(blobs: TarBlobs, entry: dict[str, Any]) -> Image:
    """A Docker schema2 manifest synthesised for a classic ``docker save`` entry."""
    config_name = entry.get("Config")
    layer_names = entry.get("Layers")
    if not isinstance(config_name, str) or not isinstance(layer_names, list):
        raise ValidationError(f"manifest.json in {blobs.where!r} lacks Config or Layers")
    config_bytes = blobs.read_small(config_name, "image config")
    layers = []
    oci = False
    for name in layer_names:
        if not isinstance(name, str):
            raise ValidationError(f"manifest.json in {blobs.where!r} has a non-string layer")
        magic = blobs.sniff(name)
        if magic.startswith(_GZIP_MAGIC):
            media_type = mt.DOCKER_LAYER_GZIP
        elif magic == _ZSTD_MAGIC:
            media_type, oci = mt.OCI_LAYER_ZSTD, True
        else:
            media_type = mt.DOCKER_LAYER
        desc = Descriptor(media_type, blobs.hash_member(name), blobs.size(name))
        layers.append((desc, name))
    layer_types = [(mt.to_oci(d.media_type) if oci else d.media_type) for d, _ in layers]
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST,
        "config": Descriptor(
            mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG,
            Digest.of_bytes(config_bytes), len(config_bytes),
        ).to_dict(),
        "layers": [
            Descriptor(t, d.digest, d.size).to_dict() for t, (d, _) in zip(layer_types, layers,
                                                                           strict=True)
        ],
    }
    by_digest = {d.digest: name for d, name in layers}

    def make_layer(desc: Descriptor) -> Layer:
        member = blobs._member(by_digest[desc.digest])
        return Layer(desc, None, blobs.opener(member))

    return Image.from_documents(canonical(manifest), config_bytes, make_layer, blobs.where)


def _matches_name(desc: Descriptor, name: ImageName) -> bool:
    notes = desc.annotations or {}
    if notes.get(CONTAINERD_NAME):
        return notes[CONTAINERD_NAME] == name.full
    return notes.get(REF_NAME) in (name.full, name.repo_tag)


def read_archive(path: str, selector: str | None, docker: bool) -> Artifact:
    """Read an image out of any supported archive.

    ``selector`` is a tag (oci-archive), a ``NAME[:TAG]`` or ``@N`` (docker-archive).
    The OCI layout part is preferred when present, so digests survive.
    """
    blobs = TarBlobs(path)
    where = f"archive {path!r}"
    descs = _oci_descriptors(blobs)
    entries = _docker_manifest(blobs)
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
            return load_artifact(descs[position], blobs.read_document, blobs.layer, path)
        chosen: Descriptor | None = None
        if name is not None:
            found = [d for d in descs if _matches_name(d, name)]
            if not found and entries is None:
                raise NotFoundError(f"{where} has no image named {name.repo_tag}")
            chosen = found[0] if found else None
        elif not docker or entries is None or len(descs) == 1:
            chosen = _select(descs, selector, None, where, f"oci-archive:{path}:TAG")
        if chosen is not None:
            return load_artifact(chosen, blobs.read_document, blobs.layer, path)
    assert entries is not None
    if position is not None:
        if position >= len(entries):
            raise NotFoundError(f"{where} has no image @{position}")
        return _legacy_image(blobs, entries[position])
    if name is not None:
        for entry in entries:
            tags = entry.get("RepoTags") or []
            for tag in tags if isinstance(tags, list) else []:
                with contextlib.suppress(InvalidInputError):
                    if isinstance(tag, str) and ImageName.parse(tag).full == name.full:
                        return _legacy_image(blobs, entry)
        raise NotFoundError(f"{where} has no image named {name.repo_tag}")
    if len(entries) != 1:
        tags = [t for e in entries for t in (e.get("RepoTags") or []) if isinstance(t, str)]
        raise InvalidInputError(
            f"{where} holds {len(entries)} images; name one as docker-archive:{path}:NAME:TAG "
            f"or @N (names: {', '.join(tags) or 'none'})"
        )
    return _legacy_image(blobs, entries[0])


# -- writing ------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    name: str
    size: int
    opener: Callable[[], IO[bytes]]
    digest: Digest | None = None  # verified while copying when known


def _bytes_entry(name: str, data: bytes) -> _Entry:
    return _Entry(name, len(data), lambda: io.BytesIO(data))


def _blob_entries(artifact: Artifact) -> Iterator[_Entry]:
    """Every blob an artifact reaches (duplicates included; the writer dedupes)."""
    if isinstance(artifact, Index):
        for _, child in artifact.children:
            yield from _blob_entries(child)
        data = artifact.index_bytes
    else:
        config = artifact.config_bytes
        cdesc = artifact.config_descriptor
        yield _Entry(_blob_name(cdesc.digest), len(config), lambda: io.BytesIO(config),
                     cdesc.digest)
        for layer in artifact.layers:
            # a blob this process just built was hashed while written; others are verified
            check = None if fresh_blob(layer) is not None else layer.digest
            yield _Entry(_blob_name(layer.digest), layer.size, layer.opener, check)
        data = artifact.manifest_bytes
    yield _Entry(_blob_name(artifact.digest), len(data), lambda: io.BytesIO(data), artifact.digest)


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


def write_tar(path: str, entries: list[_Entry], options: Options) -> None:
    """Write entries as one deterministic tar (gzip-compressed for .gz/.tgz), atomically."""
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
    with output_file(path) as raw, Progress(f"writing {path}", total, options.progress) as prog:
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
                    tar.addfile(_tarinfo(name, entry.size), CountingReader(stream, prog))
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


class OciArchiveLocation:
    """``oci-archive:FILE[:TAG]``: a tar of an OCI image layout."""

    def __init__(self, path: str | os.PathLike[str], tag: str | None = None):
        self.path = os.path.expanduser(str(path))
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
        index = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [artifact.descriptor(notes).to_dict()],
        }
        entries = [
            _bytes_entry("oci-layout", canonical({"imageLayoutVersion": LAYOUT_VERSION})),
            _bytes_entry("index.json", canonical(index)),
            *_blob_entries(artifact),
        ]
        write_tar(self.path, entries, options)
        return WriteResult(str(artifact.digest), str(self), artifact.media_type)


class DockerArchiveLocation:
    """``docker-archive:FILE[:NAME[:TAG]]`` and bare ``FILE.tar``: see the module doc."""

    def __init__(self, path: str | os.PathLike[str], name: str | None = None):
        self.path = os.path.expanduser(str(path))
        self.name = name

    def __str__(self) -> str:
        return f"docker-archive:{self.path}:{self.name}" if self.name else \
            f"docker-archive:{self.path}"

    def image_name(self) -> ImageName:
        if self.name and not self.name.startswith("@"):
            return ImageName.parse(self.name)
        return ImageName.from_path(self.path)

    def check_destination(self) -> None:
        if self.name and self.name.startswith("@"):
            raise InvalidInputError(f"{self}: @N selects an image to read; name one to write")
        self.image_name()
        _check_archive_destination(self.path)

    def with_default_name(self, name: str | None) -> DockerArchiveLocation:
        if self.name or not name:
            return self
        return DockerArchiveLocation(self.path, name)

    def read(self, options: Options) -> Artifact:
        return read_archive(self.path, self.name, docker=True)

    def check_artifact(self, artifact: Artifact) -> Image:
        """What docker load can take: one image with gzip or uncompressed layers."""
        if isinstance(artifact, Index):
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
        artifact = self.check_artifact(artifact)
        name = self.image_name()
        notes = {CONTAINERD_NAME: name.full, REF_NAME: name.tag}
        index = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [artifact.descriptor(notes).to_dict()],
        }
        docker_manifest = [{
            "Config": _blob_name(artifact.config_descriptor.digest),
            "RepoTags": [name.repo_tag],
            "Layers": [_blob_name(layer.digest) for layer in artifact.layers],
        }]
        entries = [
            _bytes_entry("oci-layout", canonical({"imageLayoutVersion": LAYOUT_VERSION})),
            _bytes_entry("index.json", canonical(index)),
            _bytes_entry("manifest.json", canonical(docker_manifest)),
            *_blob_entries(artifact),
        ]
        diff_ids = artifact.diff_ids
        if diff_ids:
            top = Digest.parse(diff_ids[-1]).hex
            entries.append(_bytes_entry(
                "repositories", canonical({name.familiar: {name.tag: top}})))
        write_tar(self.path, entries, options)
        bare = self.path.endswith((".tar", ".tar.gz", ".tgz"))  # parse_location reads it bare
        return WriteResult(str(artifact.digest),
                           self.path if bare else f"docker-archive:{self.path}",
                           artifact.media_type, name.repo_tag)


def as_path(location: object) -> Path | None:
    """The local file or directory a location writes to (for 'nothing written' checks)."""
    path = getattr(location, "path", None)
    return Path(path) if isinstance(path, str) else None
