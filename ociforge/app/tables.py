"""Database tables snapshotted as CSV or Parquet files, byte for byte reproducible.

Rows are read in batches (never a whole table in memory) from SQLite or
PostgreSQL and written to one file.  Determinism: a named table is read
``ORDER BY`` its primary key (else every column); a query is used as written,
so it should carry its own ORDER BY.  CSV: header row, ``\\n`` line endings,
minimal quoting, NULL as an empty field.  Parquet: pinned writer options and no
timestamps; the pyarrow version is part of the bytes (``created_by``).
Passwords from the URL never appear in errors.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import decimal
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError, OperationError
from ..model.digest import Digest, HashingWriter, copy_stream
from .dburl import DatabaseURL, parse_db_url, scrub
from .spec import TableSpec

BATCH = 5000


@dataclass(frozen=True)
class TableSnapshot:
    spec: TableSpec
    source_shown: str       # the URL with its password masked
    path: Path              # the written file
    rows: int
    columns: tuple[str, ...]
    digest: Digest
    size: int


class _Rows:
    """An open result: column names and batches of row tuples."""

    def __init__(self, columns: Sequence[str], batches: Iterator[list[tuple[Any, ...]]]):
        self.columns = tuple(columns)
        self.batches = batches


def open_database(spec: TableSpec, app_root: Path, where: str) -> DatabaseURL:
    """Parse the URL and check the database can be reached (exit 2 if not)."""
    db = parse_db_url(spec.source, app_root, where)
    with _connect(db, spec):
        pass
    return db


@contextlib.contextmanager
def _connect(db: DatabaseURL, spec: TableSpec) -> Iterator[Any]:
    if db.kind == "sqlite":
        assert db.path is not None
        if not db.path.is_file():
            raise InvalidInputError(
                f"table {spec.name!r}: database {db.shown} does not exist ({db.path})")
        try:
            conn = sqlite3.connect(f"{db.path.resolve().as_uri()}?mode=ro", uri=True)
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise InvalidInputError(
                f"table {spec.name!r}: cannot open database {db.shown}: {exc}") from None
        try:
            yield conn
        finally:
            conn.close()
        return
    try:
        import psycopg
    except ImportError:
        raise InvalidInputError(
            f"table {spec.name!r}: PostgreSQL needs psycopg; install the extra: "
            "pip install 'ociforge[tables]'") from None
    url = db.url.replace("postgres://", "postgresql://", 1)
    try:
        pg = psycopg.connect(url, connect_timeout=10, autocommit=False)
    except psycopg.Error as exc:
        raise InvalidInputError(
            f"table {spec.name!r}: cannot connect to {db.shown}: "
            f"{scrub(str(exc).strip(), db.url)}") from None
    try:
        pg.read_only = True
        yield pg
    finally:
        pg.close()


def _quote_sqlite(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite_rows(conn: sqlite3.Connection, spec: TableSpec) -> _Rows:
    if spec.table is not None:
        info = conn.execute(f"PRAGMA table_info({_quote_sqlite(spec.table)})").fetchall()
        if not info:
            raise InvalidInputError(f"table {spec.name!r}: no table {spec.table!r} in the database")
        pk = [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5] > 0]
        order = pk or [row[1] for row in info]
        sql = (f"SELECT * FROM {_quote_sqlite(spec.table)} ORDER BY "
               + ", ".join(_quote_sqlite(c) for c in order))
    else:
        assert spec.query is not None
        sql = spec.query
    try:
        cursor = conn.execute(sql)
    except sqlite3.Error as exc:
        raise InvalidInputError(f"table {spec.name!r}: query failed: {exc}") from None
    columns = [d[0] for d in cursor.description or ()]
    return _Rows(columns, _batches(cursor))


def _batches(cursor: Any) -> Iterator[list[tuple[Any, ...]]]:
    while True:
        rows = cursor.fetchmany(BATCH)
        if not rows:
            return
        yield [tuple(r) for r in rows]


def _pg_rows(conn: Any, spec: TableSpec) -> _Rows:
    import psycopg
    from psycopg import sql as pgsql

    try:
        if spec.table is not None:
            # "schema.table" or "table", each part taken literally (case kept).
            ident = pgsql.Identifier(*spec.table.split(".", 1))
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = "
                    "i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass "
                    "AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
                    (ident.as_string(conn),))
                pk = [row[0] for row in cur.fetchall()]
            order = (pgsql.SQL(", ").join(pgsql.Identifier(c) for c in pk) if pk
                     else pgsql.SQL(", ").join(pgsql.SQL(str(i + 1)) for i in
                                               range(_pg_column_count(conn, ident))))
            query: Any = pgsql.SQL("SELECT * FROM {} ORDER BY {}").format(ident, order)
        else:
            query = spec.query
        cursor = conn.cursor(name="ociforge_export")  # server-side: rows arrive in batches
        cursor.itersize = BATCH
        cursor.execute(query)
        first = cursor.fetchmany(BATCH)
    except psycopg.Error as exc:
        raise InvalidInputError(f"table {spec.name!r}: query failed: "
                                f"{str(exc).strip().splitlines()[0]}") from None
    columns = [d.name for d in cursor.description or ()]

    def batches() -> Iterator[list[tuple[Any, ...]]]:
        if first:
            yield [tuple(r) for r in first]
            yield from _batches(cursor)

    return _Rows(columns, batches())


def _pg_column_count(conn: Any, ident: Any) -> int:
    from psycopg import sql as pgsql

    with conn.cursor() as cur:
        cur.execute(pgsql.SQL("SELECT * FROM {} LIMIT 0").format(ident))
        return len(cur.description or ())


def snapshot_table(spec: TableSpec, app_root: Path, out_dir: Path, where: str) -> TableSnapshot:
    """Read one table and write it as ``out_dir/<name>.<format>``."""
    db = parse_db_url(spec.source, app_root, where)
    writer = _write_parquet if spec.format == "parquet" else _write_csv
    if spec.format == "parquet":
        require_pyarrow()
    path = out_dir / f"{spec.name}.{spec.format}"
    with _connect(db, spec) as conn:
        rows = _sqlite_rows(conn, spec) if db.kind == "sqlite" else _pg_rows(conn, spec)
        try:
            count = writer(rows, path)
        except (sqlite3.Error, OSError) as exc:
            raise OperationError(f"table {spec.name!r}: {scrub(str(exc), db.url)}") from None
        except Exception as exc:
            if type(exc).__module__.startswith(("psycopg", "pyarrow")):
                raise OperationError(f"table {spec.name!r}: {scrub(str(exc), db.url)}") from None
            raise
    digest, size = _hash_file(path)
    return TableSnapshot(spec, db.shown, path, count, rows.columns, digest, size)


def _hash_file(path: Path) -> tuple[Digest, int]:
    hasher = HashingWriter()
    with open(path, "rb") as f:
        copy_stream(f, hasher)
    return hasher.digest, hasher.size


# -- CSV ----------------------------------------------------------------------

def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _write_csv(rows: _Rows, path: Path) -> int:
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as raw:
        out = csv.writer(raw, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        out.writerow(rows.columns)
        for batch in rows.batches:
            out.writerows([_csv_text(v) for v in row] for row in batch)
            count += len(batch)
    return count


# -- Parquet --------------------------------------------------------------------

PARQUET_OPTIONS: dict[str, Any] = {
    "version": "2.6",
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "data_page_version": "1.0",
}


def require_pyarrow() -> None:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise InvalidInputError(
            "Parquet tables need pyarrow: pip install 'ociforge[tables]' "
            "(or set format = \"csv\")") from None


def _arrow_value(value: Any) -> Any:
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, decimal.Decimal):
        return str(value)        # exact text; arrow decimals need a fixed precision
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return value


def _write_parquet(rows: _Rows, path: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = None
    writer = None
    count = 0
    try:
        for batch in rows.batches:
            columns = list(zip(*batch, strict=True)) if batch else [()] * len(rows.columns)
            if schema is None:
                fields = []
                for name, values in zip(rows.columns, columns, strict=True):
                    kind = pa.array([_arrow_value(v) for v in values]).type
                    fields.append(pa.field(name, pa.string() if pa.types.is_null(kind) else kind))
                schema = pa.schema(fields)
                writer = pq.ParquetWriter(str(path), schema, **PARQUET_OPTIONS)
            arrays = []
            for fld, values in zip(schema, columns, strict=True):
                try:
                    arrays.append(pa.array([_arrow_value(v) for v in values], type=fld.type))
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    raise InvalidInputError(
                        f"column {fld.name!r} mixes value types; CAST it in a query") from None
            assert writer is not None
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema),
                               row_group_size=BATCH)
            count += len(batch)
        if writer is None:
            schema = pa.schema([pa.field(n, pa.string()) for n in rows.columns])
            writer = pq.ParquetWriter(str(path), schema, **PARQUET_OPTIONS)
    finally:
        if writer is not None:
            writer.close()
    return count
