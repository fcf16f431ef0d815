"""Copy: an image from one location to others, digests unchanged.

Raw manifest and config bytes are written as read, so the digest at every
destination is the digest at the source.  An index is copied whole (every
platform, its digest unchanged) unless the options pick platforms:
``Options.platform`` narrows it to that one image, ``Options.platforms`` to a
new index holding exactly those children (their digests unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..errors import InvalidInputError
from ..model.index import Artifact
from ..options import Options
from ..stores.locations import Location, WriteResult, resolve_platform
from .outputs import Outputs, check_tag
from .sources import open_source


@dataclass(frozen=True)
class CopyOutcome:
    """What was copied (after platform selection) and one result per destination."""

    artifact: Artifact
    source: Location
    results: tuple[WriteResult, ...]


@dataclass
class CopyPlan:
    """A copy whose source and destinations were checked; ``run()`` does it."""

    source: Location
    outputs: Outputs
    options: Options

    def run(self) -> CopyOutcome:
        options = self.options
        if not options.picks_platforms:
            options = replace(options, all_platforms=True)  # what is given is what is kept
        with self.outputs.running(self.options):
            artifact = resolve_platform(self.source.read(options), options)
            results = self.outputs.write(artifact, self.options)
        return CopyOutcome(artifact, self.source, tuple(results))


def plan_copy(source: str | Location, destinations: Sequence[str | Location],
              options: Options | None = None, *, tag: str | None = None) -> CopyPlan:
    """Check the source, every destination, and push access to the registry ones.

    ``tag`` (``NAME:TAG``) names archives and tags layouts given without one.
    """
    options = options if options is not None else Options()
    name = check_tag(tag)
    if not destinations:
        raise InvalidInputError("copy needs at least one destination")
    outputs = Outputs.parse(destinations, default_name=name)
    outputs.check_offline(options)
    location = open_source(source)
    outputs.check_push_access(options)
    return CopyPlan(location, outputs, options)


def copy_image(source: str | Location, destinations: Sequence[str | Location],
               options: Options | None = None, *, tag: str | None = None) -> CopyOutcome:
    """``plan_copy(...).run()``."""
    return plan_copy(source, destinations, options, tag=tag).run()
