"""Where a pipeline reads from: a parsed location whose local path exists."""

from __future__ import annotations

import os

from ..errors import InvalidInputError
from ..stores.archive import DockerArchiveLocation, OciArchiveLocation
from ..stores.layout import LayoutLocation
from ..stores.locations import Location, parse_location


def open_source(item: str | Location) -> Location:
    """A parsed source; a local path that does not exist is bad input (exit 2)."""
    location = parse_location(item) if isinstance(item, str) else item
    if isinstance(location, LayoutLocation | OciArchiveLocation | DockerArchiveLocation) and \
            not os.path.lexists(location.path):
        raise InvalidInputError(f"source {str(item)!r}: {location.path!r} does not exist")
    return location
