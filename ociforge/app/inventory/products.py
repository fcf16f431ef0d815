"""Installations of license-managed products found by their files (no package metadata):
a MATLAB or Stata folder under /opt, a CPLEX Studio, a SAS Foundation.  The markers are
named data in licensed.PRODUCTS; only names are read, never the files' bytes."""

from __future__ import annotations

import fnmatch
import re

from .licensed import PRODUCTS
from .licenses import Licensing
from .model import NOASSERTION, Found, Record
from .reader import Reader

_MARKERS = tuple((product, marker, re.compile(marker.regex))
                 for product in PRODUCTS for marker in product.markers)
_EXACT = frozenset(name for _, marker, _ in _MARKERS for name in marker.basenames
                   if "*" not in name)
_PREFIXES = tuple(name.rstrip("*") for _, marker, _ in _MARKERS for name in marker.basenames
                  if "*" in name)


def _match(path: str) -> Found | None:
    base = path.rpartition("/")[2]
    for product, marker, regex in _MARKERS:
        if not any(fnmatch.fnmatchcase(base, name) for name in marker.basenames):
            continue
        found = regex.search(path)
        if found is None:
            continue
        version = (found.groupdict().get("version") or "").strip(".") or "NOASSERTION"
        return Found("binary", product.name, version, NOASSERTION,
                     evidence=(f"its installation at /{path}",))
    return None


def _wants(path: str) -> bool:
    return _match(path) is not None


def _parse(path: str, data: bytes, licensing: Licensing) -> Record | None:
    return _match(path)


READERS = (
    Reader("binary", _wants, _parse, basenames=_EXACT, name_prefixes=_PREFIXES, limit=0,
           whole=False),
)
