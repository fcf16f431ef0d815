"""conda packages: ``conda-meta/<name>-<version>-<build>.json`` of every environment."""

from __future__ import annotations

from .licenses import Licensing
from .model import Found, Record
from .reader import MetadataError, Reader, json_metadata

_LIMIT = 64 << 20  # the most of one file the reader reads


def _wants(path: str) -> bool:
    parts = path.split("/")
    return len(parts) >= 2 and parts[-2] == "conda-meta" and parts[-1].endswith(".json")


def _parse(path: str, data: bytes, licensing: Licensing) -> Record | None:
    doc = json_metadata(data, "conda-meta record", _LIMIT)
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        raise MetadataError("no name or version")
    license_text = doc.get("license")
    license_ = licensing.statement(license_text if isinstance(license_text, str) else None,
                                   "license")
    qualifiers = tuple((key, str(doc[key])) for key in ("build", "channel", "subdir")
                       if isinstance(doc.get(key), str) and doc[key])
    return Found("conda", name, version, license_, qualifiers)


READERS = (
    Reader("conda", _wants, _parse, suffixes=(".json",), limit=_LIMIT),
)
