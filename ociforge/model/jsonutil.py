"""Canonical JSON for documents we generate, and bounded parsing of ones we read.

Every JSON document that comes from outside (a registry, a layout, an archive,
a token service, a credential helper) goes through ``loads``: bounded in size
and in nesting depth.  ``json.loads`` recurses once per level, so a few hundred
KiB of ``[`` would otherwise end in a RecursionError; the depth is checked
first, in linear time, without parsing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from itertools import accumulate
from types import MappingProxyType
from typing import Any, TypeAlias

from ..errors import InvalidInputError

JSONValue: TypeAlias = (
    "str | int | float | bool | Sequence[JSONValue] | Mapping[str, JSONValue] | None")
"""A value as JSON carries it (read-only containers, so ``list[str]`` is one too)."""
JSONObject: TypeAlias = "dict[str, JSONValue]"
"""A JSON object: a parsed document, a ``to_dict()``, what --json prints."""

# Registries refuse manifests over 4 MiB; we apply the same bound to what we read.
MAX_DOCUMENT = 4 << 20
# OCI documents nest a handful of levels; 100 leaves room for any real config or
# error detail and keeps every later walk far from Python's recursion limit.
MAX_DEPTH = 100

# A JSON string (possessive, so an unterminated one costs one pass, not one per quote).
_STRING = re.compile(r'"(?:[^"\\]++|\\.?)*+"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
_STEP = MappingProxyType({"[": 1, "{": 1, "]": -1, "}": -1})


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


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in ``text`` (brackets inside strings do not count).

    Linear and done by the regex engine: strings are cut out, then everything
    but brackets, and the running sum of +1/-1 gives the depth.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return text.count("[") + text.count("{")     # cannot be deeper than that
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def loads(data: bytes | str, what: str, limit: int = MAX_DOCUMENT) -> Any:
    """Parse untrusted JSON of at most ``limit`` bytes and MAX_DEPTH levels.

    Anything else (too large, too deep, not JSON) is an InvalidInputError
    naming ``what``: one line, never a traceback.
    """
    if len(data) > limit:
        raise InvalidInputError(f"{what} is {len(data)} bytes, over the {limit} byte limit")
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        try:
            text = raw.decode(json.detect_encoding(raw), "surrogatepass")
        except (UnicodeDecodeError, LookupError):
            raise InvalidInputError(f"{what} is not valid JSON: not UTF-8 text") from None
    else:
        text = data
    if nesting_depth(text) > MAX_DEPTH:
        raise InvalidInputError(f"{what} is not valid JSON: nested deeper than {MAX_DEPTH} "
                                "levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidInputError(f"{what} is not valid JSON: {_short(exc)}") from None


def parse_object(data: bytes | str, what: str, limit: int = MAX_DOCUMENT) -> dict[str, Any]:
    """``loads`` for a document that must be a JSON object."""
    obj = loads(data, what, limit)
    if not isinstance(obj, dict):
        raise InvalidInputError(f"{what} is not a JSON object")
    return obj


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]
