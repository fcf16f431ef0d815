"""Record keys: a sha256 of canonical JSON of plain data, never of a repr.

A key names everything that decides a record's content (code, library versions,
settings, rules, the state of the sources).  It is built from plain data only,
so it does not change when a class's repr does and cannot hold an address: a
dataclass is the fields it was made from, a function its qualified name (its
code is in the key through ``code_fingerprint``), a regex its pattern and flags,
bytes their hex; a set is sorted.  Anything else is a TypeError rather than a
silently unstable key.  ``KEY_FORMAT`` changes when the way keys are made does:
records under old keys are then simply never found again.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import os
import re
import types
from collections.abc import Mapping

from ..model.jsonutil import JSONValue, canonical

KEY_FORMAT = 2


def plain(value: object) -> JSONValue:
    """``value`` as JSON data, the same for equal values on every machine and run."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, bytes | bytearray):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, os.PathLike):
        return os.fsdecode(value)
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((plain(item) for item in value), key=canonical)
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else canonical(plain(k)).decode(): plain(v)
                for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        doc: dict[str, JSONValue] = {"dataclass": _name(type(value))}
        for item in dataclasses.fields(value):
            if item.init:   # what it was made from; the rest is derived from that
                doc[item.name] = plain(getattr(value, item.name))
        return doc
    if isinstance(value, re.Pattern):
        return {"regex": plain(value.pattern), "flags": value.flags}
    if isinstance(value, types.FunctionType | types.BuiltinFunctionType):
        return {"function": _name(value)}
    raise TypeError(f"{type(value).__name__} is no plain data for a cache key")


def _name(thing: type | types.FunctionType | types.BuiltinFunctionType) -> str:
    return f"{thing.__module__}.{thing.__qualname__}"


def key_text(*parts: object) -> str:
    """``parts`` as one canonical JSON text (for a key part made of several values)."""
    return canonical([plain(part) for part in parts]).decode()


def record_name(*parts: object) -> str:
    """The file name of the record keyed by ``parts``: a sha256 of their canonical JSON."""
    return hashlib.sha256(canonical([KEY_FORMAT, *(plain(p) for p in parts)])).hexdigest()
