"""Locations: where images are read from and written to, named as skopeo names them.

``oci:DIR[:TAG]``, ``oci-archive:FILE[:TAG]``, ``docker-archive:FILE[:NAME:TAG]``,
``scratch``, ``docker://REF`` or a registry reference that says it is one (a
host, a ``:TAG`` or an ``@DIGEST``; Docker Hub when it names no host), and a
bare path such as ``app.tar`` (a docker-archive).  See parse_location for the
rule that keeps a typo from publishing anything.
"""

from __future__ import annotations

import difflib
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from ..errors import InvalidInputError, InvalidPlatformError
from ..model.digest import Digest
from ..model.image import Image
from ..model.index import Artifact
from ..model.reference import Reference
from ..model.selection import select_children, select_image, select_images
from ..options import Options

if TYPE_CHECKING:
    from .store import ArtifactStore


@dataclass(frozen=True)
class WriteResult:
    """What a sink reports: the digest written and where, as a location ociforge reads back.

    ``name`` is the image name a docker-archive carries (``RepoTags``), if any.
    """

    digest: str
    location: str
    media_type: str
    name: str | None = None


@dataclass(frozen=True)
class TagRemoval:
    """What removing a tag did: the tags gone, the manifest they named, what went with it.

    ``attachments``: signature/referrer tags (or manifest digests) removed because the
    image they belong to is gone.  ``manifest_deleted``: the manifest itself is gone
    (a registry DELETE by digest; in a layout, nothing there reaches it any more).
    ``via``: ``layout``, ``registry`` or ``docker-hub-api``.
    """

    location: str
    digest: str
    tags: tuple[str, ...]
    attachments: tuple[str, ...] = ()
    manifest_deleted: bool = False
    blobs_removed: int = 0
    bytes_freed: int = 0
    via: str = "registry"


def resolve_platform(artifact: Artifact, options: Options, *,
                     every_match: bool = False) -> Artifact:
    """Pick one image out of an index for the wanted platform (unless all are kept), or
    with several platforms (``Options.platforms``) an index of exactly those.

    One platform the index lists several images for (Windows releases differing in
    os.version): the first of them, or with ``every_match`` (copy) an index of all
    of them.  A single image is taken as it is, unless the user explicitly asked for
    another platform (``--platform``): then it is refused naming both, never silently
    used.
    """
    if options.all_platforms:
        return artifact
    if options.platforms:
        if isinstance(artifact, Image):
            one = str(artifact.platform) if artifact.platform else "of one platform"
            raise InvalidPlatformError(
                f"image {artifact.digest.short} is a single image ({one}); --platform asks "
                f"for {len(options.platforms)}: "
                f"{', '.join(str(p) for p in options.platforms)}")
        return select_images(artifact, options.platforms)
    if isinstance(artifact, Image):
        have = artifact.platform
        if options.platform is not None and have is not None and not have.matches(
                options.platform):
            raise InvalidPlatformError(
                f"image {artifact.digest.short} is {have}, not {options.platform} "
                "(asked for with --platform)"
            )
        return artifact
    if every_match:
        return select_children(artifact, options.wanted_platform())
    return select_image(artifact, options.wanted_platform())


LocationKind = Literal["scratch", "oci", "oci-archive", "docker-archive", "registry"]


