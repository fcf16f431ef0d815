"""Database tables snapshotted as CSV or Parquet files, byte for byte reproducible.

Rows travel from the database driver (ADBC) to the file as Arrow record
batches, a bounded number at a time, so memory stays flat whatever the table's
size.  All tables of one export that name the same database URL are read
through one connection inside one read transaction (``TableExport``): they
come from one consistent snapshot even while the database is being written.
Row order: a named table ``ORDER BY`` its primary key (else every column); a
query as written, with a warning when it has no ORDER BY.  Passwords from the
URL never appear in errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ...errors import OperationError
from ...model.digest import Digest, HashingWriter, copy_stream
from ...progress.events import Progress, Task
from ..dburl import DatabaseURL, parse_db_url
from ..spec import TableSpec
from .files import TableFile, open_file, write_all
from .source import Source, require_arrow


@dataclass(frozen=True)
class TableSnapshot:
    spec: TableSpec
    source_shown: str       # the URL with its password masked
    path: Path              # the written file
    rows: int
    columns: tuple[str, ...]
    digest: Digest
    size: int
    warnings: tuple[str, ...] = ()


def require_pyarrow() -> None:
    require_arrow("tables")


def open_database(spec: TableSpec, app_root: Path, where: str,
                  table_where: str | None = None) -> DatabaseURL:
    """Parse the URL, check the database can be reached and holds the named table, or
    can run the query (prepared, not run): exit 2 if not, before any work.  ``where``
    names the ``source`` key in messages, ``table_where`` the ``table`` or ``query``."""
    db = parse_db_url(spec.source, app_root, where)
    source = Source(db, spec.name, where)
    try:
        if spec.table is not None:
            source.check_table(spec.table, table_where or where)
        elif spec.query is not None:
            source.check_query(spec.query, table_where or where)
    finally:
        source.close()
    return db


class TableExport:
    """The tables of one export: one open Source (one snapshot) per database URL.

    Each read of a table is a ``table`` progress task: rows, and the bytes of row
    data read (the total is not known beforehand).
    """

    def __init__(self, app_root: Path, progress: Progress | None = None):
        self.app_root = app_root
        self.progress = progress or Progress()
        self._sources: dict[str, Source] = {}

    def __enter__(self) -> TableExport:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        sources, self._sources = self._sources, {}
        for source in sources.values():
            source.close()

    def _source(self, spec: TableSpec, where: str) -> Source:
        db = parse_db_url(spec.source, self.app_root, where)
        if spec.source not in self._sources:
            self._sources[spec.source] = Source(db, spec.name)
        return self._sources[spec.source]

    def snapshot(self, spec: TableSpec, out_dir: Path, where: str) -> TableSnapshot:
        """Read one table and write it as ``out_dir/<name>.<format>``."""
        return self.snapshot_all([(spec, out_dir, where)])[0]

    def snapshot_all(self, jobs: Sequence[tuple[TableSpec, Path, str]]) -> list[TableSnapshot]:
        """Each (spec, folder, where) written as ``folder/<name>.<format>``, in order.

        Entries that read the same rows (same source, same table or query) are read
        once and written in each of their formats from the same batches.
        """
        groups: dict[tuple[str, str | None, str | None], list[int]] = {}
        for i, (spec, _, _) in enumerate(jobs):
            groups.setdefault((spec.source, spec.table, spec.query), []).append(i)
        done: dict[int, TableSnapshot] = {}
        for members in groups.values():
            for i, snap in zip(members, self._write([jobs[i] for i in members]), strict=True):
                done[i] = snap
        return [done[i] for i in range(len(jobs))]

    def _write(self, jobs: Sequence[tuple[TableSpec, Path, str]]) -> list[TableSnapshot]:
        first = jobs[0][0]
        names = ", ".join(dict.fromkeys(spec.name for spec, _, _ in jobs))
        with self.progress.task("table", first.name, label=names) as task:
            return self._write_counted(jobs, task)

    def _write_counted(self, jobs: Sequence[tuple[TableSpec, Path, str]], task: Task
                       ) -> list[TableSnapshot]:
        first, _, where = jobs[0]
        source = self._source(first, where)
        result = source.read(first, where)
        paths = [folder / f"{spec.name}.{spec.format}" for spec, folder, _ in jobs]
        files: list[TableFile] = []
        try:
            for (spec, _, _), path in zip(jobs, paths, strict=True):
                files.append(open_file(spec.format, result.conformer.schema, path))
            write_all(_counted(result.batches, task), files)
        except BaseException as exc:
            result.close()
            for path in paths:
                path.unlink(missing_ok=True)
            if isinstance(exc, OSError) or type(exc).__module__.startswith("pyarrow"):
                raise OperationError(f"table {first.name!r}: writing failed: "
                                     f"{source.db.scrub(str(exc))}") from None
            raise
        out = []
        for (spec, _, _), path, file in zip(jobs, paths, files, strict=True):
            digest, size = _hash_file(path)
            out.append(TableSnapshot(spec, source.db.shown, path, file.rows,
                                     result.conformer.names, digest, size, result.warnings))
        return out


def _counted(batches: Iterable[Any], task: Task) -> Iterator[Any]:
    for batch in batches:
        task.advance(batch.nbytes, rows=batch.num_rows)
        yield batch


def snapshot_table(spec: TableSpec, app_root: Path, out_dir: Path, where: str) -> TableSnapshot:
    """One table on its own (its own connection and snapshot)."""
    with TableExport(app_root) as tables:
        return tables.snapshot(spec, out_dir, where)


def _hash_file(path: Path) -> tuple[Digest, int]:
    hasher = HashingWriter()
    with open(path, "rb") as f:
        copy_stream(f, hasher)
    return hasher.digest, hasher.size
