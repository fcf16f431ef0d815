"""Table snapshots: real SQLite files -> CSV and Parquet through the ADBC drivers, reproducibly.

PostgreSQL (a real server) is in test_tables_postgres.py; flat memory and bad queries
through `ociforge export` in test_tables_export.py.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sqlite3
import sys
from pathlib import Path

import pytest
from tools import require_module, require_tool, run

from ociforge.app.dburl import mask_url, parse_db_url, scrub
from ociforge.app.spec import TableSpec
from ociforge.app.tables import TableExport, open_database, snapshot_table
from ociforge.app.tables.files import ROW_GROUP_ROWS, write_parquet
from ociforge.errors import ConfigFileError, InvalidInputError
from ociforge.model.digest import Digest

pa = require_module("pyarrow")
pq = require_module("pyarrow.parquet")
require_module("adbc_driver_sqlite")


def make_db(path: Path, rows: list[tuple], pk: bool = True) -> None:
    conn = sqlite3.connect(path)
    key = "INTEGER PRIMARY KEY" if pk else "INTEGER"
    conn.execute(f"CREATE TABLE items (id {key}, name TEXT, price REAL, raw BLOB)")
    conn.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()


ROWS = [(2, "b,x", 1.5, b"\x00"), (1, None, None, None), (3, 'q"uote\nline', 2.0, b"ab"),
        (4, "", 0.1, b"")]


def spec(fmt: str = "csv", table: str | None = "items", query: str | None = None,
         source: str = "sqlite:///data.db", name: str = "items") -> TableSpec:
    return TableSpec(name, source, table, query, fmt, f"/data/{name}.{fmt}")


def snap(app: Path, s: TableSpec, out: Path):  # type: ignore[no-untyped-def]
    out.mkdir(exist_ok=True)
    return snapshot_table(s, app, out, "ociforge.toml")


def test_sqlite_csv_is_ordered_quoted_and_null_empty(tmp_path: Path) -> None:
    make_db(tmp_path / "data.db", ROWS)
    result = snap(tmp_path, spec(), tmp_path / "out")
    text = result.path.read_bytes()
    assert text == (b'id,name,price,raw\n'
                    b'1,,,\n'
                    b'2,"b,x",1.5,"\\x00"\n'
                    b'3,"q""uote\nline",2,"\\x6162"\n'
                    b'4,"",0.1,"\\x"\n')
    assert result.rows == 4
    assert result.columns == ("id", "name", "price", "raw")
    assert result.digest == Digest.of_bytes(text)
    assert result.size == len(text)
    assert result.warnings == ()


def test_csv_reads_back_with_pythons_csv_module(tmp_path: Path) -> None:
    make_db(tmp_path / "data.db", ROWS)
    text = snap(tmp_path, spec(), tmp_path / "out").path.read_text()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["id", "name", "price", "raw"]
    assert rows[1:] == [["1", "", "", ""], ["2", "b,x", "1.5", "\\x00"],
                        ["3", 'q"uote\nline', "2", "\\x6162"], ["4", "", "0.1", "\\x"]]


def test_csv_round_trips_through_sqlite3_import(tmp_path: Path) -> None:
    sqlite3_cli = require_tool("sqlite3")
    make_db(tmp_path / "data.db", ROWS)
    path = snap(tmp_path, spec(table=None, query="SELECT id, name, price FROM items "
                               "WHERE name IS NOT NULL ORDER BY id"), tmp_path / "out").path
    copy = tmp_path / "copy.db"
    run([sqlite3_cli, str(copy), "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, "
         "price REAL);", ".mode csv", f".import --skip 1 {path} items"])
    original = sqlite3.connect(tmp_path / "data.db").execute(
        "SELECT id, name, price FROM items WHERE name IS NOT NULL ORDER BY id").fetchall()
    assert sqlite3.connect(copy).execute("SELECT * FROM items ORDER BY id").fetchall() \
        == original


def test_sqlite_without_primary_key_is_ordered_by_all_columns(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    make_db(a / "data.db", ROWS, pk=False)
    make_db(b / "data.db", list(reversed(ROWS)), pk=False)
    for fmt in ("csv", "parquet"):
        first = snap(a, spec(fmt), a / "out")
        second = snap(b, spec(fmt), b / "out")
        assert first.path.read_bytes() == second.path.read_bytes(), fmt


def test_query_is_used_as_written_and_an_unordered_one_is_warned_about(tmp_path: Path) -> None:
    make_db(tmp_path / "data.db", ROWS)
    s = spec(table=None, query="SELECT name FROM items WHERE price > 1 ORDER BY id DESC")
    result = snap(tmp_path, s, tmp_path / "out")
    assert result.path.read_text() == 'name\n"q""uote\nline"\n"b,x"\n'
    assert result.rows == 2 and result.warnings == ()
    unordered = snap(tmp_path, spec(table=None, query="SELECT name FROM items -- ORDER BY id"),
                     tmp_path / "u")
    assert len(unordered.warnings) == 1 and "no ORDER BY" in unordered.warnings[0]


def test_parquet_is_deterministic_and_reads_back(tmp_path: Path) -> None:
    make_db(tmp_path / "data.db", ROWS)
    one = snap(tmp_path, spec("parquet"), tmp_path / "one")
    two = snap(tmp_path, spec("parquet"), tmp_path / "two")
    assert one.path.read_bytes() == two.path.read_bytes()
    assert one.digest == two.digest == Digest.of_bytes(one.path.read_bytes())
    table = pq.read_table(one.path)
    assert table.schema.types == [pa.int64(), pa.string(), pa.float64(), pa.binary()]
    assert table.to_pylist() == [
        {"id": 1, "name": None, "price": None, "raw": None},
        {"id": 2, "name": "b,x", "price": 1.5, "raw": b"\x00"},
        {"id": 3, "name": 'q"uote\nline', "price": 2.0, "raw": b"ab"},
        {"id": 4, "name": "", "price": 0.1, "raw": b""},
    ]
    meta = pq.ParquetFile(one.path).metadata
    assert meta.created_by == f"parquet-cpp-arrow version {pa.__version__.split('.')[0]}.0.0"
    assert meta.metadata is None  # no Arrow schema blob, no writer timestamps


def test_parquet_row_groups_do_not_follow_the_drivers_batches(tmp_path: Path) -> None:
    rows = ROW_GROUP_ROWS + 1000
    table = pa.table({"id": pa.array(range(rows), pa.int64()),
                      "tag": pa.array([f"t{i % 97}" for i in range(rows)])})
    outputs = []
    for size in (1024, 50_000, rows):
        path = tmp_path / f"{size}.parquet"
        assert write_parquet(iter(table.to_batches(max_chunksize=size)), table.schema,
                             path) == rows
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    meta = pq.ParquetFile(tmp_path / "1024.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == \
        [ROW_GROUP_ROWS, 1000]


def test_one_read_writes_every_format_of_the_same_rows(tmp_path: Path) -> None:
    make_db(tmp_path / "data.db", ROWS)
    jobs = []
    for i, fmt in enumerate(("parquet", "csv", "parquet")):
        (tmp_path / f"j{i}").mkdir()
        jobs.append((spec(fmt, name=f"items{i}"), tmp_path / f"j{i}", "x"))
    jobs.append((spec("csv", table=None, query="SELECT id FROM items ORDER BY id", name="ids"),
                 tmp_path / "j0", "x"))
    with TableExport(tmp_path) as tables:
        snaps = tables.snapshot_all(jobs)
    assert [s.path.name for s in snaps] == ["items0.parquet", "items1.csv", "items2.parquet",
                                            "ids.csv"]
    alone = [snap(tmp_path, spec(fmt), tmp_path / f"alone-{fmt}").path.read_bytes()
             for fmt in ("parquet", "csv")]
    assert [s.path.read_bytes() for s in snaps[:3]] == [alone[0], alone[1], alone[0]]
    assert snaps[3].path.read_text() == "id\n1\n2\n3\n4\n"
    assert [s.rows for s in snaps] == [4, 4, 4, 4]


GOLDEN_SQL = """
CREATE TABLE golden (id INTEGER PRIMARY KEY, name TEXT, amount DECIMAL(10,2), ok BOOLEAN,
                     day DATE, at TIMESTAMP, doc JSON, raw BLOB, score REAL);
