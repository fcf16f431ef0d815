"""Taking the inventory of an image from its layer tar streams.

Each layer is streamed once (decompressed, never held in memory); only the
metadata files an ecosystem reader wants are read, each up to its reader's
limit.  The layers are then merged as a container sees them (merged.py), so a
package deleted by a whiteout or left out by the export's rules is not listed,
and each package is attributed to the lowest layer it is unchanged from.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from ...layers.tarsafe import DataReader, Limits, TarEntry, read_entries
from ...model.digest import Digest
from ...model.layer import Layer
from ...model.mediatypes import LAYERS
from . import apk, conda, dpkg, npm, osrelease, products, python, rlang
from .licenses import Licensing
from .merged import LayerChanges, MergedView
from .model import (
    NOASSERTION,
    Found,
    FoundList,
    Inventory,
    LayerRef,
    Link,
    OsRelease,
    Package,
    Record,
)
from .purl import purl
from .reader import AnyReader, MetadataError, Reader

log = logging.getLogger("ociforge.inventory")

READERS: tuple[Reader, ...] = (*dpkg.READERS, *apk.READERS, *python.READERS, *conda.READERS,
                               *rlang.READERS, *npm.READERS, *osrelease.READERS,
                               *products.READERS)
_ANY_READER = AnyReader.of(READERS)
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"


def take_inventory(layers: Sequence[tuple[LayerRef, Layer]],
                   limits: Limits | None = None) -> Inventory:
    """The packages in an image, from its layers (lowest first)."""
    return take_inventories([layers], limits)[0]


@dataclass
class _Stack:
    """One image's inventory while it is taken."""

    layers: Sequence[tuple[LayerRef, Layer]]
    view: MergedView = field(default_factory=MergedView)
    warnings: list[str] = field(default_factory=list)
    position: int = 0

    @property
    def done(self) -> bool:
        return self.position >= len(self.layers)

    def current(self) -> Digest:
        return self.layers[self.position][1].digest

    def holds_later(self, digest: Digest) -> bool:
        return any(layer.digest == digest for _, layer in self.layers[self.position + 1:])


def take_inventories(images: Sequence[Sequence[tuple[LayerRef, Layer]]],
                     limits: Limits | None = None) -> list[Inventory]:
    """take_inventory for several images (the platforms of one export), each result the
    same as alone.  A layer several images hold is streamed once for all of them that
    reach it together: an image waits at a layer that another one holds further up,
    until that one gets there too (layers in different orders are read apart)."""
    licensing = Licensing()
    stacks = [_Stack(layers) for layers in images]
    while not all(stack.done for stack in stacks):
        ready = [stack for stack in stacks if not stack.done and not any(
            other is not stack and not other.done and other.current() != stack.current()
            and other.holds_later(stack.current()) for other in stacks)]
        lead = ready[0] if ready else next(stack for stack in stacks if not stack.done)
        digest = lead.current()
        group = [stack for stack in stacks if not stack.done and stack.current() == digest]
        _step(group, licensing, limits)
    return [assemble(stack.view, [ref for ref, _ in stack.layers], stack.warnings)
            for stack in stacks]


def _step(group: list[_Stack], licensing: Licensing, limits: Limits | None) -> None:
    """The next layer of every stack in ``group`` (the same blob), read once."""
    ref, layer = group[0].layers[group[0].position]
    if not inventoried(layer):
        for stack in group:
            stack.warnings.append(not_inventoried(stack.layers[stack.position][0], layer))
    else:
        log.info("taking the inventory of layer %d (%s)", ref.index + 1, ref.digest[:19])
        sinks = [_Sink(stack.view, LayerChanges(), stack.warnings) for stack in group]
        _scan(ref, layer, sinks, licensing, limits)
        for stack, sink in zip(group, sinks, strict=True):
            stack.view.apply(stack.layers[stack.position][0], sink.changes)
    for stack in group:
        stack.position += 1


@dataclass
class _Sink:
    """What one image's merged view makes of a layer's entries."""

    view: MergedView
    changes: LayerChanges
    warnings: list[str]


