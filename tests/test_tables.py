"""Table snapshots: SQLite and a real PostgreSQL server -> CSV and Parquet, reproducibly."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest
from postgres_fixtures import PASSWORD, PostgresServer
from tools import require_module

from ociforge.app.dburl import mask_url, scrub
from ociforge.app.spec import TableSpec
from ociforge.app.tables import open_database, snapshot_table
from ociforge.errors import ConfigFileError, InvalidInputError
from ociforge.model.digest import Digest


def make_db(path: Path, rows: list[tuple], pk: bool = True) -> None:
    conn = sqlite3.connect(path)
    key = "INTEGER PRIMARY KEY" if pk else "INTEGER"
    conn.execute(f"CREATE TABLE items (id {key}, name TEXT, price REAL, raw BLOB)")
    conn.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()


ROWS = [(2, "b,x", 1.5, b"\x00"), (1, None, None, None), (3, 'q"uote\nline', 2.0, b"ab")]


def spec(fmt: str = "csv", table: str | None = "items", query: str | None = None,
         source: str = "sqlite:///data.db") -> TableSpec:
    return TableSpec("items", source, table, query, fmt, f"/data/items.{fmt}")


def snap(app: Path, s: TableSpec, out: Path):  # type: ignore[no-untyped-def]
    out.mkdir(exist_ok=True)
    return snapshot_table(s, app, out, "ociforge.toml")


def test_sqlite_csv_is_ordered_quoted_and_null_empty(tmp_path: Path) -> None:
    make_db(tmp_path / "data.db", ROWS)
    result = snap(tmp_path, spec(), tmp_path / "out")
    text = result.path.read_bytes()
    assert text == (b'id,name,price,raw\n1,,,\n2,"b,x",1.5,00\n3,"q""uote\nline",2.0,6162\n')
    assert result.rows == 3
    assert result.columns == ("id", "name", "price", "raw")
    assert result.digest == Digest.of_bytes(text)
    assert result.size == len(text)


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


def test_query_is_used_as_written(tmp_path: Path) -> None:
    make_db(tmp_path / "data.db", ROWS)
    s = spec(table=None, query="SELECT name FROM items WHERE price > 1 ORDER BY id DESC")
    result = snap(tmp_path, s, tmp_path / "out")
    assert result.path.read_text() == 'name\n"q""uote\nline"\n"b,x"\n'
    assert result.rows == 2


def test_parquet_is_deterministic_and_reads_back(tmp_path: Path) -> None:
    pq = require_module("pyarrow.parquet")
    make_db(tmp_path / "data.db", ROWS)
    one = snap(tmp_path, spec("parquet"), tmp_path / "one")
    two = snap(tmp_path, spec("parquet"), tmp_path / "two")
    assert one.path.read_bytes() == two.path.read_bytes()
    assert one.digest == two.digest == Digest.of_bytes(one.path.read_bytes())
    assert pq.read_table(one.path).to_pylist() == [
        {"id": 1, "name": None, "price": None, "raw": None},
        {"id": 2, "name": "b,x", "price": 1.5, "raw": b"\x00"},
        {"id": 3, "name": 'q"uote\nline', "price": 2.0, "raw": b"ab"},
    ]


def test_empty_table_still_writes_a_header(tmp_path: Path) -> None:
    make_db(tmp_path / "data.db", [])
    assert snap(tmp_path, spec(), tmp_path / "out").path.read_text() == "id,name,price,raw\n"
    pq = require_module("pyarrow.parquet")
    result = snap(tmp_path, spec("parquet"), tmp_path / "pq")
    assert result.rows == 0
    assert pq.read_table(result.path).column_names == ["id", "name", "price", "raw"]


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


def test_relative_sqlite_path_must_stay_in_the_app(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="leaves the application folder"):
        open_database(spec(source="sqlite:///../elsewhere.db"), tmp_path, "x")


def test_absolute_sqlite_path_is_allowed(tmp_path: Path) -> None:
    make_db(tmp_path / "abs.db", ROWS)
    app = tmp_path / "app"
    app.mkdir()
    result = snap(app, spec(source=f"sqlite:///{tmp_path / 'abs.db'}"), tmp_path / "out")
    assert result.rows == 3


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
    from ociforge.app.dburl import parse_db_url

    assert "k3y" not in parse_db_url(url, Path("/app"), "x").shown


def test_unreachable_postgres_error_masks_query_passwords(tmp_path: Path) -> None:
    require_module("psycopg")
    url = "postgresql://app@127.0.0.1:1/postgres?password=qpw-77&sslpassword=spw-77"
    with pytest.raises(InvalidInputError) as info:
        open_database(spec(source=url), tmp_path, "x")
    message = str(info.value)
    assert "qpw-77" not in message and "spw-77" not in message
    assert "password=***" in message


# -- PostgreSQL ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pg_table(postgres: PostgresServer) -> PostgresServer:
    require_module("psycopg")
    postgres.psql(
        "DROP TABLE IF EXISTS orders; "
        "CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric(10,2), "
        "placed timestamp, meta jsonb, paid boolean); "
        "INSERT INTO orders VALUES "
        "(3, 'carol', 12.50, '2024-01-03 10:00:00', '{\"b\": 1, \"a\": 2}', true), "
        "(1, 'alice', NULL, '2024-01-01 09:30:00', NULL, false), "
        "(2, 'bob, jr', 7.00, NULL, '[1,2]', NULL); "
        "ALTER TABLE orders OWNER TO exporter;")
    return postgres


def test_postgres_csv_ordered_by_primary_key(tmp_path: Path, pg_table: PostgresServer) -> None:
    s = spec("csv", table="orders", source=pg_table.url)
    result = snap(tmp_path, s, tmp_path / "out")
    assert result.path.read_text() == (
        "id,customer,amount,placed,meta,paid\n"
        "1,alice,,2024-01-01T09:30:00,,false\n"
        '2,"bob, jr",7.00,,"[1,2]",\n'
        '3,carol,12.50,2024-01-03T10:00:00,"{""a"":2,""b"":1}",true\n')
    assert PASSWORD not in result.source_shown


def test_postgres_parquet_is_deterministic(tmp_path: Path, pg_table: PostgresServer) -> None:
    pq = require_module("pyarrow.parquet")
    s = spec("parquet", table="orders", source=pg_table.url)
    one = snap(tmp_path, s, tmp_path / "one")
    two = snap(tmp_path, s, tmp_path / "two")
    assert one.path.read_bytes() == two.path.read_bytes()
    rows = pq.read_table(one.path).to_pylist()
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert rows[2]["amount"] == "12.50"


def test_postgres_query(tmp_path: Path, pg_table: PostgresServer) -> None:
    s = spec("csv", table=None, query="SELECT customer FROM orders ORDER BY customer DESC",
             source=pg_table.url)
    assert snap(tmp_path, s, tmp_path / "out").path.read_text() == \
        'customer\ncarol\n"bob, jr"\nalice\n'


def test_postgres_unreachable_or_refused_hides_password(tmp_path: Path,
                                                         pg_table: PostgresServer) -> None:
    wrong_pw = pg_table.url.replace(PASSWORD, "Wr0ng-pass-9")
    with pytest.raises(InvalidInputError) as info:
        open_database(spec(source=wrong_pw), tmp_path, "x")
    assert "Wr0ng-pass-9" not in str(info.value) and "***" in str(info.value)
    from tools import free_port

    closed = pg_table.url.replace(f":{pg_table.port}/", f":{free_port()}/")
    with pytest.raises(InvalidInputError) as info:
        open_database(spec(source=closed), tmp_path, "x")
    assert PASSWORD not in str(info.value)
    assert "cannot connect to postgresql://exporter:***@127.0.0.1" in str(info.value)


def test_postgres_schema_qualified_table_without_key(tmp_path: Path,
                                                     pg_table: PostgresServer) -> None:
    pg_table.psql(
        'DROP SCHEMA IF EXISTS "Sales" CASCADE; CREATE SCHEMA "Sales" AUTHORIZATION exporter; '
        'CREATE TABLE "Sales"."Regions" (name text, code int); '
        "INSERT INTO \"Sales\".\"Regions\" VALUES ('west', 2), ('east', 1), ('east', 0); "
        'ALTER TABLE "Sales"."Regions" OWNER TO exporter;')
    s = spec("csv", table="Sales.Regions", source=pg_table.url)
    assert snap(tmp_path, s, tmp_path / "out").path.read_text() == \
        "name,code\neast,0\neast,1\nwest,2\n"
    with pytest.raises(InvalidInputError, match="query failed"):
        snap(tmp_path, spec("csv", table="nope", source=pg_table.url), tmp_path / "x")
