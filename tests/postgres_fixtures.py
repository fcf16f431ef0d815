"""A real PostgreSQL 15 server for the table-export tests.

Started once per session on a free loopback port: ``initdb`` into a fresh
folder (as the ``postgres`` user when running as root, since initdb refuses
root), then ``pg_ctl start``; stopped and removed at teardown.  Local socket
connections are trusted (to set things up); TCP connections need a password
(scram-sha-256), so the tests exercise the password path.  Outside CI a
missing server skips the tests; in CI it fails them (tests/tools.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tools import free_port, is_root, skip

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PASSWORD = "s3cret-Pg-pw"
USER = "exporter"


@dataclass
class PostgresServer:
    port: int
    socket_dir: Path
    database: str = "appdb"

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{self.database}"

    def psql(self, sql: str) -> str:
        return _run_as_pg([str(PG_BIN / "psql"), "-h", str(self.socket_dir), "-p",
                           str(self.port), "-U", "postgres", "-d", self.database,
                           "-v", "ON_ERROR_STOP=1", "-q", "-c", sql]).stdout


def _run_as_pg(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    if is_root():
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    if not (PG_BIN / "initdb").exists() or (is_root() and shutil.which("runuser") is None):
        skip("PostgreSQL 15 server binaries not installed (run `make test-deps` as root)")
    base = Path(tempfile.mkdtemp(prefix="ociforge-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if is_root():
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    port = free_port()
    _run_as_pg([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C"])
    log = base / "server.log"
    _run_as_pg([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                "-o", f"-p {port} -k {sock} -h 127.0.0.1", "start"])
    server = PostgresServer(port, sock)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _run_as_pg([str(PG_BIN / "psql"), "-h", str(sock), "-p", str(port), "-U",
                            "postgres", "-d", "postgres", "-q", "-c",
                            f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'"])
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        _run_as_pg([str(PG_BIN / "psql"), "-h", str(sock), "-p", str(port), "-U", "postgres",
                    "-d", "postgres", "-q", "-c",
                    f"CREATE DATABASE {server.database} OWNER {USER}"])
        yield server
    finally:
        subprocess.run((["runuser", "-u", "postgres", "--"] if is_root() else [])
                       + [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                          "stop"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
        os.environ.pop("PGPASSWORD", None)
