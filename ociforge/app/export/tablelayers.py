"""One layer per ``[[tables]]`` entry: a snapshot of the table as a file, reused
from the cache while a SQLite file proves unchanged."""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from pathlib import Path

from ...cache import tables as table_cache
from ...display import plural
from ...layers.build import BuildResult, BuildSettings, LayerSource, build_layer
from ...model.jsonutil import JSONObject
from ...model.layer import Layer
from ...progress.events import NULL_TASK, Progress, Task
from ..dburl import parse_db_url
from ..spec import AppSpec, TableSpec
from ..tables import TableExport, TableSnapshot, open_database, require_pyarrow, snapshot_table
from .api import ExportPlan
from .built import Built

log = logging.getLogger("ociforge.export")


# The modules whose code decides a table snapshot's bytes (the cache key holds their source).
TABLE_READERS = ("ociforge.app.tables.snapshot", "ociforge.app.tables.source",
                 "ociforge.app.tables.files", "ociforge.app.tables.columns", "ociforge.app.dburl")


def check_tables(spec: AppSpec) -> None:
    """Every table's database opens (and pyarrow is there for Parquet): exit 2 before
    anything is written."""
    for i, table in enumerate(spec.tables):
        if table.format == "parquet":
            require_pyarrow()
        open_database(table, spec.root, spec.locate(("tables", i, "source")),
                      spec.locate(("tables", i, "query" if table.query else "table")))


def table_layers(plan: ExportPlan, settings: BuildSettings, tmp: Path) -> list[Built]:
    """One layer per table.  The tables of one database come from one snapshot: a SQLite
    database's tables are reused from the cache only when every one of them can be
    (the file proves unchanged), else all of them are read again together."""
    tables = plan.spec.tables
    where = [plan.spec.locate(("tables", i, "query" if table.query else "table"))
             for i, table in enumerate(tables)]
    entries = [_table_entry(plan, table, settings, w) for table, w in zip(tables, where,
                                                                         strict=True)]
    hits: dict[int, tuple[BuildResult, JSONObject]] = {}
    for i, entry in enumerate(entries):
        if entry is not None:
            again = functools.partial(_table_again, plan, tables[i], settings, where[i])
            reused = table_cache.reuse(entry, again)
            if reused is not None and isinstance(reused[1].get("table"), dict):
                hits[i] = (reused[0], reused[1])
    by_source: dict[str, list[int]] = {}
    for i, table in enumerate(tables):
        by_source.setdefault(table.source, []).append(i)
    done: dict[int, tuple[BuildResult, JSONObject]] = {}
    jobs: list[int] = []
    for members in by_source.values():
        if all(i in hits for i in members):
            done.update((i, hits[i]) for i in members)
        else:
            jobs += members
    if jobs:
        log.info("reading %s", plural(len(jobs), "table"))
        for i in jobs:
            (tmp / str(i)).mkdir()
        progress = Progress.of(plan.options)
        with TableExport(plan.spec.root, progress) as export:  # one snapshot per database
            snaps = export.snapshot_all([(tables[i], tmp / str(i), where[i]) for i in jobs])
        for i, snap in zip(jobs, snaps, strict=True):
            with progress.task("build", f"table layer {snap.spec.name}") as task:
                done[i] = _snapshot_layer(snap, settings, task)
            entry = entries[i]
            if entry is not None:
                table_cache.store(entry, *done[i])
    out = []
    for i, table in enumerate(tables):
        result, meta = done[i]
        out.append(Built("table", table.name, result, table=meta))
    return out


def _snapshot_layer(snap: TableSnapshot, settings: BuildSettings, progress: Task = NULL_TASK
                    ) -> tuple[BuildResult, JSONObject]:
    """A table file's layer, and what the report says of it (its entry and warnings)."""
    os.chmod(snap.path, 0o644)  # the umask must not change the layer's bytes
    result = build_layer([LayerSource(snap.path, snap.spec.dest)], settings, progress=progress)
    table = snap.spec
    entry: JSONObject = {"name": table.name, "source": snap.source_shown,
                         "format": table.format, "dest": table.dest, "rows": snap.rows,
                         "columns": list(snap.columns), "digest": str(snap.digest),
                         "size": snap.size}
    return result, {"table": entry, "warnings": list(snap.warnings)}


def _table_again(plan: ExportPlan, table: TableSpec, settings: BuildSettings,
                 where: str) -> Layer:
    """A reused table layer whose cached blob turned out damaged: read the table again."""
    with tempfile.TemporaryDirectory(prefix="ociforge-tables-") as folder:
        snap = snapshot_table(table, plan.spec.root, Path(folder), where)
        return _snapshot_layer(snap, settings)[0].layer


def _table_entry(plan: ExportPlan, table: TableSpec, settings: BuildSettings,
                 where: str) -> table_cache.TableEntry | None:
    """A SQLite table's cache entry; None for a database server (always read again)."""
    if plan.cache is None:
        return None
    db = parse_db_url(table.source, plan.spec.root, where)
    if db.kind != "sqlite" or db.path is None:
        return None
    parts = [table.name, table.source, table.table or "", table.query or "", table.format,
             table.dest, str(db.path.resolve())]
    return table_cache.table_entry(plan.cache, db.path, parts, settings,
                                   f"table {table.name}", table.format == "parquet",
                                   TABLE_READERS)
