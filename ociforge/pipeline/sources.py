"""Where a pipeline reads from: a parsed location whose local path exists."""

from __future__ import annotations

from ..stores.locations import Location, parse_source


def open_source(item: str | Location) -> Location:
    """A parsed source; a local path that does not exist is bad input (exit 2)."""
    if isinstance(item, str):
        return parse_source(item)
    item.check_source()
    return item
