"""Platforms (os/architecture/variant): parsing, normalising and matching.

Normalisation follows containerd's rules so that ``linux/aarch64``,
``linux/arm64`` and ``linux/arm64/v8`` all name the same platform.
"""

from __future__ import annotations

import platform as _pyplatform
import re
from dataclasses import dataclass, field
from types import MappingProxyType

from ..errors import InvalidPlatformError
from .jsonutil import JSONObject

_PART_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
_ARCH_ALIASES = MappingProxyType({
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "i386": "386",
    "i686": "386",
})
KNOWN_OS = frozenset(
    {"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos",
     "aix", "plan9", "dragonfly", "js", "wasip1", "android", "ios"}
)
KNOWN_ARCH = frozenset(
    {"amd64", "arm64", "arm", "386", "ppc64le", "ppc64", "s390x", "riscv64", "mips64le",
     "mips64", "mipsle", "mips", "loong64", "wasm"}
)


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = field(default=())

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]`` (``arch`` alone means linux/arch)."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidPlatformError("platform is empty; expected OS/ARCH[/VARIANT]")
        parts = text.strip().split("/")
        if len(parts) == 1:
            parts = ["linux", parts[0]]
        if len(parts) > 3 or any(not p or not _PART_RE.match(p) or p in (".", "..")
                                 for p in parts):
            raise InvalidPlatformError(
                f"malformed platform {text[:80]!r}; expected OS/ARCH[/VARIANT], e.g. linux/amd64"
            )
        os_name = parts[0].lower()
        arch = parts[1].lower()
        if os_name not in KNOWN_OS:
            raise InvalidPlatformError(
                f"unknown operating system {parts[0]!r} in platform {text!r}"
            )
        arch = _ARCH_ALIASES.get(arch, arch)
        if arch not in KNOWN_ARCH:
            raise InvalidPlatformError(f"unknown architecture {parts[1]!r} in platform {text!r}")
        variant = parts[2].lower() if len(parts) == 3 else None
        return cls(os_name, arch, variant).normalized()

    @classmethod
    def host(cls) -> Platform:
        machine = _pyplatform.machine().lower() or "amd64"
        arch = _ARCH_ALIASES.get(machine, machine)
        if arch.startswith("armv7"):
            return cls("linux", "arm", "v7")
        if arch.startswith("armv6"):
            return cls("linux", "arm", "v6")
        return cls("linux", arch if arch in KNOWN_ARCH else "amd64").normalized()

    @classmethod
    def from_dict(cls, data: object) -> Platform:
        if not isinstance(data, dict):
            raise InvalidPlatformError("platform must be a JSON object")
        os_name = data.get("os")
        arch = data.get("architecture")
        if not isinstance(os_name, str) or not isinstance(arch, str):
            raise InvalidPlatformError("platform needs string 'os' and 'architecture'")
        variant = data.get("variant")
        features = data.get("os.features") or ()
        return cls(
            os_name,
            arch,
            variant if isinstance(variant, str) and variant else None,
            data.get("os.version") if isinstance(data.get("os.version"), str) else None,
            tuple(f for f in features if isinstance(f, str)) if isinstance(features, list) else (),
        )

    def normalized(self) -> Platform:
        arch = _ARCH_ALIASES.get(self.architecture, self.architecture)
        variant = self.variant
        if arch == "arm64" and variant in (None, "v8", "8"):
            variant = None
        if arch == "arm" and variant in (None, "7"):
            variant = "v7" if variant is None or variant == "7" else variant
        if arch == "arm" and variant in ("6", "5", "8"):
            variant = "v" + variant
        if arch == "amd64" and variant == "v1":
            variant = None
        return Platform(self.os, arch, variant, self.os_version, self.os_features)

    def to_dict(self) -> JSONObject:
        out: JSONObject = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        return out

    def matches(self, other: Platform) -> bool:
        a, b = self.normalized(), other.normalized()
        return a.os == b.os and a.architecture == b.architecture and a.variant == b.variant

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


ALL_PLATFORMS = "all"


def parse_platforms(text: str) -> tuple[Platform, ...]:
    """``os/arch[/variant]`` or a comma-separated list of them, each once in the order
    given (``linux/arm64,linux/arm64/v8`` is one platform).  ``all`` is the caller's
    to handle: here it is no platform."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidPlatformError("platform is empty; expected OS/ARCH[/VARIANT]")
    found: list[Platform] = []
    for part in text.split(","):
        if not part.strip():
            raise InvalidPlatformError(
                f"empty platform in the list {text[:80]!r}; expected OS/ARCH[/VARIANT],...")
        if part.strip().lower() == ALL_PLATFORMS:
            raise InvalidPlatformError(
                f"'all' cannot be combined with other platforms ({text[:80]!r})")
        platform = Platform.parse(part)
        if not any(platform.matches(seen) for seen in found):
            found.append(platform)
    return tuple(found)
