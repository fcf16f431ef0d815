"""The distribution (``etc/os-release``, ``usr/lib/os-release``): its ID and VERSION_ID
name the namespace of Debian and Alpine package URLs (``pkg:deb/debian/...``)."""

from __future__ import annotations

from .licenses import Licensing
from .model import OsRelease, Record
from .reader import Reader

PATHS = ("etc/os-release", "usr/lib/os-release")


def _parse(path: str, data: bytes, licensing: Licensing) -> Record | None:
    fields: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip("\"'")
    distro = fields.get("ID", "")
    if not distro or not all(c.isalnum() or c in "._-" for c in distro):
        return None
    return OsRelease(distro.lower(), fields.get("VERSION_ID", ""))


READERS = (
    Reader("os", lambda path: path in PATHS, _parse, basenames=frozenset({"os-release"}),
           limit=64 << 10, links=lambda path: path in PATHS),
)
