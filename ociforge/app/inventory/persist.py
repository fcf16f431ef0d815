"""A layer's inventory findings as JSON, so a layer read once need not be read again.

What one layer does to the metadata files below it (``LayerChanges``) depends
only on that layer and the layers under it, so it can be kept with their
digests as the key (the rootfs cache does) and laid over a fresh view later.
Every value is a frozen dataclass of text, tuples and other such values; each
is written with a type tag and read back strictly (anything else is
``ValueError``: the caller drops the entry and reads the layer).
"""

from __future__ import annotations

from typing import Any

from .merged import LayerChanges
from .model import ExtractedLicense, Found, FoundList, License, Link, OsRelease, Record


def changes_to_json(changes: LayerChanges) -> dict[str, Any]:
    return {"records": [[path, _record(record)] for path, record in changes.records.items()],
            "whiteouts": sorted(changes.whiteouts), "opaque": sorted(changes.opaque),
            "replaced": sorted(changes.replaced)}


def changes_from_json(doc: Any) -> LayerChanges:
    if not isinstance(doc, dict):
        raise ValueError("layer changes: not an object")
    records = {}
    for item in _list(doc.get("records")):
        path, record = _pair(item)
        records[_str(path)] = _from(record)
    return LayerChanges(records, set(map(_str, _list(doc.get("whiteouts")))),
                        set(map(_str, _list(doc.get("opaque")))),
                        set(map(_str, _list(doc.get("replaced")))))


def _record(value: Record) -> list[Any]:
    if isinstance(value, Found):
        return ["found", value.ecosystem, value.name, value.version,
                None if value.license is None else _record(value.license),
                [list(q) for q in value.qualifiers], list(value.evidence)]
    if isinstance(value, FoundList):
        return ["list", [_record(p) for p in value.packages]]
    if isinstance(value, License):
        return ["license", value.expression,
                [[r.license_id, r.name, r.text] for r in value.refs],
                list(value.evidence), list(value.proprietary)]
    if isinstance(value, Link):
        return ["link", value.target]
    return ["os", value.id, value.version_id]


def _from(doc: Any) -> Any:
    tag, *rest = _list(doc) or [None]
    if tag == "found" and len(rest) == 6:
        ecosystem, name, version, license_, qualifiers, evidence = rest
        return Found(_str(ecosystem), _str(name), _str(version),
                     None if license_ is None else _license(license_),
                     tuple(tuple(map(_str, _pair(q))) for q in _list(qualifiers)),  # type: ignore[misc]
                     tuple(map(_str, _list(evidence))))
    if tag == "list" and len(rest) == 1:
        packages = tuple(_from(p) for p in _list(rest[0]))
        if not all(isinstance(p, Found) for p in packages):
            raise ValueError("a package list holds something else")
        return FoundList(packages)
    if tag == "license":
        return _license(doc)
    if tag == "link" and len(rest) == 1:
        return Link(_str(rest[0]))
    if tag == "os" and len(rest) == 2:
        return OsRelease(_str(rest[0]), _str(rest[1]))
    raise ValueError(f"unknown inventory record {tag!r}")


def _license(doc: Any) -> License:
    tag, *rest = _list(doc) or [None]
    if tag != "license" or len(rest) != 4:
        raise ValueError("not a license")
    expression, refs, evidence, proprietary = rest
    return License(_str(expression),
                   tuple(ExtractedLicense(*map(_str, _triple(r))) for r in _list(refs)),
                   tuple(map(_str, _list(evidence))), tuple(map(_str, _list(proprietary))))


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("expected a list")
    return value


def _pair(value: Any) -> list[Any]:
    items = _list(value)
    if len(items) != 2:
        raise ValueError("expected a pair")
    return items


def _triple(value: Any) -> list[Any]:
    items = _list(value)
    if len(items) != 3:
        raise ValueError("expected three items")
    return items


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value
