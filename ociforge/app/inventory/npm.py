"""npm packages: ``node_modules/<name>/package.json`` (and ``@scope/<name>``) at any depth.

``license`` is an SPDX expression, ``UNLICENSED`` (npm's word for "no license to use":
proprietary) or ``SEE LICENSE IN <file>``; the legacy ``licenses`` array lists
alternatives.
"""

from __future__ import annotations

from .licenses import Licensing
from .model import NOASSERTION, Found, License, Record
from .reader import Reader, json_metadata

_LIMIT = 4 << 20  # the most of one file the reader reads


def _wants(path: str) -> bool:
    parts = path.split("/")
    if len(parts) < 3 or parts[-1] != "package.json":
        return False
    if parts[-3] == "node_modules":
        return not parts[-2].startswith(("@", "."))
    return len(parts) >= 4 and parts[-3].startswith("@") and parts[-4] == "node_modules"


def _license(doc: dict, licensing: Licensing) -> License:
    value = doc.get("license")
    if isinstance(value, dict):
        value = value.get("type")
    if isinstance(value, str) and value.strip():
        return licensing.statement(value, "license")
    legacy = doc.get("licenses")
    if isinstance(legacy, list):
        names = [item.get("type") if isinstance(item, dict) else item for item in legacy]
        return licensing.combine([licensing.statement(n, "licenses")
                                  for n in names if isinstance(n, str)], "OR")
    return NOASSERTION


def _parse(path: str, data: bytes, licensing: Licensing) -> Record | None:
    doc = json_metadata(data, "package.json", _LIMIT)
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return None  # a folder's package.json of some other kind ({"type": "module"})
    return Found("npm", name, version, _license(doc, licensing))


READERS = (
    Reader("npm", _wants, _parse, basenames=frozenset({"package.json"}), limit=_LIMIT),
)
