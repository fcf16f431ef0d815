"""Managing what was exported: list the tags of a repository or layout, remove one.

``list_tags`` reads a registry repository's tag list (every ``Link`` page) or a
layout's index.json; attachment tags (``sha256-<hex>.sig``, the referrers fallback
``sha256-<hex>``) are left out unless asked for.  ``remove_tag`` removes what a
location names (``Location.remove_tag``: a registry deletes the manifest and
refuses when other tags name it, Docker Hub goes through its own API, a layout
drops the tag and the blobs nothing needs any more).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInputError
from ..model.jsonutil import JSONObject
from ..options import Options
from ..stores.locations import Location, TagRemoval, parse_location
from ..stores.refnames import is_attachment_tag


@dataclass(frozen=True)
class TagListing:
    location: Location
    tags: tuple[str, ...]


def list_tags(location: str | Location, options: Options | None = None, *,
              attachments: bool = False) -> TagListing:
    """The tags of a registry repository or an ``oci:`` layout, sorted; attachment tags
    only with ``attachments``."""
    options = options if options is not None else Options()
    found = _location(location)
    tags = found.list_tags(options)
    kept = sorted({t for t in tags if attachments or not is_attachment_tag(t)})
    return TagListing(found, tuple(kept))


def remove_tag(location: str | Location, options: Options | None = None, *,
               all_tags: bool = False) -> TagRemoval:
    """Remove the tag a location names (a registry reference needs an explicit ``:TAG``
    or ``@DIGEST``: ``latest`` is never removed by default)."""
    options = options if options is not None else Options()
    if isinstance(location, str) and _names_no_tag(location):
        raise InvalidInputError(f"{location!r}: name the tag to remove ({location}:TAG or "
                                f"{location}@DIGEST)")
    return _location(location).remove_tag(options, all_tags=all_tags)


def removal_dict(removal: TagRemoval) -> JSONObject:
    """The ``rm --json`` object."""
    return {
        "location": removal.location,
        "digest": removal.digest,
        "removed_tags": list(removal.tags),
        "removed_attachments": list(removal.attachments),
        "manifest_deleted": removal.manifest_deleted,
        "blobs_removed": removal.blobs_removed,
        "bytes_freed": removal.bytes_freed,
        "via": removal.via,
    }


def _location(location: str | Location) -> Location:
    if not isinstance(location, str):
        return location
    return parse_location(location, role="source")  # each kind checks what it reads


def _names_no_tag(text: str) -> bool:
    """A registry reference written without ``:TAG`` or ``@DIGEST``."""
    location = parse_location(text, role="source")
    if location.reference is None:
        return False
    bare = text.strip().removeprefix("docker://")
    return "@" not in bare and ":" not in bare.rsplit("/", 1)[-1]
