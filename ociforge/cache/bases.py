"""Base layers scanned once per rule set: the scan's verdict (and a rewritten blob) by digest.

A base layer is content-addressed, so what the license and secret rules make
of it depends only on its digest, the rules, the rewrite settings and the
code that scans and rewrites.  The record keeps the uncompressed digest (the
caller still compares it with the image config's diff_id), the entry count,
what was left out, the scan's warnings (text files longer than the token scan
reads), and the rewritten layer when one was needed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInputError
from ..model.digest import Digest
from ..model.layer import Layer
from .fingerprint import code_fingerprint
from .keys import plain, record_name
from .layers import LAYER_WRITERS, compressor_versions, reused_layer, stored_layer
from .store import Cache

log = logging.getLogger("ociforge.cache")

FORMAT = "base-2"
READERS = ("ociforge.layers.tarsafe", "ociforge.layers.decompress")


@dataclass(frozen=True)
class ScanRecord:
    diff_id: Digest
    entries: int
    left_out: tuple[tuple[str, str], ...]       # (path, rule)
    rewritten: Layer | None
    warnings: tuple[str, ...]


def scan_key(layer: Layer, rules: object, compression: str, settings: object,
             scanners: tuple[str, ...]) -> str:
    """``rules`` and ``settings``: everything the scan and rewrite decide by (plain data,
    or values ``keys.plain`` makes it of); ``scanners``: the modules (by name) of the
    caller's scanning and rewriting code."""
    return record_name(FORMAT, code_fingerprint(scanners + READERS + LAYER_WRITERS),
                       compressor_versions(compression), plain(settings), plain(rules),
                       str(layer.digest), layer.media_type)


def reused_scan(cache: Cache, key: str, rewrite: Callable[[], Layer],
                what: str) -> ScanRecord | None:
    doc = cache.record("bases", key)
    if doc is None:
        return None
    try:
        diff_id = Digest.parse(doc["diff_id"])
        entries = int(doc["entries"])
        left_out = tuple((str(p), str(r)) for p, r in doc["left_out"])
        warnings = tuple(str(w) for w in doc["warnings"])
    except (KeyError, TypeError, ValueError, InvalidInputError):
        cache.drop_record("bases", key)
        return None
    rewritten = None
    if doc.get("rewritten") is not None:
        rewritten = reused_layer(cache, doc["rewritten"], rewrite, f"rewritten {what}")
        if rewritten is None:
            cache.drop_record("bases", key)
            return None
    log.info("%s: scan reused from the cache", what)
    return ScanRecord(diff_id, entries, left_out, rewritten, warnings)


def store_scan(cache: Cache, key: str, diff_id: Digest, entries: int,
               left_out: list[tuple[str, str]], rewritten: Layer | None,
               warnings: list[str]) -> None:
    doc: dict[str, Any] = {"format": FORMAT, "diff_id": str(diff_id), "entries": entries,
                           "left_out": [list(item) for item in left_out], "rewritten": None,
                           "warnings": list(warnings), "blobs": []}
    if rewritten is not None:
        entry = stored_layer(cache, rewritten)
        if entry is None:
            return
        doc["rewritten"] = entry
        doc["blobs"] = [str(rewritten.digest)]
    cache.put_record("bases", key, doc)
