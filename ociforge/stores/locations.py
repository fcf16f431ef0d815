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
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import InvalidInputError
from ..model.index import Artifact
from ..model.selection import resolve_platform as resolve_platform
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
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def has_file_suffix(text: str) -> bool:
    """Whether the last component of ``text`` ends like a file name (``.tar``, ``.zip`` ...)."""
    last = text.rstrip("/").rsplit("/", 1)[-1].lower()
    return any(last.endswith(suffix) and len(last) > len(suffix) for suffix in FILE_SUFFIXES)


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
    goes to a registry by accident.  ``role`` (``"source"``/``"destination"``) only
    words that refusal.  ``base_dir``: relative paths are relative to it (an app's
    ``base``), not to the working directory.
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
            from .layout import LayoutLocation

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
                _looks_like_transport(scheme) or "/" in rest or not _TAG_RE.match(rest)
                or has_file_suffix(text)):
            raise _unknown_scheme(scheme, text)
    if is_explicit_path(text) or has_file_suffix(text) or os.path.lexists(_resolve(text, root)):
        return _path_location(text, _resolve(text, root))
    if _is_reference(text):
        from .registry import RegistryLocation

        return RegistryLocation.parse(text)
    from ..model.reference import Reference

    Reference.parse(text)  # junk gets the reference grammar's own message
    raise _ambiguous(text, role)


def _is_reference(text: str) -> bool:
    """A registry host first, or a ``:TAG`` or ``@DIGEST``: what makes a reference explicit."""
    if "@" in text:
        return True
    first, slash, _ = text.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return True
    name, colon, tag = text.rsplit("/", 1)[-1].partition(":")
    if not colon:
        return False
    if not slash and (name == "localhost" or ("." in name and tag.isdigit())):
        raise InvalidInputError(
            f"{text!r} names a registry but no repository: write {text}/NAME[:TAG]")
    return True


def _path_location(text: str, path: str) -> Location:
    """A bare path: a layout directory if it is one, else a docker-archive file."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "oci-layout")):
            from .layout import LayoutLocation

            return LayoutLocation(path, None)
        raise InvalidInputError(
            f"{text!r} is a directory; name an image layout as oci:{text} or give a .tar file"
        )
    from .archive import DockerArchiveLocation

    return DockerArchiveLocation(path, None, bare=True)
