"""Python distributions: ``*.dist-info/METADATA`` and ``*.egg-info/PKG-INFO`` (or an
``.egg-info`` file), read with ``packaging.metadata``.

The license is, in this order: ``License-Expression`` (PEP 639); a short ``License``
field that names SPDX licenses only; the license classifiers with one reading; the
``License`` field as a LicenseRef with its text.  Whatever is chosen, every statement
that says proprietary (``License :: Other/Proprietary License``, ``License:
Proprietary``) is kept as evidence.
"""

from __future__ import annotations

from .licenses import Licensing
from .model import NOASSERTION, Found, License, Record
from .reader import MetadataError, Reader


def _wants(path: str) -> bool:
    return (path.endswith((".dist-info/METADATA", ".egg-info/PKG-INFO"))
            or (path.endswith(".egg-info") and "/" in path))


def _headers(data: bytes) -> str:
    """The header block (the long description after it is not needed)."""
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    head, _, _ = text.partition("\n\n")
    return head + "\n"


def _parse(path: str, data: bytes, licensing: Licensing) -> Record | None:
    from packaging.metadata import parse_email

    raw, _ = parse_email(_headers(data))
    name, version = raw.get("name"), raw.get("version")
    if not name or not version:
        raise MetadataError("no Name or Version")
    return Found("python", name.strip(), version.strip(),
                 choose_license(raw.get("license_expression"), raw.get("license"),
                                raw.get("classifiers") or [], licensing))


def choose_license(expression: str | None, field: str | None, classifiers: list[str],
                   licensing: Licensing) -> License:
    from_expression = licensing.statement(expression, "License-Expression")
    from_field = licensing.statement(field, "License")
    license_classifiers = [c for c in classifiers if c.strip().startswith("License ::")]
    from_classifiers = licensing.classifiers(license_classifiers)
    if from_expression.expression != NOASSERTION.expression:
        chosen = from_expression
    elif from_field.expression != NOASSERTION.expression and not from_field.refs:
        chosen = from_field
    elif from_classifiers.expression != NOASSERTION.expression:
        chosen = from_classifiers
    else:
        chosen = from_field
    proprietary = tuple(dict.fromkeys(
        e for lic in (from_expression, from_field, from_classifiers) for e in lic.proprietary))
    if proprietary != chosen.proprietary:
        evidence = tuple(dict.fromkeys(chosen.evidence + proprietary))
        chosen = License(chosen.expression, chosen.refs, evidence, proprietary)
    return chosen


READERS = (
    Reader("python", _wants, _parse, basenames=frozenset({"METADATA", "PKG-INFO"}),
           suffixes=(".egg-info",), limit=1 << 20, whole=False),
)