class Location(ABC):
    """Where an image is read from or written to: scratch, an OCI layout, an archive,
    a registry reference.  What every caller needs, so that nobody probes a location
    for attributes or re-parses its string.

    ``path`` is the local file or folder (None for a registry and scratch);
    ``reference`` the registry reference (None for everything else).
    """

    kind: ClassVar[LocationKind]
    supports_attachments: ClassVar[bool] = False  # signatures and referrers can live here
    path: str | None = None
    reference: Reference | None = None

    @abstractmethod
    def read(self, options: Options) -> Artifact:
        """The artifact here (an index stays an index; see resolve_platform)."""

    @abstractmethod
    def write(self, artifact: Artifact, options: Options) -> WriteResult:
        """Write ``artifact`` here (checks check_destination and check_artifact first)."""

    @abstractmethod
    def __str__(self) -> str:
        """The location as a string parse_location reads back."""

    def read_documents(self, options: Options) -> Artifact:
        """The artifact from its documents alone, layer blobs not looked at (so a
        damaged image can still be shown); the same as read() where layers are lazy."""
        return self.read(options)

    def carried_name(self) -> str | None:
        """``NAME:TAG`` of the image here, found offline (a registry reference's
        repository and tag, a layout entry's ``io.containerd.image.name``): what a
        copy names an archive it writes.  None when it carries no name."""
        return None

    def named_digest(self) -> Digest | None:
        """The digest this location names, found offline without reading the artifact
        (a layout's index.json entry); None where that takes a network request."""
        return None

    def check_source(self) -> None:
        """Refuse (InvalidInputError, exit 2) a source that cannot be there at all."""
        if self.path is not None and not os.path.lexists(self.path):
            raise InvalidInputError(f"source {str(self)!r}: {self.path!r} does not exist")

    def check_destination(self) -> None:
        """Refuse (InvalidInputError, exit 2) a destination that cannot be written.

        Offline and without lasting effects: nothing is created or changed (at most
        a probe file is created and removed at once where a folder's writability
        must be tried).  A registry's push access is not checked here.
        """
        raise InvalidInputError(f"{str(self)!r} can only be a source, not a destination")

    def check_artifact(self, artifact: Artifact) -> None:
        """Refuse (exit 2) an artifact this destination cannot hold (before any write)."""
        return None

    def check_compression(self, compression: str) -> None:
        """Refuse (exit 2) layers compressed so that readers of this destination fail."""
        return None

    def with_default_name(self, name: str | None) -> Location:
        """This location, named ``name`` (``--tag NAME:TAG``) when it names no image or tag
        of its own (archives and layouts); itself otherwise."""
        return self

    def artifact_store(self, options: Options | None = None) -> ArtifactStore:
        """Where signatures and attached artifacts for the image here are kept."""
        raise InvalidInputError(
            f"{str(self)!r}: signatures and referrers live in an OCI layout (oci:DIR) or a "
            "registry, not in a tar archive"
        )

    def list_tags(self, options: Options) -> list[str]:
        """Every tag here (attachment tags included), as the store lists them."""
        raise InvalidInputError(f"{str(self)!r}: tags are listed for a registry repository "
                                "or an OCI layout (oci:DIR)")

    def remove_tag(self, options: Options, *, all_tags: bool = False) -> TagRemoval:
        """Remove the tag this location names (see TagRemoval for what goes with it)."""
        raise InvalidInputError(f"{str(self)!r}: tags are removed from a registry repository "
                                "or an OCI layout (oci:DIR:TAG)")


class Scratch(Location):
    """The empty base: no layers, nothing to read from disk."""

    kind = "scratch"

    def read(self, options: Options) -> Artifact:
        from ..model.mutate import scratch

        return scratch(options.wanted_platform())

    def write(self, artifact: Artifact, options: Options) -> WriteResult:
        raise InvalidInputError("'scratch' can only be a source, not a destination")

    def check_destination(self) -> None:
        raise InvalidInputError("'scratch' can only be a source, not a destination")

    def __str__(self) -> str:
        return "scratch"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scratch)

    def __hash__(self) -> int:
        return hash("scratch")


def parse_source(text: str, *, base_dir: str | os.PathLike[str] | None = None) -> Location:
    """A source location, checked (a local path must exist): bad input exits 2."""
    location = parse_location(text, role="source", base_dir=base_dir)
    location.check_source()
    return location


def parse_destination(text: str, default_name: str | None = None) -> Location:
    """A destination location named ``default_name`` when it names nothing itself, and
    checked with check_destination: bad input exits 2 before anything is written."""
    location = parse_location(text, role="destination").with_default_name(default_name)
    location.check_destination()
    return location


# Bare paths written as docker-archives: what `-o NAME.tar` has always meant.
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
# Names that are files, never registry references (generous on purpose: a typo must not
# publish).  Compared with the last path component, case-insensitively.
FILE_SUFFIXES = (
    *ARCHIVE_SUFFIXES, ".tar.zst", ".tar.zstd", ".tzst", ".tar.xz", ".txz", ".tar.bz2",
    ".tbz", ".tbz2", ".tar.lz4", ".tar.lz", ".tar.lzma", ".tar.sz", ".zip", ".oci", ".json",
    ".gz", ".zst", ".zstd", ".xz", ".bz2", ".lz4", ".lzma", ".7z", ".rar", ".img", ".iso",
    ".raw", ".sif", ".squashfs", ".sqfs", ".docker", ".layout", ".yaml", ".yml", ".toml",
    ".txt", ".bin", ".out", ".dat",
)
SCHEMES = ("oci", "oci-archive", "docker-archive", "docker")
_UNSUPPORTED_SCHEMES = ("dir", "containers-storage", "docker-daemon", "ostree", "sif")
_KNOWN = "oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], docker://REF"
_PORT_THEN_PATH = re.compile(r"^[0-9]+/")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+._-]*$")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def has_file_suffix(text: str) -> bool:
    """Whether the last component of ``text`` ends like a file name (``.tar``, ``.zip`` ...)."""
    last = text.rstrip("/").rsplit("/", 1)[-1].lower()
    return any(last.endswith(suffix) and len(last) > len(suffix) for suffix in FILE_SUFFIXES)


