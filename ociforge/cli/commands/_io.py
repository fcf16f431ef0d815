"""Helpers the image commands share: destinations checked up front, writes, results.

Every destination is parsed and checked (scheme, tag, 'is a directory where a
file is needed') before anything is read or built, so bad input exits 2 with
nothing written.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ...errors import InvalidInputError
from ...model.index import Artifact
from ...options import Options
from ...stores.locations import Location, Scratch, WriteResult, parse_location

log = logging.getLogger("ociforge")


def destination(text: str, default_name: str | None = None) -> Location:
    """A parsed, checked destination; ``default_name`` (--tag) names unnamed archives."""
    location = parse_location(text)
    if isinstance(location, Scratch):
        raise InvalidInputError("'scratch' can only be a source, not a destination")
    with_default = getattr(location, "with_default_name", None)
    if default_name and callable(with_default):
        location = with_default(default_name)
    check = getattr(location, "check_destination", None)
    if callable(check):
        check()
    return location


def check_distinct_outputs(locations: list[Location], report: str | None = None) -> None:
    """Refuse (exit 2) two outputs of one run that land on the same file.

    The later write would silently destroy the earlier one: ``-o x.tar -o
    oci-archive:x.tar``, ``-o same.tar --report same.tar``, or a file inside an
    ``oci:`` layout folder (``--report lay/index.json``).  Paths are compared
    after symlinks are resolved (and by inode for existing files); several
    ``oci:`` outputs into one layout (two tags) are fine, and so are two writes
    to a character device such as /dev/null.
    """
    from ...stores.layout import LayoutLocation

    files: list[tuple[str, str, tuple[int, int] | None]] = []
    folders: list[tuple[str, str]] = []
    for location in locations:
        shown = str(location)
        path = getattr(location, "path", None)
        if not isinstance(path, str):
            continue
        if isinstance(location, LayoutLocation):
            folders.append((shown, os.path.realpath(path)))
        else:
            files.append(_file_key(shown, path))
    if report:
        files.append(_file_key(f"--report {report}", report))
    seen: dict[object, str] = {}
    for shown, real, inode in files:
        if real == "":
            continue  # a character device: writes to it do not clobber each other
        for key in (real, inode):
            if key is not None and key in seen:
                raise InvalidInputError(f"outputs {seen[key]!r} and {shown!r} are the same file")
        seen[real] = shown
        if inode is not None:
            seen[inode] = shown
        for folder_shown, folder in folders:
            if real == folder or real.startswith(folder.rstrip(os.sep) + os.sep):
                raise InvalidInputError(
                    f"output {shown!r} is inside the OCI layout of {folder_shown!r}")


def _file_key(shown: str, path: str) -> tuple[str, str, tuple[int, int] | None]:
    """(shown, resolved path or "" for a character device, (dev, inode) when it exists)."""
    import stat

    from ...fsutil import resolve_output

    target = resolve_output(path)
    try:
        info = os.stat(target.path) if target.fd is None else os.fstat(target.fd)
    except OSError:
        return shown, str(target.path), None
    if stat.S_ISCHR(info.st_mode):
        return shown, "", None
    return shown, str(target.path), (info.st_dev, info.st_ino)


def source(text: str) -> Location:
    """A parsed source; a local path that does not exist is bad input (exit 2)."""
    location = parse_location(text)
    path = getattr(location, "path", None)
    if isinstance(path, str) and not os.path.lexists(path):
        raise InvalidInputError(f"source {text!r}: {path!r} does not exist")
    return location


def check_offline(locations: list[Location], options: Options) -> None:
    """--offline reads from the cache only: a registry destination cannot be written."""
    if not options.cache.offline:
        return
    from ...stores.registry import RegistryLocation

    for location in locations:
        if isinstance(location, RegistryLocation):
            raise InvalidInputError(f"--offline: cannot push to {location} (the registry "
                                    "would be contacted)")


def check_tag(text: str | None) -> str | None:
    """--tag NAME[:TAG] must be a valid image name (it names archives and layouts)."""
    if not text:
        return None
    from ...stores.archive import ImageName

    ImageName.parse(text)
    return text


def write_all(artifact: Artifact, locations: list[Location], options: Options) -> list[WriteResult]:
    """Write to every destination, after each has said it can take this artifact."""
    for location in locations:
        accepts = getattr(location, "check_artifact", None)
        if callable(accepts):
            accepts(artifact)
    results = []
    for location in locations:
        log.info("writing %s to %s", artifact.digest.short, location)
        results.append(location.write(artifact, options))
    return results


def result_json(artifact: Artifact, results: list[WriteResult], **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "digest": str(artifact.digest),
        "mediaType": artifact.media_type,
        "destinations": [
            {"location": r.location, "digest": r.digest, "mediaType": r.media_type,
             **({"name": r.name} if r.name else {})}
            for r in results
        ],
    }
    out.update(extra)
    return out


def human_lines(artifact: Artifact, results: list[WriteResult]) -> str:
    return "\n".join(f"{r.digest} {r.location}" + (f" ({r.name})" if r.name else "")
                     for r in results) or str(artifact.digest)
