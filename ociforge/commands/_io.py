"""Helpers the image commands share: destinations checked up front, writes, results.

Every destination is parsed and checked (scheme, tag, 'is a directory where a
file is needed') before anything is read or built, so bad input exits 2 with
nothing written.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ..errors import InvalidInputError
from ..index import Artifact
from ..locations import Location, Scratch, WriteResult, parse_location
from ..options import Options

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


def source(text: str) -> Location:
    """A parsed source; a local path that does not exist is bad input (exit 2)."""
    location = parse_location(text)
    path = getattr(location, "path", None)
    if isinstance(path, str) and not os.path.lexists(path):
        raise InvalidInputError(f"source {text!r}: {path!r} does not exist")
    return location


def check_tag(text: str | None) -> str | None:
    """--tag NAME[:TAG] must be a valid image name (it names archives and layouts)."""
    if not text:
        return None
    from ..archive import ImageName

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