def tagged_file_name(text: str) -> str | None:
    """The file name in ``text`` when a ``:TAG`` (no ``/``) or ``@DIGEST`` follows one
    (``x.tar`` in ``x.tar:1``, ``me/app.json`` in ``me/app.json@sha256:...``); else None."""
    name = text.rpartition("@")[0] if "@" in text else text
    head, colon, tag = name.rpartition(":")
    if colon and head and tag and "/" not in tag:
        name = head
    return name if name != text and has_file_suffix(name) else None


def is_explicit_path(text: str) -> bool:
    """``/...``, ``./...``, ``../...``, ``~...``, ``.`` or ``..``: a path as written."""
    return text.startswith(("/", "./", "../", "~")) or text in (".", "..")


def _looks_like_transport(scheme: str) -> bool:
    name = scheme.lower()
    if name == "docker":
        return False  # docker:24 is the Docker Hub image `docker`
    if difflib.get_close_matches(name, [*SCHEMES, *_UNSUPPORTED_SCHEMES], 1, 0.75):
        return True
    if len(name) <= 4 and difflib.get_close_matches(name, ["oci"], 1, 0.6):
        return True  # ocl:, oc:, 0ci:
    return name.startswith(("oci-", "oci_", "docker-", "docker_")) or "layout" in name


def _unknown_scheme(scheme: str, text: str) -> InvalidInputError:
    name = scheme.lower()
    if "layout" in name:
        guess: list[str] = ["oci"]
    else:
        guess = difflib.get_close_matches(name, [*SCHEMES, *_UNSUPPORTED_SCHEMES], 1, 0.5)
    hint = ""
    if guess and guess[0] in _UNSUPPORTED_SCHEMES:
        hint = f" ({guess[0]}: is a skopeo transport ociforge does not support)"
    elif guess:
        hint = f" (did you mean {guess[0] + ('://' if guess[0] == 'docker' else ':')!r}?)"
    return InvalidInputError(
        f"unknown location scheme {scheme + ':'!r} in {text!r}{hint}; known: {_KNOWN} "
        "(a file name with ':' is written ./NAME)"
    )


def _ambiguous(text: str, role: str | None) -> InvalidInputError:
    stem = text.rstrip("/")
    action = {"destination": "to push", "source": "to pull"}.get(role or "", "for a registry")
    return InvalidInputError(
        f"{text!r} could be a folder or a Docker Hub repository: write oci:{stem} for a "
        f"layout, ./{stem}.tar for an archive, or docker://{stem} (or {stem}:latest) {action}"
    )


def _tagged_file(text: str, name: str, role: str | None) -> InvalidInputError:
    tail = text[len(name):]
    action = {"destination": "to push", "source": "to pull"}.get(role or "", "for a registry")
    where = "a registry image" if _registry_host_first(name) else "a Docker Hub image"
    if "@" in tail:
        where += ", and a digest names no file"
        files = f"{name} (or oci-archive:{name}) for the file"
    else:
        tag = tail[1:]
        layout = f"oci:{name}:{tag} for a layout, " if not name.lower().endswith(
            ARCHIVE_SUFFIXES) else ""
        files = (f"{layout}oci-archive:{name}:{tag} for an OCI archive, "
                 f"docker-archive:{name}:NAME:{tag} for a docker archive")
    return InvalidInputError(f"{text!r} could be the file {name} or {where}: write {files}, "
                             f"or docker://{text} {action}")


def _resolve(path: str, base_dir: Path | None) -> str:
    """``~`` expanded; a relative path taken relative to ``base_dir`` when one is given."""
    expanded = os.path.expanduser(path)
    if base_dir is not None and not os.path.isabs(expanded):
        return str(base_dir / expanded)
    return expanded


def _split_path_tag(rest: str, scheme: str) -> tuple[str, str | None]:
    if not rest:
        raise InvalidInputError(f"location '{scheme}:' needs a path")
    path, sep, tag = rest.rpartition(":")
    if sep and path and not tag:
        raise InvalidInputError(f"location '{scheme}:{rest}' has an empty tag after ':' "
                                "(drop the ':' or name a tag)")
    if sep and path and "/" not in tag:
        return path, tag
    return rest, None