INSERT INTO golden VALUES (1, 'alpha', 12.5, 1, '2024-01-03', '2024-01-03 10:00:00', '{"a":1}',
                           x'00ff', 0.25);
INSERT INTO golden VALUES (2, NULL, NULL, 0, NULL, '2024-02-29T23:59:59.5', NULL, NULL, NULL);
INSERT INTO golden VALUES (3, 'gamma, "quoted"', 7, NULL, '1999-12-31', NULL, '[1,2]', x'',
                           -1e300);
"""
# sha256 of the files written from GOLDEN_SQL (pyarrow series in pyproject's tables extra).
# After an intended change of format or of the pinned pyarrow series, update these and
# say why in the commit.
GOLDEN = {
    "csv": "26fd7c3858273b205220c31088c0e4d2da240abfcc5d6a46a1f058c92d5ef546",
    "parquet": "3e9675629fafe19ec4d685bc29a13ee35a2b9270967638e42cafff5abe32bca7",
}


def test_files_are_golden(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "data.db")
    conn.executescript(GOLDEN_SQL)
    conn.close()
    got = {}
    for fmt in ("csv", "parquet"):
        path = snap(tmp_path, spec(fmt, table="golden", name="golden"), tmp_path / fmt).path
        got[fmt] = hashlib.sha256(path.read_bytes()).hexdigest()
    assert got == GOLDEN, "table file bytes drifted (pyarrow or writer settings changed?)"


def test_sqlite_declared_types_become_file_types(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "data.db")
    conn.executescript(GOLDEN_SQL + "CREATE TABLE t2 (k SMALLINT PRIMARY KEY, tm TIME, "
                       "tz TIMESTAMPTZ, u UUID, big NUMERIC(50,10), v VARCHAR(5));"
                       "INSERT INTO t2 VALUES (1, '10:11:12.5', '2024-01-03 10:00:00+02:00', "
                       "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 1.5, 'x');")
    conn.close()
    golden = pq.read_table(snap(tmp_path, spec("parquet", table="golden", name="golden"),
                                tmp_path / "g").path)
    assert dict(zip(golden.column_names, golden.schema.types, strict=True)) == {
        "id": pa.int64(), "name": pa.string(), "amount": pa.decimal128(10, 2),
        "ok": pa.bool_(), "day": pa.date32(), "at": pa.timestamp("us"), "doc": pa.string(),
        "raw": pa.binary(), "score": pa.float64()}
    import datetime
    import decimal

    first, second, third = golden.to_pylist()
    assert first["amount"] == decimal.Decimal("12.50") and first["ok"] is True
    assert second["at"] == datetime.datetime(2024, 2, 29, 23, 59, 59, 500000)
    assert third["amount"] == decimal.Decimal("7.00") and third["raw"] == b""
    other = pq.read_table(snap(tmp_path, spec("parquet", table="t2", name="t2"),
                               tmp_path / "t2").path)
    assert other.schema.types == [pa.int16(), pa.time64("us"), pa.timestamp("us", tz="UTC"),
                                  pa.string(), pa.decimal256(50, 10), pa.string()]
    row = other.to_pylist()[0]
    assert row["tm"] == datetime.time(10, 11, 12, 500000)
    assert row["tz"] == datetime.datetime(2024, 1, 3, 8, 0, tzinfo=datetime.UTC)
    csv_text = snap(tmp_path, spec("csv", table="golden", name="golden"),
                    tmp_path / "c").path.read_text()
    assert csv_text.splitlines()[1] == \
        '1,"alpha",12.50,true,2024-01-03,"2024-01-03T10:00:00.000000","{""a"":1}","\\x00ff",0.25'
    # a query's columns that come straight from a table keep their declared types
    query = spec("parquet", table=None, query="SELECT amount, ok, id + 1 AS next FROM golden "
                 "ORDER BY id", name="q")
    assert pq.read_table(snap(tmp_path, query, tmp_path / "q").path).schema.types == \
        [pa.decimal128(10, 2), pa.bool_(), pa.int64()]


def test_a_column_of_mixed_value_types_is_bad_input_and_nothing_is_written(
        tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "data.db")
    conn.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, v)")
    conn.executemany("INSERT INTO m VALUES (?, ?)",
                     [(i, i) for i in range(70_000)] + [(70_000, "text")])
    conn.commit()
    conn.close()
    out = tmp_path / "out"
    for fmt in ("csv", "parquet"):
        with pytest.raises(InvalidInputError, match=r"column 'v' mixes value types.*CAST"):
            snap(tmp_path, spec(fmt, table="m", name="m"), out)
        assert list(out.iterdir()) == []


def test_empty_table_still_writes_a_header_and_a_schema(tmp_path: Path) -> None:
    make_db(tmp_path / "data.db", [])
    assert snap(tmp_path, spec(), tmp_path / "out").path.read_text() == "id,name,price,raw\n"
    result = snap(tmp_path, spec("parquet"), tmp_path / "pq")
    assert result.rows == 0
    table = pq.read_table(result.path)
    assert table.num_rows == 0
    assert dict(zip(table.column_names, table.schema.types, strict=True)) == {
        "id": pa.int64(), "name": pa.string(), "price": pa.float64(), "raw": pa.binary()}


def test_missing_pyarrow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_db(tmp_path / "data.db", ROWS)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(InvalidInputError, match=r"ociforge\[tables\]"):
        snap(tmp_path, spec("parquet"), tmp_path / "out")


def test_missing_sqlite_database_and_table(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        open_database(spec(), tmp_path, "x")
    make_db(tmp_path / "data.db", ROWS)
    with pytest.raises(InvalidInputError, match="no table 'nope'"):
        snap(tmp_path, spec(table="nope"), tmp_path / "out")
    with pytest.raises(InvalidInputError, match="query failed"):
        snap(tmp_path, spec(table=None, query="SELEC nonsense"), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_relative_sqlite_path_must_stay_in_the_app(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="leaves the application folder"):
        open_database(spec(source="sqlite:///../elsewhere.db"), tmp_path, "x")


def test_absolute_sqlite_path_is_allowed(tmp_path: Path) -> None:
    make_db(tmp_path / "abs.db", ROWS)
    app = tmp_path / "app"
    app.mkdir()
    result = snap(app, spec(source=f"sqlite:///{tmp_path / 'abs.db'}"), tmp_path / "out")
    assert result.rows == 4


def test_generic_adbc_uri_reads_through_the_same_path(tmp_path: Path) -> None:
    make_db(tmp_path / "data.db", ROWS)
    native = snap(tmp_path, spec("parquet"), tmp_path / "n")
    generic = snap(tmp_path, spec("parquet", source=f"adbc:sqlite:{tmp_path / 'data.db'}"),
                   tmp_path / "g")
    assert pq.read_table(generic.path).to_pylist() == pq.read_table(native.path).to_pylist()
    assert generic.source_shown == f"adbc:sqlite:{tmp_path / 'data.db'}"


def test_generic_adbc_uri_without_its_driver_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        open_database(spec(source="adbc:snowflake://me:Sn0w-pw@acct/db/public"), tmp_path, "x")
    message = str(info.value)
    assert "adbc-driver-snowflake" in message and "pip install adbc-driver-snowflake" in message
    assert "Sn0w-pw" not in message and "adbc:snowflake://me:***@acct/db/public" in message
    db = parse_db_url("adbc:snowflake:me:Sn0w-pw@acct/db", tmp_path, "x")
    assert db.shown == "adbc:snowflake:me:***@acct/db" and db.uri == "me:Sn0w-pw@acct/db"
    assert "Sn0w-pw" not in db.scrub("login failed for me:Sn0w-pw@acct/db (Sn0w-pw)")


def test_passwords_are_masked() -> None:
    url = "postgresql://user:hunter2@db.example:5432/app"
    assert mask_url(url) == "postgresql://user:***@db.example:5432/app"
    assert "hunter2" not in scrub("auth failed for hunter2 at " + url, url)


def test_password_query_parameters_are_masked() -> None:
    url = "postgresql://db.example/app?sslmode=require&password=hun%40ter2&SSLPASSWORD=k3y"
    assert mask_url(url) == \
        "postgresql://db.example/app?sslmode=require&password=***&SSLPASSWORD=***"
    both = "postgresql://u:pw1@db/app?password=pw2&passfile=/run/pgpass"
    assert mask_url(both) == "postgresql://u:***@db/app?password=***&passfile=/run/pgpass"
    message = scrub("password authentication failed (hun@ter2, k3y) at " + url, url)
    assert "hun@ter2" not in message and "k3y" not in message and "hun%40ter2" not in message
    assert "k3y" not in parse_db_url(url, Path("/app"), "x").shown


# -- one snapshot -----------------------------------------------------------------------

WRITER = """
import pathlib, select, sqlite3, sys
path, stop = sys.argv[1], pathlib.Path(sys.argv[2])
conn = sqlite3.connect(path, timeout=60, isolation_level=None)
n = 1_000_000
asked = False
while not stop.exists():
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO orders VALUES (?, ?)", (n, f"order {n}"))
    conn.execute("INSERT INTO lines VALUES (?, ?, ?)", (n, n, 3))
    conn.execute("COMMIT")
    n += 1
    if asked:  # a commit made after the question: say how many so far
        print(n - 1_000_000, flush=True)
        asked = False
    if select.select([sys.stdin], [], [], 0)[0]:
        asked = bool(sys.stdin.readline())
