"""Package URLs (github.com/package-url/purl-spec) for the SBOM's external references."""

from __future__ import annotations

from urllib.parse import quote

from .model import Found, OsRelease


def _q(text: str) -> str:
    return quote(text, safe="")


def purl(found: Found, distro: OsRelease | None) -> str:
    """``pkg:<type>/<namespace>/<name>@<version>?<qualifiers>`` for a package."""
    qualifiers = dict(found.qualifiers)
    namespace = ""
    name = found.name
    kind = {"deb": "deb", "apk": "apk", "python": "pypi", "conda": "conda", "r": "cran",
            "npm": "npm", "binary": "generic"}[found.ecosystem]
    if found.ecosystem in ("deb", "apk"):
        namespace = distro.id if distro is not None else ""
        if distro is not None and distro.version_id:
            qualifiers["distro"] = f"{distro.id}-{distro.version_id}"
        qualifiers.pop("upstream", None)
    elif found.ecosystem == "python":
        import re

        name = re.sub(r"[-_.]+", "-", name).lower()
    elif found.ecosystem == "npm" and name.startswith("@") and "/" in name:
        namespace, _, name = name.partition("/")
    elif found.ecosystem == "conda":
        qualifiers = {k: v for k, v in qualifiers.items() if k in ("build", "channel", "subdir")}
    path = "/".join(_q(part) for part in (namespace, name) if part)
    out = f"pkg:{kind}/{path}"
    if found.version and found.version != "NOASSERTION":
        out += "@" + _q(found.version)
    if qualifiers:
        out += "?" + "&".join(f"{k}={_q(v)}" for k, v in sorted(qualifiers.items()))
    return out