class InventoryTaker:
    """An inventory taken one layer at a time, lowest first.

    ``add`` streams a layer itself; ``feed`` serves a caller that streams the layer
    for its own reasons anyway (the rootfs index), so the layer is read once.
    """

    def __init__(self, limits: Limits | None = None):
        self.licensing = Licensing()
        self.view = MergedView()
        self.warnings: list[str] = []
        self.refs: list[LayerRef] = []
        self._limits = limits

    def add(self, ref: LayerRef, layer: Layer) -> None:
        self.refs.append(ref)
        if not inventoried(layer):
            self.warnings.append(not_inventoried(ref, layer))
            return
        log.info("taking the inventory of layer %d (%s)", ref.index + 1, ref.digest[:19])
        self.view.apply(ref, scan_layer(ref, layer, self.view, self.licensing, self.warnings,
                                        self._limits))

    def feed(self, ref: LayerRef) -> InventoryFeed:
        """Entries of the next layer, in order; ``done()`` when it has been read to its end
        (the caller reads the layer: a layer ``inventoried`` refuses must not be fed)."""
        return InventoryFeed(self, ref)

    def replay(self, ref: LayerRef, changes: LayerChanges, warnings: Sequence[str]) -> None:
        """The next layer as an earlier feed of the same layers found it
        (``InventoryFeed.changes`` and ``warnings``), without reading it."""
        self.refs.append(ref)
        self.warnings.extend(warnings)
        self.view.apply(ref, changes)

    def result(self) -> Inventory:
        return assemble(self.view, self.refs, self.warnings)


class InventoryFeed:
    """One layer's entries for the inventory, handed over by whoever streams it."""

    def __init__(self, taker: InventoryTaker, ref: LayerRef):
        self._taker = taker
        self._ref = ref
        self._sink = _Sink(taker.view, LayerChanges(), [])

    @property
    def changes(self) -> LayerChanges:
        return self._sink.changes

    @property
    def warnings(self) -> list[str]:
        """What this layer added to the inventory's warnings."""
        return self._sink.warnings

    def entry(self, entry: TarEntry, data: DataReader) -> None:
        _entry(entry, data, [self._sink], self._taker.licensing)

    def done(self) -> None:
        taker = self._taker
        taker.warnings.extend(self._sink.warnings)
        taker.refs.append(self._ref)
        taker.view.apply(self._ref, self._sink.changes)


def inventoried(layer: Layer) -> bool:
    """A layer type the inventory reads (not a foreign or unknown one)."""
    return layer.media_type in LAYERS and "foreign" not in layer.media_type \
        and "nondistributable" not in layer.media_type


def not_inventoried(ref: LayerRef, layer: Layer) -> str:
    """The warning for a layer ``inventoried`` refuses: its files are not looked at."""
    return (f"layer {ref.index + 1} ({ref.digest[:19]}) was not inventoried: "
            f"{layer.media_type} is a foreign or unknown layer type")


def scan_layer(ref: LayerRef, layer: Layer, view: MergedView, licensing: Licensing,
               warnings: list[str], limits: Limits | None = None) -> LayerChanges:
    """One pass over a layer: its metadata files, whiteouts and replacements."""
    sink = _Sink(view, LayerChanges(), warnings)
    _scan(ref, layer, [sink], licensing, limits)
    return sink.changes


def _scan(ref: LayerRef, layer: Layer, sinks: list[_Sink], licensing: Licensing,
          limits: Limits | None) -> None:
    """One pass over a layer for every view in ``sinks`` (metadata read and parsed once)."""
    lim = limits or Limits()
    what = f"layer {ref.index + 1} ({ref.digest[:19]})"
    with layer.open() as raw:
        read_entries(raw, what, lim,  # type: ignore[arg-type]
                     lambda entry, reader: _entry(entry, reader, sinks, licensing))


