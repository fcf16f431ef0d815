"""Table snapshots from a real PostgreSQL 15 server: types kept, CSV round trips, one snapshot."""

from __future__ import annotations

import datetime
import decimal
import subprocess
import threading
from pathlib import Path

import pytest
from postgres_fixtures import PASSWORD, PG_BIN, PostgresServer
from tools import closed_port, is_root, require_module

from ociforge.app.spec import TableSpec
from ociforge.app.tables import TableExport, open_database, snapshot_table
from ociforge.errors import InvalidInputError

pa = require_module("pyarrow")
pq = require_module("pyarrow.parquet")
adbc_pg = require_module("adbc_driver_postgresql.dbapi")

TYPES_SQL = """
DROP TABLE IF EXISTS kinds;
CREATE TABLE kinds (id int8 PRIMARY KEY, n numeric(10,2), big numeric(50,10), nu numeric,
  tz timestamptz, ts timestamp, d date, tm time, b boolean, i2 int2, i4 int4, f4 float4,
  f8 float8, tx text, vc varchar(10), j json, jb jsonb, by bytea, ai int[], at text[],
  u uuid, ch char(3));
INSERT INTO kinds VALUES
 (1, 12.50, 12345678901234567890.0123456789, 3.14159265358979323846264338327950288419716939937510,
  '2024-01-03 10:00:00+02', '2024-01-03 10:00:00.123456', '2024-01-03', '10:11:12.5', true,
  1, 2, 0.1, 2.25, 'a,"b"', 'y', '{"b":1, "a":2}', '{"b":1, "a":2}', '\\x00ff', '{1,NULL,3}',
  '{a,"b,c",NULL}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ab'),
 (2, NULL, NULL, 'NaN', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL),
 (3, -0.01, 0, 0, '1999-12-31 23:59:59.999999+00', '1970-01-01', '0001-01-01', '00:00', false,
  -32768, 2147483647, -1.5, 1e300, '', '', 'null', '[]', '\\x', '{}', '{""}',
  '00000000-0000-0000-0000-000000000000', '');
ALTER TABLE kinds OWNER TO exporter;
"""


@pytest.fixture(scope="module")
def pg(postgres: PostgresServer) -> PostgresServer:
    postgres.psql(TYPES_SQL)
    return postgres


def spec(source: str, fmt: str = "csv", table: str | None = "kinds", query: str | None = None,
         name: str = "kinds") -> TableSpec:
    return TableSpec(name, source, table, query, fmt, f"/data/{name}.{fmt}")


def snap(s: TableSpec, out: Path):  # type: ignore[no-untyped-def]
    out.mkdir(exist_ok=True)
    return snapshot_table(s, Path("/nonexistent"), out, "ociforge.toml")


