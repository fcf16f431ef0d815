"""Reading tables as Arrow record batches through ADBC drivers, inside one snapshot.

A ``Source`` is one connection to one database, opened once per export and kept
until every table from it is written, in one read transaction: PostgreSQL runs
``REPEATABLE READ, READ ONLY`` (one snapshot for all its tables), SQLite one
deferred read transaction on a read-only connection (its first read fixes what
every later read sees).  ``sqlite:///`` and ``postgresql://`` use the SQLite and
PostgreSQL drivers of the ``tables`` extra; ``adbc:DRIVER...`` any installed
``adbc-driver-DRIVER`` through the same path.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidInputError
from ..dburl import DatabaseURL
from ..spec import TableSpec
from .columns import ColumnError, Conformer, declared_type

EXTRA_HINT = "pip install 'ociforge[tables]'"

# Rows per batch the SQLite driver hands over (its default, 1024, costs ~15 % more
# per row in call overhead; the batch is transient and small at this size).
SQLITE_BATCH_ROWS = 65_536
SQLITE_BUSY_MS = 30_000


def require_arrow(what: str) -> None:
    try:
        import pyarrow.csv
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise InvalidInputError(f"{what} needs pyarrow: {EXTRA_HINT}") from None


def _driver(db: DatabaseURL, label: str, at: str = "") -> Any:
    require_arrow(f"table {label!r}")
    package = f"adbc-driver-{db.driver.replace('_', '-')}"
    try:
        return importlib.import_module(f"adbc_driver_{db.driver}.dbapi")
    except ImportError:
        hint = EXTRA_HINT if db.kind != "adbc" else f"pip install {package}"
        raise InvalidInputError(f"{at}table {label!r}: {db.shown} needs the ADBC driver "
                                f"{package}: {hint}") from None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qualified(table: str) -> tuple[str | None, str]:
    """``schema.table`` or ``table``, each part taken literally (case kept)."""
    schema, dot, name = table.partition(".")
    return (schema, name) if dot else (None, table)


_COMMENT_OR_LITERAL = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"",
                                 re.S)


def has_order_by(query: str) -> bool:
    """True when the query (outside literals and comments) says ORDER BY."""
    return re.search(r"(?i)\border\s+by\b", _COMMENT_OR_LITERAL.sub(" ", query)) is not None


@dataclass
class Result:
    """One table being read: its exported schema and its batches (read lazily)."""

    conformer: Conformer
    batches: Iterator[Any]
    warnings: tuple[str, ...]

    def close(self) -> None:
        """Stop reading early (the cursor is released)."""
        close = getattr(self.batches, "close", None)
        if close is not None:
            close()


class Source:
    """One ADBC connection, one read transaction, any number of tables.

    ``where`` (``ociforge.toml:LINE: tables[i].source``) starts the messages about the
    database itself: missing, unreachable, refusing."""

    def __init__(self, db: DatabaseURL, label: str, where: str | None = None):
        self.db = db
        self.label = label
        self._at = f"{where}: " if where else ""
        self._module = module = _driver(db, label, self._at)
        if db.kind == "sqlite":
            assert db.path is not None
            if not db.path.is_file():
                raise InvalidInputError(f"{self._at}table {label!r}: database {db.shown} "
                                        f"does not exist ({db.path})")
        try:
            self.conn = module.connect(db.driver_uri, autocommit=False)
        except Exception as exc:
            raise InvalidInputError(f"{self._at}table {label!r}: cannot connect to "
                                    f"{db.shown}: {self._message(exc)}") from None
        try:
            if db.driver == "postgresql":
                self._run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            elif db.kind == "sqlite":
                # a writer's commit holds the file for a moment: wait, do not fail
                self._run(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
                self._run("SELECT 1 FROM sqlite_master LIMIT 1")  # opens and checks the file
        except InvalidInputError:
            self.close()
            raise

    def _message(self, exc: BaseException) -> str:
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        return self.db.scrub(lines[0] if lines else type(exc).__name__)

    def _run(self, sql: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
        except Exception as exc:
            raise InvalidInputError(f"{self._at}table {self.label!r}: cannot read "
                                    f"{self.db.shown}: {self._message(exc)}") from None

    def close(self) -> None:
        conn, self.conn = getattr(self, "conn", None), None
        if conn is not None:
            with contextlib.suppress(Exception):  # an aborted transaction: closing ends it
                conn.rollback()
            conn.close()

    # -- what to read ----------------------------------------------------------------

    def _primary_key(self, spec: TableSpec, schema: str | None, name: str) -> list[str]:
        assert spec.table is not None
        if self.db.driver == "postgresql":
            ident = ".".join(_quote(p) for p in ((schema, name) if schema else (name,)))
            rows = self._run(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = "
                "i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass($1) "
                "AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)", (ident,))
            return [str(r[0]) for r in rows]
        try:
            objects = self.conn.adbc_get_objects(
                depth="all", db_schema_filter=schema, table_name_filter=name).read_all()
        except Exception:
            return []
        for catalog in objects.to_pylist():
            for db_schema in catalog.get("catalog_db_schemas") or []:
                if schema is not None and db_schema.get("db_schema_name") != schema:
                    continue
                for table in db_schema.get("db_schema_tables") or []:
                    if table.get("table_name") != name:
                        continue
                    for constraint in table.get("table_constraints") or []:
                        if constraint.get("constraint_type") == "PRIMARY KEY":
                            return list(constraint.get("constraint_column_names") or [])
        return []

    def _table_sql(self, spec: TableSpec) -> str:
        assert spec.table is not None
        schema, name = _qualified(spec.table)
        try:
            columns = self.conn.adbc_get_table_schema(name, db_schema_filter=schema)
        except Exception:
            raise InvalidInputError(f"table {self.label!r}: no table {spec.table!r} in "
                                    f"{self.db.shown}") from None
        target = ".".join(_quote(p) for p in ((schema, name) if schema else (name,)))
        key = self._primary_key(spec, schema, name)
        if key:
            order = [_quote(c) for c in key]
        else:  # every column; types without an ordering (json) by their text
            import pyarrow as pa

            order = [f"CAST({_quote(f.name)} AS TEXT)"
                     if isinstance(f.type, pa.BaseExtensionType) else _quote(f.name)
                     for f in columns]
        return f"SELECT * FROM {target} ORDER BY {', '.join(order)}"

    def _declared(self, spec: TableSpec) -> dict[str, Any]:
        """SQLite's declared column types, for the columns that come straight from a table.

        Asked through the same connection: a second SQLite library in this process
        (Python's sqlite3) would drop this connection's file locks when it unlocks.
        """
        if self.db.kind != "sqlite":
            return {}
        if spec.table is not None:
            schema, name = _qualified(spec.table)
            prefix = f"{_quote(schema)}." if schema else ""
            rows = self._try(f"PRAGMA {prefix}table_info({_quote(name)})")
        else:
            assert spec.query is not None
            self._try("DROP VIEW IF EXISTS temp.ociforge_describe")
            made = self._try("CREATE TEMP VIEW ociforge_describe AS "
                             + spec.query.strip().rstrip(";"))
            rows = self._try("PRAGMA temp.table_info(ociforge_describe)") \
                if made is not None else None
            self._try("DROP VIEW IF EXISTS temp.ociforge_describe")
        out = {}
        for row in rows or []:  # not describable (an unusual query): the driver's types stand
            kind = declared_type(str(row[2] or ""))
            if kind is not None:
                out[str(row[1])] = kind
        return out

    def _try(self, sql: str) -> list[tuple[Any, ...]] | None:
        try:
            return self._run(sql)
        except InvalidInputError:
            return None

    # -- reading ----------------------------------------------------------------------

    def check_table(self, table: str, where: str) -> None:
        """Refuse (exit 2) a ``table`` the database does not hold, with a did-you-mean."""
        schema, name = _qualified(table)
        try:
            objects = self.conn.adbc_get_objects(depth="tables",
                                                 db_schema_filter=schema).read_all()
        except Exception:
            return  # the driver cannot list: reading the table will tell
        names: list[str] = []
        for catalog in objects.to_pylist():
            for db_schema in catalog.get("catalog_db_schemas") or []:
                for found in db_schema.get("db_schema_tables") or []:
                    if isinstance(found.get("table_name"), str):
                        names.append(found["table_name"])
        if name in names:
            return
        import difflib

        guess = difflib.get_close_matches(name, names, 1, 0.6)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        raise InvalidInputError(f"{where}: no table {table!r} in {self.db.shown}{hint}; "
                                f"tables: {', '.join(sorted(names)[:20]) or 'none'}")

    def check_query(self, query: str, where: str) -> None:
        """Refuse (exit 2) a query the database cannot run: it is prepared, which parses it
        and resolves its tables and columns, and not run.  A driver that cannot prepare
        leaves the query to the read."""
        cur = self.conn.cursor()
        try:
            cur.adbc_prepare(query)
        except Exception as exc:
            if isinstance(exc, getattr(self._module, "NotSupportedError", ())):
                return
            raise InvalidInputError(f"{where}: query failed: {self._message(exc)}") from None
        finally:
            with contextlib.suppress(Exception):
                cur.close()

    def read(self, spec: TableSpec, where: str | None = None) -> Result:
        warnings: list[str] = []
        if spec.table is not None:
            sql = self._table_sql(spec)
        else:
            assert spec.query is not None
            sql = spec.query
            if not has_order_by(sql):
                warnings.append(f"table {spec.name!r}: the query has no ORDER BY, so the row "
                                "order (and the file's bytes) may differ between exports")
        declared = self._declared(spec)
        cur = self.conn.cursor()
        try:
            if self.db.kind == "sqlite":
                cur.adbc_statement.set_options(
                    **{"adbc.sqlite.query.batch_rows": str(SQLITE_BATCH_ROWS)})
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            conformer = Conformer(reader.schema, declared)
        except ColumnError as exc:
            cur.close()
            raise InvalidInputError(f"table {spec.name!r}: {exc}") from None
        except Exception as exc:
            cur.close()
            raise InvalidInputError(f"{where or 'table ' + repr(spec.name)}: query failed: "
                                    f"{self._message(exc)}") from None
        return Result(conformer, self._batches(spec, cur, reader, conformer), tuple(warnings))

    def _batches(self, spec: TableSpec, cur: Any, reader: Any,
                 conformer: Conformer) -> Iterator[Any]:
        try:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except Exception as exc:
                    raise InvalidInputError(f"table {spec.name!r}: reading failed: "
                                            f"{self._explain(exc, conformer)}") from None
                try:
                    yield conformer(batch)
                except ColumnError as exc:
                    raise InvalidInputError(f"table {spec.name!r}: {exc}") from None
        finally:
            cur.close()

    def _explain(self, exc: BaseException, conformer: Conformer) -> str:
        text = self._message(exc)
        mismatch = re.search(r"Type mismatch in column (\d+)", text)
        if mismatch and int(mismatch.group(1)) < len(conformer.names):
            name = conformer.names[int(mismatch.group(1))]
            return (f"column {name!r} mixes value types ({text}); give it one type with a "
                    "CAST in a query")
        return text
