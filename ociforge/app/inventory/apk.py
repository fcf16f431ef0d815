"""Alpine packages: ``lib/apk/db/installed`` (apk's own format: ``K:value`` lines, a
blank line between packages; ``P`` name, ``V`` version, ``A`` arch, ``L`` license)."""

from __future__ import annotations

from .licenses import Licensing
from .model import Found, FoundList, Record
from .reader import MetadataError, Reader

INSTALLED = "lib/apk/db/installed"


def _parse(path: str, data: bytes, licensing: Licensing) -> Record | None:
    found: list[Found] = []
    for stanza in data.decode("utf-8", "replace").split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(":")
            if sep and len(key) == 1 and key not in fields:
                fields[key] = value.strip()
        name, version = fields.get("P"), fields.get("V")
        if not name or not version:
            continue
        license_ = licensing.statement(fields.get("L"), "L")
        qualifiers = tuple((k, v) for k, v in (("arch", fields.get("A", "")),
                                                ("upstream", fields.get("o", ""))) if v)
        found.append(Found("apk", name, version, license_, qualifiers))
    if not found and data.strip():
        raise MetadataError("no package in it")
    return FoundList(tuple(found))


READERS = (
    Reader("apk", lambda path: path == INSTALLED, _parse, basenames=frozenset({"installed"}),
           limit=64 << 20),
)