def test_postgres_types_are_kept_in_parquet(tmp_path: Path, pg: PostgresServer) -> None:
    one = snap(spec(pg.url, "parquet"), tmp_path / "one")
    two = snap(spec(pg.url, "parquet"), tmp_path / "two")
    assert one.path.read_bytes() == two.path.read_bytes()
    table = pq.read_table(one.path)
    assert dict(zip(table.column_names, table.schema.types, strict=True)) == {
        "id": pa.int64(), "n": pa.decimal128(10, 2), "big": pa.decimal256(50, 10),
        "nu": pa.string(), "tz": pa.timestamp("us", tz="UTC"), "ts": pa.timestamp("us"),
        "d": pa.date32(), "tm": pa.time64("us"), "b": pa.bool_(), "i2": pa.int16(),
        "i4": pa.int32(), "f4": pa.float32(), "f8": pa.float64(), "tx": pa.string(),
        "vc": pa.string(), "j": pa.string(), "jb": pa.string(), "by": pa.binary(),
        "ai": pa.list_(pa.int32()), "at": pa.list_(pa.string()), "u": pa.string(),
        "ch": pa.string()}
    first, second, third = table.to_pylist()
    assert first["n"] == decimal.Decimal("12.50")
    assert first["big"] == decimal.Decimal("12345678901234567890.0123456789")
    assert first["nu"] == "3.14159265358979323846264338327950288419716939937510"
    assert first["tz"] == datetime.datetime(2024, 1, 3, 8, 0, tzinfo=datetime.UTC)
    assert first["ts"] == datetime.datetime(2024, 1, 3, 10, 0, 0, 123456)
    assert first["tm"] == datetime.time(10, 11, 12, 500000)
    assert first["j"] == '{"b":1, "a":2}' and first["jb"] == '{"a": 2, "b": 1}'
    assert first["by"] == b"\x00\xff" and first["ai"] == [1, None, 3]
    assert first["at"] == ["a", "b,c", None]
    assert first["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" and first["ch"] == "ab "
    assert all(v is None for k, v in second.items() if k not in ("id", "nu"))
    assert second["nu"].lower() == "nan"
    assert third["tx"] == "" and third["by"] == b"" and third["ai"] == [] and third["at"] == [""]
    assert third["d"] == datetime.date(1, 1, 1) and third["n"] == decimal.Decimal("-0.01")


def test_postgres_csv_text(tmp_path: Path, pg: PostgresServer) -> None:
    lines = snap(spec(pg.url), tmp_path / "out").path.read_text().split("\n")
    assert lines[0] == "id,n,big,nu,tz,ts,d,tm,b,i2,i4,f4,f8,tx,vc,j,jb,by,ai,at,u,ch"
    assert lines[1] == (
        '1,12.50,12345678901234567890.0123456789,'
        '"3.14159265358979323846264338327950288419716939937510",'
        '"2024-01-03T08:00:00.000000Z","2024-01-03T10:00:00.123456",2024-01-03,'
        '10:11:12.500000,true,1,2,0.1,2.25,"a,""b""","y","{""b"":1, ""a"":2}",'
        '"{""a"": 2, ""b"": 1}","\\x00ff","[1,null,3]","[""a"",""b,c"",null]",'
        '"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","ab "')
    assert lines[2].startswith("2,,,") and lines[2].endswith(",,,,,,,,,,,,,,,,,,")
    assert lines[4] == ""


def _psql_stdin(pg: PostgresServer, sql: str, data: bytes) -> None:
    cmd = [str(PG_BIN / "psql"), "-h", str(pg.socket_dir), "-p", str(pg.port), "-U",
           "postgres", "-d", pg.database, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql]
    if is_root():
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    proc = subprocess.run(cmd, input=data, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()


def test_csv_round_trips_through_psql_copy_from(tmp_path: Path, pg: PostgresServer) -> None:
    """What we write, PostgreSQL reads back as the same values, NULL and '' kept apart."""
    data = snap(spec(pg.url), tmp_path / "out").path.read_bytes()
    pg.psql("DROP TABLE IF EXISTS back; CREATE TABLE back (LIKE kinds); "
            "ALTER TABLE back ALTER ai TYPE jsonb USING NULL, ALTER at TYPE jsonb USING NULL;")
    _psql_stdin(pg, "\\copy back from stdin with (format csv, header true)", data)
    columns = ("id, n, big, nu, tz, ts, d, tm, b, i2, i4, f4, f8, tx, vc, j::text, jb, by, "
               "u, ch")
    arrays = "to_jsonb(ai), to_jsonb(at)"
    diff = pg.psql(
        "SELECT count(*) FROM ("
        f"(SELECT {columns}, {arrays} FROM kinds EXCEPT SELECT {columns}, ai, at FROM back) "
        f"UNION ALL (SELECT {columns}, ai, at FROM back EXCEPT "
        f"SELECT {columns}, {arrays} FROM kinds)) AS d")
    assert diff.split() == ["count", "-------", "0", "(1", "row)"]
    nulls = pg.psql("SELECT count(*) FILTER (WHERE tx IS NULL), count(*) FILTER (WHERE tx = '') "
                    "FROM back")
    assert nulls.split()[4:6] == ["1", "|"] and nulls.split()[6] == "1"


def test_zero_rows_give_a_header_and_a_typed_schema(tmp_path: Path, pg: PostgresServer) -> None:
    query = "SELECT * FROM kinds WHERE false ORDER BY id"
    csv_file = snap(spec(pg.url, table=None, query=query, name="none"), tmp_path / "c")
    assert csv_file.rows == 0
    assert csv_file.path.read_text() == \
        "id,n,big,nu,tz,ts,d,tm,b,i2,i4,f4,f8,tx,vc,j,jb,by,ai,at,u,ch\n"
    parquet = snap(spec(pg.url, "parquet", table=None, query=query, name="none"),
                   tmp_path / "p")
    table = pq.read_table(parquet.path)
    assert table.num_rows == 0
    assert table.schema.field("n").type == pa.decimal128(10, 2)
    assert table.schema.field("tz").type == pa.timestamp("us", tz="UTC")


def test_generic_adbc_uri_gives_the_same_bytes(tmp_path: Path, pg: PostgresServer) -> None:
    native = snap(spec(pg.url, "parquet"), tmp_path / "n")
    generic = snap(spec("adbc:" + pg.url, "parquet"), tmp_path / "g")
    assert generic.path.read_bytes() == native.path.read_bytes()
    assert generic.source_shown.startswith("adbc:postgresql://exporter:***@")


def test_unsupported_type_is_bad_input_naming_the_column(tmp_path: Path,
                                                         pg: PostgresServer) -> None:
    with pytest.raises(InvalidInputError, match=r"column 'span' has type interval.*CAST"):
        snap(spec(pg.url, table=None, query="SELECT interval '1 day' AS span"), tmp_path / "o")
    assert list((tmp_path / "o").iterdir()) == []


def test_postgres_query_and_its_failure(tmp_path: Path, pg: PostgresServer) -> None:
    result = snap(spec(pg.url, table=None, query="SELECT tx FROM kinds ORDER BY id DESC"),
                  tmp_path / "out")
    assert result.path.read_text() == 'tx\n""\n\n"a,""b"""\n'
    with pytest.raises(InvalidInputError, match=r"query failed: .*syntax error") as info:
        snap(spec(pg.url, table=None, query="SELEC nonsense"), tmp_path / "bad")
    assert PASSWORD not in str(info.value)
    assert list((tmp_path / "bad").iterdir()) == []


def test_postgres_unreachable_or_refused_hides_password(tmp_path: Path,
                                                         pg: PostgresServer) -> None:
    wrong_pw = pg.url.replace(PASSWORD, "Wr0ng-pass-9")
    with pytest.raises(InvalidInputError) as info:
        open_database(spec(wrong_pw), tmp_path, "x")
    assert "Wr0ng-pass-9" not in str(info.value) and "***" in str(info.value)
    with closed_port() as port, pytest.raises(InvalidInputError) as info:
        open_database(spec(pg.url.replace(f":{pg.port}/", f":{port}/")), tmp_path, "x")
    assert PASSWORD not in str(info.value)
    assert "cannot connect to postgresql://exporter:***@127.0.0.1" in str(info.value)
    url = "postgresql://app@127.0.0.1:1/postgres?password=qpw-77&sslpassword=spw-77"
    with pytest.raises(InvalidInputError) as info:
        open_database(spec(url), tmp_path, "x")
    assert "qpw-77" not in str(info.value) and "spw-77" not in str(info.value)
    assert "password=***" in str(info.value)


def test_postgres_schema_qualified_table_without_key(tmp_path: Path,
                                                     pg: PostgresServer) -> None:
    pg.psql(
        'DROP SCHEMA IF EXISTS "Sales" CASCADE; CREATE SCHEMA "Sales" AUTHORIZATION exporter; '
        'CREATE TABLE "Sales"."Regions" (name text, code int, doc json); '
        "INSERT INTO \"Sales\".\"Regions\" VALUES ('west', 2, '{}'), ('east', 1, '[]'), "
        "('east', 0, '1'); "
        'ALTER TABLE "Sales"."Regions" OWNER TO exporter;')
    s = spec(pg.url, table="Sales.Regions", name="regions")
    assert snap(s, tmp_path / "out").path.read_text() == \
        'name,code,doc\n"east",0,"1"\n"east",1,"[]"\n"west",2,"{}"\n'
    with pytest.raises(InvalidInputError, match="no table 'nope'"):
        snap(spec(pg.url, table="nope"), tmp_path / "x")


def test_postgres_tables_of_one_export_come_from_one_snapshot(tmp_path: Path,
                                                              pg: PostgresServer) -> None:
    """A writer inserts an order and its line in one transaction, over and over, while
    both tables are exported: the two files always hold the same orders."""
    pg.psql("DROP TABLE IF EXISTS orders, lines; "
            "CREATE TABLE orders (id int8 PRIMARY KEY, label text); "
            "CREATE TABLE lines (id int8 PRIMARY KEY, order_id int8, qty int4); "
            "INSERT INTO orders SELECT i, 'order ' || i FROM generate_series(1, 100000) i; "
            "INSERT INTO lines SELECT id, id, 3 FROM orders; "
            "ALTER TABLE orders OWNER TO exporter; ALTER TABLE lines OWNER TO exporter;")
    stop = threading.Event()
    commits: list[int] = []
    failure: list[BaseException] = []

    def write() -> None:
        try:
            with adbc_pg.connect(pg.url) as conn, conn.cursor() as cur:
                n = 1_000_000
                while not stop.is_set():
                    cur.execute(f"INSERT INTO orders VALUES ({n}, 'order {n}')")
                    cur.execute(f"INSERT INTO lines VALUES ({n}, {n}, 3)")
                    conn.commit()
                    commits.append(n)
                    n += 1
        except BaseException as exc:  # surfaced by the assertion below
            failure.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    counts = []
    try:
        while len(counts) < 6:
            out = tmp_path / f"out{len(counts)}"
            out.mkdir()
            with TableExport(tmp_path) as tables:
                a = tables.snapshot(spec(pg.url, "parquet", "orders", name="orders"), out, "x")
                b = tables.snapshot(spec(pg.url, "csv", "lines", name="lines"), out, "x")
            orders = pq.read_table(a.path).column("id").to_pylist()
            lines = [int(line.split(",")[1]) for line in b.path.read_text().splitlines()[1:]]
            assert orders == lines, f"{len(orders)} orders but {len(lines)} lines"
            counts.append(len(orders))
    finally:
        stop.set()
        writer.join()
    assert not failure, failure
    assert counts == sorted(set(counts)), f"the writer was not writing between exports: {counts}"
