"""The metadata files of a stack of layers as a container sees them.

Layers are applied lowest first.  A layer's whiteouts (``.wh.NAME``) delete NAME
and everything under it from the layers below; an opaque whiteout
(``.wh..wh..opq``) hides everything below in its folder; an entry at a path
replaces what lower layers had there (a file over a folder replaces the folder
and its contents).  A layer's whiteouts never touch its own entries.

Only metadata files are kept (as parsed records), never the whole file list, so
memory follows the number of packages, not of files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import Found, FoundList, LayerRef, Record


@dataclass
class LayerChanges:
    """What one layer does to the metadata files below it."""

    records: dict[str, Record] = field(default_factory=dict)
    whiteouts: set[str] = field(default_factory=set)    # deleted paths
    opaque: set[str] = field(default_factory=set)       # folders hidden below
    replaced: set[str] = field(default_factory=set)     # paths a non-metadata entry took


@dataclass
class Held:
    layer: LayerRef
    record: Record
    introduced: dict[tuple[str, str, str], LayerRef]    # package identity -> first layer


class MergedView:
    def __init__(self) -> None:
        self.held: dict[str, Held] = {}
        self._dirs: set[str] = set()
        # every package any layer described, by (identity, path): the first layer it was in
        self.seen: dict[tuple[tuple[str, str, str], str], tuple[LayerRef, Found]] = {}

    def is_held(self, path: str) -> bool:
        return path in self.held

    def holds_under(self, path: str) -> bool:
        """Some held file is inside this folder path."""
        return path in self._dirs

    def apply(self, layer: LayerRef, changes: LayerChanges) -> None:
        gone = [path for path in self.held if self._hidden(path, changes)]
        previous = {path: self.held.pop(path) for path in gone}
        for path, record in changes.records.items():
            before = previous.get(path)
            self.held[path] = Held(layer, record, _introduced(layer, record, before))
            for package in _packages(record):
                self.seen.setdefault((package.identity, path), (layer, package))
        self._dirs = {path.rsplit("/", i)[0] for path in self.held
                      for i in range(1, path.count("/") + 1)}

    @staticmethod
    def _hidden(path: str, changes: LayerChanges) -> bool:
        if path in changes.records or path in changes.replaced or path in changes.whiteouts:
            return True
        parent = path
        while "/" in parent:
            parent = parent.rsplit("/", 1)[0]
            if parent in changes.whiteouts or parent in changes.opaque \
                    or parent in changes.replaced:
                return True
        return "" in changes.opaque  # an opaque root hides everything below

    def records(self) -> dict[str, Record]:
        return {path: held.record for path, held in self.held.items()}


def _introduced(layer: LayerRef, record: Record, before: Held | None
                ) -> dict[tuple[str, str, str], LayerRef]:
    """A package unchanged since a lower layer (a status file rewritten by a later
    apt-get install) keeps that lower layer as the one it came from."""
    out: dict[tuple[str, str, str], LayerRef] = {}
    for package in _packages(record):
        earlier = before.introduced.get(package.identity) if before is not None else None
        out[package.identity] = earlier or layer
    return out


def _packages(record: Record) -> tuple[Found, ...]:
    if isinstance(record, Found):
        return (record,)
    return record.packages if isinstance(record, FoundList) else ()
