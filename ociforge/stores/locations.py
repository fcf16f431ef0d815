"""Locations: where images are read from and written to, named as skopeo names them.

``oci:DIR[:TAG]``, ``oci-archive:FILE[:TAG]``, ``docker-archive:FILE[:NAME:TAG]``,
``scratch``, ``docker://REF`` or a bare registry reference (Docker Hub when it
names no host), and a bare path such as ``app.tar`` (a docker-archive).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from ..errors import InvalidInputError, InvalidPlatformError
from ..model.image import Image
from ..model.index import Artifact, Index
from ..model.platform import Platform
from ..options import Options


@dataclass(frozen=True)
class WriteResult:
    """What a sink reports: the digest written and where, as a location ociforge reads back.

    ``name`` is the image name a docker-archive carries (``RepoTags``), if any.
    """

    digest: str
    location: str
    media_type: str
    name: str | None = None


class Location(Protocol):
    def read(self, options: Options) -> Artifact: ...

    def write(self, artifact: Artifact, options: Options) -> WriteResult: ...

    def __str__(self) -> str: ...


@dataclass(frozen=True)
class Scratch:
    """The empty base: no layers, nothing to read from disk."""

    def read(self, options: Options) -> Artifact:
        from ..model.mutate import scratch

        return scratch(options.wanted_platform())

    def write(self, artifact: Artifact, options: Options) -> WriteResult:
        raise InvalidInputError("'scratch' can only be a source, not a destination")

    def __str__(self) -> str:
        return "scratch"


_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")


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


def parse_location(text: str) -> Location:
    """Parse a location string; raises InvalidInputError naming what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("location is empty")
    text = text.strip()
    if text == "scratch":
        return Scratch()
    scheme, sep, rest = text.partition(":")
    if sep and rest.startswith("//") and scheme != "docker":
        raise InvalidInputError(f"unknown location scheme {scheme + '://'!r} in {text!r}")
    if sep and scheme == "oci":
        from .layout import LayoutLocation

        path, tag = _split_path_tag(rest, scheme)
        return LayoutLocation(path, tag)
    if sep and scheme == "oci-archive":
        from .archive import OciArchiveLocation

        path, tag = _split_path_tag(rest, scheme)
        return OciArchiveLocation(path, tag)
    if sep and scheme == "docker-archive":
        from .archive import DockerArchiveLocation

        if not rest:
            raise InvalidInputError("location 'docker-archive:' needs a path")
        path, colon, name = rest.partition(":")
        if colon and not name:
            raise InvalidInputError(f"location 'docker-archive:{rest}' has an empty name "
                                    "after ':' (drop the ':' or name the image)")
        return DockerArchiveLocation(path, name or None)
    if sep and scheme == "docker" and rest.startswith("//"):
        from .registry import RegistryLocation

        return RegistryLocation.parse(rest[2:])
    if sep and scheme in ("dir", "containers-storage", "docker-daemon", "ostree", "sif"):
        raise InvalidInputError(f"location scheme {scheme + ':'!r} is not supported by ociforge")
    if _looks_like_path(text):
        return _path_location(text)
    from .registry import RegistryLocation

    return RegistryLocation.parse(text)


def _looks_like_path(text: str) -> bool:
    if text.startswith(("/", "./", "../", "~")) or text in (".", ".."):
        return True
    if text.endswith(_ARCHIVE_SUFFIXES):
        return True
    return os.path.exists(text) and ("/" not in text or os.path.sep in text)


def _path_location(text: str) -> Location:
    """A bare path: a layout directory if it is one, else a docker-archive file."""
    path = os.path.expanduser(text)
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "oci-layout")):
            from .layout import LayoutLocation

            return LayoutLocation(path, None)
        raise InvalidInputError(
            f"{text!r} is a directory; name an image layout as oci:{text} or give a .tar file"
        )
    from .archive import DockerArchiveLocation

    return DockerArchiveLocation(path, None)


def resolve_platform(artifact: Artifact, options: Options) -> Artifact:
    """Pick one image out of an index for the wanted platform (unless all are kept).

    A single image is taken as it is, unless the user explicitly asked for another
    platform (``--platform``): then it is refused naming both, never silently used.
    """
    if options.all_platforms:
        return artifact
    if isinstance(artifact, Image):
        have = artifact.platform
        if options.platform is not None and have is not None and not have.matches(
                options.platform):
            raise InvalidPlatformError(
                f"image {artifact.digest.short} is {have}, not {options.platform} "
                "(asked for with --platform)"
            )
        return artifact
    wanted = options.wanted_platform()
    chosen = select_image(artifact, wanted)
    if chosen is None:
        available = ", ".join(str(p) for p in artifact.platforms()) or "none"
        raise InvalidPlatformError(
            f"no image for platform {wanted} in index {artifact.digest.short}; "
            f"available: {available}"
        )
    return chosen


def select_image(index: Index, wanted: Platform) -> Image | None:
    image = index.select(wanted)
    if image is None:
        for _, child in index.children:
            if isinstance(child, Index):
                image = select_image(child, wanted)
                if image is not None:
                    return image
    return image
