"""What ships: the packages of an image, their licenses, and the licensed ones.

``take_inventory(layers)`` streams an image's layers (lowest first) and lists the
packages of dpkg, apk, Python, conda, R and npm, and installations of known
license-managed products, as the merged filesystem shows them (whiteouts
respected; files the export's rules left out are not in the layers, so not
listed).  ``find_licensed`` says which of them make the application licensed.
One module per ecosystem; see docs/export.md ("What ships").
"""

from __future__ import annotations

from .licensed import PRODUCTS, LicensedComponent, find_licensed, unused_allowances
from .model import ExtractedLicense, Inventory, LayerRef, License, Package
from .scan import (
    InventoryFeed,
    InventoryTaker,
    inventoried,
    not_inventoried,
    take_inventories,
    take_inventory,
)

__all__ = [
    "PRODUCTS",
    "ExtractedLicense",
    "Inventory",
    "InventoryFeed",
    "InventoryTaker",
    "LayerRef",
    "License",
    "LicensedComponent",
    "Package",
    "find_licensed",
    "inventoried",
    "not_inventoried",
    "take_inventories",
    "take_inventory",
    "unused_allowances",
]
