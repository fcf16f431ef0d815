"""Table snapshots through `ociforge export`: bad queries, warnings, and flat memory."""

from __future__ import annotations

import json
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tools import free_port, require_module, require_tool

REPO = Path(__file__).resolve().parent.parent

require_module("pyarrow")
require_module("adbc_driver_sqlite")


def _use_query(app: Path, query: str) -> None:
    toml = (app / "ociforge.toml").read_text()
    assert 'table = "greetings"' in toml
    (app / "ociforge.toml").write_text(toml.replace('table = "greetings"',
                                                    f'query = "{query}"'))


def test_a_failing_query_is_bad_input_and_nothing_is_written(cli, app: Path,  # type: ignore[no-untyped-def]
                                                             tmp_path: Path) -> None:
    _use_query(app, "SELECT nope FROM greetings ORDER BY id")
    out, report = tmp_path / "x.tar", tmp_path / "r.json"
    code, _, stderr = cli("export", app, "--with-files", "-o", out, "--report", report)
    assert code == 2, stderr
    assert "query failed" in stderr and "nope" in stderr and "Traceback" not in stderr
    assert not out.exists() and not report.exists()


def _line_of(app: Path, text: str) -> int:
    return (app / "ociforge.toml").read_text().splitlines().index(text) + 1


def test_a_failing_query_is_refused_before_any_layer_is_built(cli, app: Path,  # type: ignore[no-untyped-def]
                                                              tmp_path: Path) -> None:
    _use_query(app, "SELECT nope FROM greetings ORDER BY id")
    line = _line_of(app, 'query = "SELECT nope FROM greetings ORDER BY id"')
    code, _, stderr = cli("export", app, "--with-files", "-o", tmp_path / "x.tar",
                          "--progress", "json")
    assert code == 2, stderr
    events = [json.loads(x) for x in stderr.splitlines() if x.startswith("{")]
    assert [e["phase"] for e in events if e["event"] == "start"] == [], events
    error = events[-1]["error"]
    assert error.startswith(f"{app}/ociforge.toml:{line}: tables[0].query: query failed: ")
    assert "nope" in error


@pytest.mark.parametrize("source", ["sqlite:///data/greeting.db",
                                    "postgresql://etl:{pw}@127.0.0.1:{port}/app"])
def test_a_database_that_is_not_there_names_the_toml_line(cli, app: Path,  # type: ignore[no-untyped-def]
                                                         tmp_path: Path, source: str) -> None:
    if source.startswith("postgresql"):
        require_module("adbc_driver_postgresql")
    password = "Pw-" + secrets.token_hex(6)
    url = source.format(pw=password, port=free_port())
    toml = (app / "ociforge.toml").read_text()
    (app / "ociforge.toml").write_text(toml.replace('source = "sqlite:///data/greetings.db"',
                                                    f'source = "{url}"'))
    line = _line_of(app, f'source = "{url}"')
    out = tmp_path / "x.tar"
    code, _, stderr = cli("export", app, "--with-files", "-o", out)
    assert code == 2, stderr
    shown = url.replace(password, "***")
    problem = "does not exist" if url.startswith("sqlite") else f"cannot connect to {shown}"
    assert f"{app}/ociforge.toml:{line}: tables[0].source: table 'greetings': " in stderr
    assert problem in stderr and password not in stderr and not out.exists()


def test_a_query_without_order_by_is_a_report_warning(cli, app: Path,  # type: ignore[no-untyped-def]
                                                      tmp_path: Path) -> None:
    _use_query(app, "SELECT lang FROM greetings")
    report = tmp_path / "r.json"
    code, _, stderr = cli("export", app, "--with-files", "-o", tmp_path / "x.tar",
                          "--report", report)
    assert code == 0, stderr
    warnings = json.loads(report.read_text())["warnings"]
    assert any("no ORDER BY" in w for w in warnings), warnings


EXPORT = """
import sys
from pathlib import Path
from ociforge.app.spec import TableSpec
from ociforge.app.tables import TableExport
db, out = sys.argv[1], Path(sys.argv[2])
jobs = [(TableSpec(f"t-{fmt}", f"sqlite:///{db}", "t", None, fmt, "/x"), out, "x")
        for fmt in ("parquet", "csv")]
with TableExport(out) as tables:
    print(sum(s.rows for s in tables.snapshot_all(jobs)))
"""


def _peak_rss_mib(time_bin: str, db: Path, out: Path) -> float:
    out.mkdir()
    report = out / "time.txt"
    proc = subprocess.run([time_bin, "-f", "%M", "-o", str(report), sys.executable, "-c", EXPORT,
                           str(db), str(out)], capture_output=True, text=True, cwd=REPO,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return int(report.read_text().split()[-1]) / 1024


def _table(path: Path, rows: int) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, station TEXT, value REAL, n INTEGER, "
        "taken TIMESTAMP);"
        f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {rows}) "
        "INSERT INTO t SELECT i, 'station-' || (i * 7919 % 5003), (i * 104729 % 1000003) / 997.0,"
        " i % 100000, datetime(1700000000 + i * 37, 'unixepoch') FROM s;")
    conn.close()
    return path


def test_memory_does_not_grow_with_the_table(tmp_path: Path) -> None:
    """Peak RSS of a child exporting 200,000 rows and 1,600,000 rows (Parquet + CSV):
    under the 250 MiB budget, and the 8x table costs almost nothing more (a table held
    in memory would add ~100 MiB).  The 10M-row case is measured by `make bench`."""
    time_bin = "/usr/bin/time"
    if not Path(time_bin).exists():
        require_tool("GNU time")
    small = _peak_rss_mib(time_bin, _table(tmp_path / "small.db", 200_000), tmp_path / "s")
    large = _peak_rss_mib(time_bin, _table(tmp_path / "large.db", 1_600_000), tmp_path / "l")
    assert large < 250, f"peak RSS {large:.0f} MiB"
    assert large - small < 40, f"peak RSS grew from {small:.0f} to {large:.0f} MiB"
