"""What phase two builds up: the layers (built once, however many platforms use
them) and each platform's image while it is assembled."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...layers.build import BuildResult
from ...model.image import Image
from ...model.jsonutil import JSONObject
from ...model.platform import Platform
from ..inventory import Inventory, InventoryTaker
from ..report import Report


@dataclass
class Built:
    """A layer the export built (once, however many platforms use it) and what its walk
    left out, as (image path, rule)."""

    role: str
    source: str
    result: BuildResult
    left_out: list[tuple[str, str]] = field(default_factory=list)
    table: JSONObject | None = None       # a table layer: its report entry and warnings
    rootfs: dict[str, object] | None = None   # the rootfs layer: compare mode and counts


@dataclass
class PlatformImage:
    """One platform's image while it is assembled."""

    platform: Platform
    base: Image
    base_digest: str | None
    report: Report
    used: set[str] = field(default_factory=set)
    image: Image | None = None
    inventory: Inventory | None = None
    taker: InventoryTaker | None = None     # the base's inventory, taken by the rootfs index
