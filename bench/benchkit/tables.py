"""Table export inputs: a seeded table in SQLite and in a throwaway PostgreSQL server.

The same rows in both: ``measurements(id, station, value, count, taken)``, made by
the databases themselves from a seeded formula (no Python per row), ~55 bytes a
row in SQLite.  The PostgreSQL server is started like tests/postgres_fixtures.py
does (initdb into a temporary folder of its own, as the ``postgres`` user when running as
root), listens on a free loopback port with trust authentication (bench only),
and is stopped and removed when the block ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from .measure import CommandFailed
from .registry import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
TABLE = "measurements"

# One formula for both databases: every value follows from the row number and the seed.
_SQLITE_ROWS = """
PRAGMA journal_mode = off;
PRAGMA synchronous = off;
CREATE TABLE measurements (id INTEGER PRIMARY KEY, station TEXT NOT NULL, value REAL,
                           count INTEGER, taken TIMESTAMP);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
INSERT INTO measurements
SELECT i, 'station-' || ((i * 7919 + {seed}) % 5003), ((i * 104729 + {seed}) % 1000003) / 997.0,
       (i * 31 + 7) % 100000, datetime(1700000000 + i * 37, 'unixepoch') FROM n;
"""

_PG_ROWS = """
CREATE TABLE measurements (id bigint PRIMARY KEY, station text NOT NULL,
                           value double precision, count integer, taken timestamp);
INSERT INTO measurements
SELECT i, 'station-' || ((i * 7919 + {seed}) % 5003), ((i * 104729 + {seed}) % 1000003) / 997.0,
       (i * 31 + 7) % 100000, to_timestamp(1700000000 + i * 37) AT TIME ZONE 'UTC'
FROM generate_series(1::bigint, {rows}) AS i;
ANALYZE measurements;
"""

# The direct reference: the ADBC driver straight into pyarrow.parquet, default options.
ADBC_TO_PARQUET = """
import sys
import pyarrow.parquet as pq
driver, uri, out = sys.argv[1:4]
if driver == "sqlite":
    import adbc_driver_sqlite.dbapi as dbapi
else:
    import adbc_driver_postgresql.dbapi as dbapi
with dbapi.connect(uri) as conn, conn.cursor() as cur:
    cur.execute("SELECT * FROM measurements")
    reader = cur.fetch_record_batch()
    with pq.ParquetWriter(out, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
"""


def make_sqlite(path: Path, rows: int, seed: int) -> Path:
    """The seeded table in a SQLite file (kept and reused when it is already there)."""
    done = path.with_suffix(".done")
    if done.exists() and path.exists() and done.read_text() == f"{rows} {seed}":
        return path
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["sqlite3", str(path)], input=_SQLITE_ROWS.format(rows=rows, seed=seed),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise CommandFailed(f"sqlite3: {proc.stderr.strip()}")
    done.write_text(f"{rows} {seed}")
    return path


def write_app(folder: Path, source: str) -> Path:
    """An app exporting the one table twice: Parquet and CSV, in one export."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ociforge.toml").write_text(
        '[app]\nname = "bench/tables"\n\n'
        f'[[tables]]\nsource = "{source}"\ntable = "{TABLE}"\nformat = "parquet"\n'
        f'dest = "/data/{TABLE}.parquet"\n\n'
        f'[[tables]]\nname = "{TABLE}-csv"\nsource = "{source}"\ntable = "{TABLE}"\n'
        f'format = "csv"\ndest = "/data/{TABLE}.csv"\n')
    return folder


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Postgres:
    """``with Postgres() as pg:`` a PostgreSQL 15 server on a free loopback port."""

    def __init__(self) -> None:
        self.dir = Path()
        self.port = 0
        self.database = "bench"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def psql_argv(self, sql: str) -> list[str]:
        return [str(PG_BIN / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(self.port),
                "-U", "postgres", "-d", self.database, "-v", "ON_ERROR_STOP=1", "-c", sql]

    def _run(self, cmd: list[str], stdin: str | None = None) -> None:
        proc = subprocess.run(_as_postgres(cmd), input=stdin, capture_output=True, text=True,
                              timeout=3600)
        if proc.returncode != 0:
            raise CommandFailed(f"{Path(cmd[0]).name}: {proc.stderr.strip()[-300:]}")

    def start(self) -> Postgres:
        if not (PG_BIN / "initdb").exists():
            raise CommandFailed("PostgreSQL 15 server binaries not installed")
        # its own folder: the server runs as ``postgres``, which cannot enter the bench's
        self.dir = Path(tempfile.mkdtemp(prefix="ociforge-bench-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        data = self.dir / "data"
        self._run([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                   "-E", "UTF8", "--locale=C"])
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"), "-w",
                   "-t", "60", "-o", f"-p {self.port} -k {self.dir} -h 127.0.0.1", "start"])
        deadline = time.monotonic() + 30
        while True:
            try:
                self._run([str(PG_BIN / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p",
                           str(self.port), "-U", "postgres", "-d", "postgres", "-c",
                           f"CREATE DATABASE {self.database}"])
                return self
            except CommandFailed:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def load(self, rows: int, seed: int) -> int:
        """Create and fill the table; returns its size on disk in bytes."""
        self._run(self.psql_argv(_PG_ROWS.format(rows=rows, seed=seed)))
        proc = subprocess.run([*self.psql_argv(f"SELECT pg_table_size('{TABLE}')"), "-At"],
                              capture_output=True, text=True, timeout=60)
        return int(proc.stdout.strip() or 0)

    def __enter__(self) -> Postgres:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        if self.port:
            subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"),
                                         "-m", "fast", "-w", "stop"]),
                           capture_output=True, timeout=120)
            self.port = 0
        if self.dir != Path():
            shutil.rmtree(self.dir, ignore_errors=True)
