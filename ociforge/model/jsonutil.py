"""Canonical JSON for documents we generate, and bounded parsing of ones we read."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from ..errors import InvalidInputError

JSONValue: TypeAlias = (
    "str | int | float | bool | Sequence[JSONValue] | Mapping[str, JSONValue] | None")
"""A value as JSON carries it (read-only containers, so ``list[str]`` is one too)."""
JSONObject: TypeAlias = "dict[str, JSONValue]"
"""A JSON object: a parsed document, a ``to_dict()``, what --json prints."""

# Registries refuse manifests over 4 MiB; we apply the same bound to what we read.
MAX_DOCUMENT = 4 << 20


def canonical(obj: Any) -> bytes:
    """Sorted keys, no insignificant space, UTF-8: the same object gives the same bytes.

    A string holding a lone surrogate (a document we read had ``"\\udcff"``) has no
    UTF-8 form; such a document is written with ``\\uXXXX`` escapes throughout
    (ASCII, still the same bytes for the same object) instead of failing."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def pretty(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False)


def parse_object(data: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object of at most MAX_DOCUMENT bytes, or raise InvalidInputError."""
    if len(data) > MAX_DOCUMENT:
        raise InvalidInputError(f"{what} is {len(data)} bytes, over the {MAX_DOCUMENT} byte limit")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInputError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidInputError(f"{what} is not a JSON object")
    return obj
