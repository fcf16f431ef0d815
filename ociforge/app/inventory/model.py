"""The values of an inventory: packages, their licenses, and what the layers hold."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[A-Za-z0-9.+:-]+")
_OPERATORS = frozenset({"AND", "OR", "WITH"})
_TEXT_SUFFIX = re.compile(r"-[0-9a-f]{8}$")


def license_names(expression: str) -> list[str]:
    """The licenses an expression names, each once ("X WITH Y" counts as X)."""
    names: list[str] = []
    tokens = _TOKEN.findall(expression)
    for i, token in enumerate(tokens):
        if token in _OPERATORS or (i and tokens[i - 1] == "WITH"):
            continue
        if token.startswith("LicenseRef-"):
            token = _TEXT_SUFFIX.sub("", token)
        if token not in names:
            names.append(token)
    return names


@dataclass(frozen=True)
class ExtractedLicense:
    """A license that is not on the SPDX list, declared with its text (SPDX 2.3 §10)."""

    license_id: str     # LicenseRef-...
    name: str
    text: str


@dataclass(frozen=True)
class License:
    """A package's declared license: an SPDX expression or NOASSERTION.

    ``evidence`` is the license statements as found ("License: MIT"); ``proprietary``
    the ones that make the package proprietary (empty for open-source packages).
    """

    expression: str
    refs: tuple[ExtractedLicense, ...] = ()
    evidence: tuple[str, ...] = ()
    proprietary: tuple[str, ...] = ()


NOASSERTION = License("NOASSERTION")


@dataclass(frozen=True)
class Found:
    """A package as one metadata file describes it (the layer is known later)."""

    ecosystem: str          # deb, apk, python, conda, r, npm, binary
    name: str
    version: str
    license: License | None = None      # None: looked up when the layers are merged (deb)
    qualifiers: tuple[tuple[str, str], ...] = ()   # arch, build, channel, ... for the purl
    evidence: tuple[str, ...] = ()      # why a product detection says what it says

    @property
    def identity(self) -> tuple[str, str, str]:
        return self.ecosystem, self.name, self.version


@dataclass(frozen=True)
class FoundList:
    """Several packages in one database file (dpkg status, apk installed)."""

    packages: tuple[Found, ...]


@dataclass(frozen=True)
class Link:
    """A symlink the inventory follows (a shared doc folder, os-release)."""

    target: str


@dataclass(frozen=True)
class OsRelease:
    id: str
    version_id: str


Record = Found | FoundList | License | Link | OsRelease


@dataclass(frozen=True)
class LayerRef:
    """A layer of the image, as the inventory names it."""

    index: int              # position in the image, 0 = lowest
    digest: str
    label: str = ""         # e.g. "base", "runtime runtime/python"


@dataclass(frozen=True)
class Package:
    ecosystem: str
    name: str
    version: str
    license: License
    layer: LayerRef         # the lowest layer from which the package is there unchanged
    path: str               # its metadata file in the image ("/var/lib/dpkg/status")
    purl: str
    evidence: tuple[str, ...] = ()

    def sort_key(self) -> tuple[str, str, str, str, int]:
        return (self.ecosystem, self.name.lower(), self.version, self.path, self.layer.index)


@dataclass(frozen=True)
class Inventory:
    """The packages of the merged filesystem, and ``hidden``: packages a lower layer
    holds that an upper layer deleted or replaced (not in the container's view, but
    their bytes are still in the image's blobs)."""

    packages: tuple[Package, ...]
    distro: OsRelease | None = None
    layers: tuple[LayerRef, ...] = ()
    warnings: tuple[str, ...] = field(default=())
    hidden: tuple[Package, ...] = ()

    def license_overview(self) -> dict[str, int]:
        """How many packages carry each license (every license of an expression counted
        once per package; LicenseRefs by name, without the suffix that tells texts apart)."""
        counts: dict[str, int] = {}
        for package in self.packages:
            for name in license_names(package.license.expression):
                counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def ecosystem_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for package in self.packages:
            counts[package.ecosystem] = counts.get(package.ecosystem, 0) + 1
        return dict(sorted(counts.items()))