def parse_location(text: str, *, role: str | None = None,
                   base_dir: str | os.PathLike[str] | None = None) -> Location:
    """Parse a location string; raises InvalidInputError naming what is wrong.

    A string is a registry reference only when written ``docker://REF``, when its
    first component is a registry host (``.``, ``:`` or ``localhost``), or when it
    carries ``:TAG`` or ``@DIGEST``.  A file name (``.tar``, ``.zip``, ``.oci`` ...),
    an existing path, or anything starting with ``/``, ``./``, ``../`` or ``~`` is
    never one; a bare ``a/b`` that fits neither reading is refused, so that nothing
    goes to a registry by accident.  A file name followed by ``:TAG`` or ``@DIGEST``
    (``x.tar:1``) is refused naming both readings, unless a registry host that is not
    a local path comes first (``localhost:5000/app.tar:1`` is that registry).
    ``role`` (``"source"``/``"destination"``) only words the refusals.  ``base_dir``:
    relative paths are relative to it (an app's ``base``), not to the working directory.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("location is empty")
    text = text.strip()
    if text == "scratch":
        return Scratch()
    root = Path(base_dir) if base_dir is not None else None
    scheme, sep, rest = text.partition(":")
    if sep and _SCHEME_RE.match(scheme):
        if scheme in ("oci", "oci-archive"):
            from .archive import OciArchiveLocation
            from .layoutlocation import LayoutLocation

            path, tag = _split_path_tag(rest, scheme)
            kind = LayoutLocation if scheme == "oci" else OciArchiveLocation
            return kind(_resolve(path, root), tag)
        if scheme == "docker-archive":
            from .archive import DockerArchiveLocation

            if not rest:
                raise InvalidInputError("location 'docker-archive:' needs a path")
            path, colon, name = rest.partition(":")
            if colon and not name:
                raise InvalidInputError(f"location 'docker-archive:{rest}' has an empty name "
                                        "after ':' (drop the ':' or name the image)")
            return DockerArchiveLocation(_resolve(path, root), name or None)
        if scheme == "docker" and rest.startswith("//"):
            from .registry import RegistryLocation

            return RegistryLocation.parse(rest[2:])
        if rest.startswith("//"):
            raise _unknown_scheme(scheme, text)
        if scheme in _UNSUPPORTED_SCHEMES:
            raise InvalidInputError(
                f"location scheme {scheme + ':'!r} is not supported by ociforge; known: {_KNOWN}")
        if not _PORT_THEN_PATH.match(rest) and not os.path.lexists(_resolve(text, root)) and (
                _looks_like_transport(scheme) and not has_file_suffix(scheme)):
            raise _unknown_scheme(scheme, text)
    if is_explicit_path(text) or os.path.lexists(_resolve(text, root)):
        return _path_location(text, _resolve(text, root))
    tagged = tagged_file_name(text)
    if tagged is not None and not _host_named(tagged, root):
        raise _tagged_file(text, tagged, role)
    if sep and _SCHEME_RE.match(scheme) and not _PORT_THEN_PATH.match(rest) and (
            "/" in rest or not _TAG_RE.fullmatch(rest) or has_file_suffix(text)):
        raise _unknown_scheme(scheme, text)
    if has_file_suffix(text):
        return _path_location(text, _resolve(text, root))
    if _is_reference(text):
        from .registry import RegistryLocation

        return RegistryLocation.parse(text)
    from ..model.reference import Reference

    Reference.parse(text)  # junk gets the reference grammar's own message
    raise _ambiguous(text, role)


def _is_reference(text: str) -> bool:
    """A registry host first, or a ``:TAG`` or ``@DIGEST``: what makes a reference explicit."""
    if "@" in text or _registry_host_first(text):
        return True
    slash = "/" in text
    name, colon, tag = text.rsplit("/", 1)[-1].partition(":")
    if not colon:
        return False
    if not slash and (name == "localhost" or ("." in name and tag.isdigit())):
        raise InvalidInputError(
            f"{text!r} names a registry but no repository: write {text}/NAME[:TAG]")
    return True


def _registry_host_first(text: str) -> bool:
    """Whether the first of several components is a registry host (``.``, ``:``, ``localhost``)."""
    first, slash, _ = text.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


def _host_named(text: str, root: Path | None) -> bool:
    """A registry host first that is not also a local path: the text names its registry."""
    return _registry_host_first(text) and not os.path.lexists(
        _resolve(text.partition("/")[0], root))


def _path_location(text: str, path: str) -> Location:
    """A bare path: a layout directory if it is one, else a docker-archive file."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "oci-layout")):
            from .layoutlocation import LayoutLocation

            return LayoutLocation(path, None)
        raise InvalidInputError(
            f"{text!r} is a directory; name an image layout as oci:{text} or give a .tar file"
        )
    from .archive import DockerArchiveLocation

    return DockerArchiveLocation(path, None, bare=True)
