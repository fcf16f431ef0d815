"""Copy: an image from one location to others, digests unchanged.

Raw manifest and config bytes are written as read, so the digest at every
destination is the digest at the source.  An index is copied whole (every
platform, its digest unchanged) unless the options pick platforms:
``Options.platform`` narrows it to that one image (or, when the index lists several
for it, Windows releases differing in os.version, to an index of exactly those),
``Options.platforms`` to a new index holding exactly those children (their digests
unchanged).
``with_referrers`` also copies what is attached to what was copied (the image,
or the index and each of its children): signatures and referrers
(trust/transfer.py), so they verify and list at every destination.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ..model.index import Artifact
from ..options import Options
from ..stores.locations import Location, WriteResult, resolve_platform
from .outputs import Outputs, check_tag
from .sources import open_source

if TYPE_CHECKING:
    from ..trust.transfer import CopiedAttachment

log = logging.getLogger("ociforge")


@dataclass(frozen=True)
class CopyOutcome:
    """What was copied (after platform selection) and one result per destination."""

    artifact: Artifact
    source: Location
    results: tuple[WriteResult, ...]
    attachments: tuple[CopiedAttachment, ...] = ()


@dataclass
class CopyPlan:
    """A copy whose source and destinations were checked; ``run()`` does it."""

    source: Location
    outputs: Outputs
    options: Options
    with_referrers: bool = False

    def run(self) -> CopyOutcome:
        attachments: list[CopiedAttachment] = []
        options = self.options
        if not options.picks_platforms:
            options = replace(options, all_platforms=True)  # what is given is what is kept
        with self.outputs.running(self.options):
            artifact = resolve_platform(self.source.read(options), options,
                                        every_match=True)
            results = self.outputs.write(artifact, self.options)
            if self.with_referrers:
                from ..model import walk
                from ..trust.transfer import copy_attachments

                subjects = [found.digest for found in walk.manifests(artifact)][::-1]
                source_store = self.source.artifact_store(self.options)
                for location in self.outputs:
                    log.info("copying signatures and referrers to %s", location)
                    attachments += copy_attachments(
                        source_store, location.artifact_store(self.options), subjects)
        return CopyOutcome(artifact, self.source, tuple(results), tuple(attachments))


def plan_copy(source: str | Location, destinations: Sequence[str | Location],
              options: Options | None = None, *, tag: str | None = None,
              with_referrers: bool = False) -> CopyPlan:
    """Check the source, every destination, and push access to the registry ones.

    ``tag`` (``NAME:TAG``) names archives and tags layouts given without one;
    ``with_referrers`` needs a source and destinations that can hold signatures
    and referrers (``oci:`` layouts and registries).
    """
    options = options if options is not None else Options()
    name = check_tag(tag)
    if not destinations:
        raise InvalidInputError("copy needs at least one destination")
    location = open_source(source)
    outputs = Outputs.parse(destinations, default_name=name or _name_of(location))
    outputs.check_offline(options)
    if with_referrers:
        for place in (location, *outputs):
            if not place.supports_attachments:
                raise InvalidInputError(
                    f"--with-referrers: {place} cannot hold signatures or referrers; "
                    "copy between oci:DIR layouts and registries")
    outputs.check_push_access(options)
    return CopyPlan(location, outputs, options, with_referrers)


def _name_of(source: Location) -> str | None:
    """The source's own image name (``ghcr.io/me/app:1``), checked like --tag: what
    archives written without a name are called."""
    found = source.carried_name()
    try:
        return check_tag(found) if found else None
    except InvalidInputError:
        return None  # a name an archive cannot carry: the file's own name then


def copy_image(source: str | Location, destinations: Sequence[str | Location],
               options: Options | None = None, *, tag: str | None = None,
               with_referrers: bool = False) -> CopyOutcome:
    """``plan_copy(...).run()``."""
    return plan_copy(source, destinations, options, tag=tag,
                     with_referrers=with_referrers).run()
