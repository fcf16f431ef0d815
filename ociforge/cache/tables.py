"""Table snapshots reused only when the database file proves unchanged.

A SQLite database is a file: its stat (and that of its -wal and -journal
files, where recent writes may still sit) says whether it changed, exactly as
for the files of a layer.  A database server cannot prove that, so its
tables are always read again (the caller asks only for file databases).
The key also holds the table's definition (URL as written, table or query,
format, destination), the build settings, and the versions that decide the
snapshot's bytes (Python, SQLite, pyarrow for Parquet).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..layers.build import BuildResult, BuildSettings
from ..model.layer import Layer
from .fingerprint import Unreadable, code_fingerprint, file_states
from .keys import record_name
from .layers import (
    LAYER_WRITERS,
    compressor_versions,
    reused_layer,
    settings_data,
    stored_layer,
    wait_out_racy,
)
from .store import Cache

log = logging.getLogger("ociforge.cache")

FORMAT = "table-1"
JOURNALS = ("", "-wal", "-journal")


@dataclass
class TableEntry:
    cache: Cache
    key: str
    watched: tuple[str, ...]
    states: tuple[str, ...]
    what: str
    storable: bool = True


def table_entry(cache: Cache | None, database: str | os.PathLike[str], parts: Sequence[str],
                settings: BuildSettings, what: str, parquet: bool,
                readers: tuple[str, ...]) -> TableEntry | None:
    """The cache entry of a table read from the SQLite file ``database`` (None: no cache);
    ``readers`` names the modules of the caller's snapshot code."""
    if cache is None:
        return None
    watched = tuple(os.fspath(database) + suffix for suffix in JOURNALS)
    try:
        states, _ = file_states(watched)
    except Unreadable:
        return None
    versions = [sys.version.split()[0], sqlite3.sqlite_version]
    if parquet:
        versions.append(_pyarrow_version())
    key = record_name(FORMAT, code_fingerprint(readers + LAYER_WRITERS),
                      compressor_versions(settings.compression), settings_data(settings),
                      *versions, *parts, *states)
    return TableEntry(cache, key, watched, tuple(states), what)


def reuse(entry: TableEntry, rebuild: Callable[[], Layer]
          ) -> tuple[BuildResult, dict[str, Any]] | None:
    """The layer and report entry of an earlier snapshot; on a miss, wait out racy times."""
    doc = entry.cache.record("tables", entry.key)
    if doc is not None and isinstance(doc.get("meta"), dict):
        layer = reused_layer(entry.cache, doc.get("layer"), rebuild, entry.what)
        if layer is not None:
            log.info("%s: reused %s from the cache", entry.what, layer.digest.short)
            return BuildResult(layer, [], []), dict(doc["meta"])
        entry.cache.drop_record("tables", entry.key)
    try:
        _, newest = file_states(entry.watched)
    except Unreadable:
        entry.storable = False
        return None
    entry.storable = wait_out_racy(newest)
    return None


def store(entry: TableEntry, result: BuildResult, meta: dict[str, Any]) -> None:
    """Keep a snapshot's layer, if the database did not change while it was read."""
    try:
        after, _ = file_states(entry.watched)
    except Unreadable:
        return
    if not entry.storable or tuple(after) != entry.states:
        log.info("%s changed while it was read; not cached", entry.what)
        return
    stored = stored_layer(entry.cache, result.layer)
    if stored is not None:
        entry.cache.put_record("tables", entry.key, {
            "format": FORMAT, "layer": stored, "meta": meta,
            "blobs": [str(result.layer.digest)]})


def _pyarrow_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return "pyarrow " + version("pyarrow")
    except PackageNotFoundError:
        return "no pyarrow"
