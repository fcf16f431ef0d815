"""The cache keys of the export name the modules whose source decides the cached bytes.

The fingerprint hashes the source of each named module and passes over a name
that is not imported, so a module renamed or moved without its name being
updated would silently drop out of the key (and a change to its code would be
answered from the cache).  Every name must import, and be the module's own.
"""

from __future__ import annotations

import importlib

import pytest

from ociforge.app.baselayers import SCAN_DECIDERS
from ociforge.app.export.layers import FILE_RULE_DECIDERS
from ociforge.app.export.tablelayers import TABLE_READERS
from ociforge.app.rootfs import INVENTORY_READERS

NAMED = sorted({*SCAN_DECIDERS, *FILE_RULE_DECIDERS, *TABLE_READERS, *INVENTORY_READERS})


@pytest.mark.parametrize("name", NAMED)
def test_every_module_a_cache_key_names_exists(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__name__ == name and module.__file__ and module.__file__.endswith(".py")