def _entry(entry: TarEntry, reader: DataReader, sinks: list[_Sink],
           licensing: Licensing) -> None:
    name = entry.name
    parent, _, base = name.rpartition("/")
    if base.startswith(_WHITEOUT):
        for sink in sinks:
            if base == _OPAQUE:
                sink.changes.opaque.add(parent)
            else:
                sink.changes.whiteouts.add(f"{parent}/{base[4:]}" if parent else base[4:])
        return
    for sink in sinks:
        view = sink.view
        if view.is_held(name) or (entry.type != "dir" and view.holds_under(name)):
            sink.changes.replaced.add(name)
    if entry.type == "file":
        if not _ANY_READER.may_want(name, base):
            return
        for item in READERS:
            if item.may_want(name, base) and item.wants(name):
                notes: list[str] = []
                record = _read(item, entry, reader, licensing, notes)
                for sink in sinks:
                    sink.warnings += notes
                    if record is not None:
                        sink.changes.records[name] = record
                return
    elif entry.type == "symlink":
        if any(item.links is not None and item.links(name) for item in READERS):
            for sink in sinks:
                sink.changes.records[name] = Link(entry.linkname)
    elif entry.type == "hardlink":
        # another name for a file earlier in this layer: the same record, if it was one
        for sink in sinks:
            target = sink.changes.records.get(entry.linkname)
            if target is not None and any(item.may_want(name, base) and item.wants(name)
                                          for item in READERS):
                sink.changes.records[name] = target


def _read(item: Reader, entry: TarEntry, reader: DataReader, licensing: Licensing,
          warnings: list[str]) -> Record | None:
    shown = "/" + entry.name
    if entry.size > item.limit and item.whole:
        warnings.append(f"{shown}: {entry.size} bytes is over the {item.limit}-byte limit for "
                        f"{item.ecosystem} metadata; not read")
        return None
    data = reader.read(min(entry.size, item.limit)) if item.limit else b""
    return parse_metadata(item, entry.name, data, licensing, warnings)


def parse_metadata(item: Reader, path: str, data: bytes, licensing: Licensing,
                   warnings: list[str]) -> Record | None:
    """A reader's record for a file, or None and a warning when the file is not what its
    name says (any content: layers come from anywhere)."""
    try:
        return item.parse(path, data, licensing)
    except (MetadataError, ValueError, UnicodeError, LookupError, TypeError,
            RecursionError) as exc:
        warnings.append(f"/{path}: not read as {item.ecosystem} metadata: "
                        f"{str(exc)[:200] or type(exc).__name__}")
        return None


def assemble(view: MergedView, layers: Sequence[LayerRef], warnings: list[str]) -> Inventory:
    """Packages from the merged view's records, each with its layer and purl."""
    records = view.records()
    distro = _distro(records)
    packages: list[Package] = []
    for path, held in view.held.items():
        record = held.record
        found: tuple[Found, ...] = (record,) if isinstance(record, Found) else \
            record.packages if isinstance(record, FoundList) else ()
        for item in found:
            license_ = item.license
            if license_ is None:
                license_ = dpkg.license_of(item.name, records) if item.ecosystem == "deb" \
                    else NOASSERTION
            layer = held.introduced.get(item.identity, held.layer)
            packages.append(Package(item.ecosystem, item.name, item.version, license_, layer,
                                    "/" + path, purl(item, distro), item.evidence))
    packages.sort(key=Package.sort_key)
    final = {((p.ecosystem, p.name, p.version), p.path.lstrip("/")) for p in packages}
    hidden = sorted((Package(item.ecosystem, item.name, item.version,
                             item.license or NOASSERTION, layer, "/" + path,
                             purl(item, distro), item.evidence)
                     for (identity, path), (layer, item) in view.seen.items()
                     if (identity, path) not in final), key=Package.sort_key)
    return Inventory(tuple(packages), distro, tuple(layers), tuple(warnings), tuple(hidden))


def _distro(records: dict[str, Record]) -> OsRelease | None:
    for path in osrelease.PATHS:
        record = records.get(path)
        for _ in range(3):
            if not isinstance(record, Link):
                break
            target = record.target
            resolved = target.lstrip("/") if target.startswith("/") else \
                _join(path.rpartition("/")[0], target)
            record = records.get(resolved)
        if isinstance(record, OsRelease):
            return record
    return None


def _join(folder: str, target: str) -> str:
    parts = [p for p in folder.split("/") if p]
    for part in target.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)