print(n - 1_000_000)
"""


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_sqlite_tables_of_one_export_come_from_one_snapshot(tmp_path: Path,
                                                            journal: str) -> None:
    """A writer process inserts an order and its line in one transaction, over and over,
    while both tables are exported: the two files always hold the same orders.  Each
    export waits for a commit made after the one before it (the writer answers on a
    pipe), so the exports never see the same table and the check is never vacuous."""
    import subprocess

    path = tmp_path / "data.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode={journal}")
    conn.executescript(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, label TEXT);"
        "CREATE TABLE lines (id INTEGER PRIMARY KEY, order_id INTEGER, qty INTEGER);"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150000) "
        "INSERT INTO orders SELECT i, 'order ' || i FROM n;"
        "INSERT INTO lines SELECT id, id, 3 FROM orders;")
    conn.close()
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(stop)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def committed_since_asked() -> int:
        """Wait until the writer has committed once more after now (it keeps writing)."""
        assert writer.stdin is not None and writer.stdout is not None
        writer.stdin.write("?\n")
        writer.stdin.flush()
        answer = writer.stdout.readline()
        assert answer, "the writer process stopped"
        return int(answer)

    counts = []
    try:
        while len(counts) < 6:
            # every export starts after a commit that the one before it could not see
            committed_since_asked()
            out = tmp_path / f"out{len(counts)}"
            out.mkdir()
            with TableExport(tmp_path) as tables:
                a = tables.snapshot(spec("parquet", table="orders", name="orders"), out, "x")
                b = tables.snapshot(spec("parquet", table="lines", name="lines"), out, "x")
            orders = pq.read_table(a.path).column("id").to_pylist()
            lines = pq.read_table(b.path).column("order_id").to_pylist()
            assert orders == lines, f"{len(orders)} orders but {len(lines)} lines"
            counts.append(len(orders))
    finally:
        stop.touch()
        written = writer.communicate(timeout=60)[0]
    assert int(written.split()[-1]) > 0
    assert counts[0] > 150_000, counts      # the writer's first commits came before
    assert counts == sorted(set(counts)), f"the writer was not writing between exports: {counts}"
