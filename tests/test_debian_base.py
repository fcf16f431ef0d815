"""An application on a real Debian base runs: with runc (via umoci) and in Docker.

The base is base_fixtures.debian_base_layout: Debian bookworm with python3 made
by mmdebstrap, added as one layer with ``ociforge append scratch --layer``.  The
app's Python reads a CSV, sums it in SQLite and reads the environment, so the
base's interpreter, its standard library and the image config all work.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from base_fixtures import ociforge
from docker_fixtures import DockerEngine
from tools import require_root, require_tool, run, run_bundle

from ociforge.model.platform import Platform

PLATFORM = str(Platform.host())

MAIN = """\
import csv, os, sqlite3, sys

with open("/app/numbers.csv", newline="") as fh:
    numbers = [int(row["n"]) for row in csv.DictReader(fh)]
db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE t (n INTEGER)")
db.executemany("INSERT INTO t VALUES (?)", [(n,) for n in numbers])
total = db.execute("SELECT sum(n) FROM t").fetchone()[0]
with open("/etc/debian_version") as fh:
    debian = fh.read().strip().split(".")[0]
print(f"python {sys.version_info.major} on debian {debian}")
print(f"sum {total} mode {os.environ['PYAPP_MODE']} cwd {os.getcwd()}")
"""
EXPECTED = ["python 3 on debian 12", "sum 10 mode test cwd /app"]
STDLIB_CHECK = ("import ssl, sqlite3, json; "
                "print(json.dumps([ssl.OPENSSL_VERSION.split()[0], sqlite3.sqlite_version > '3']))")


def python_app(folder: Path, base: str) -> Path:
    app = folder / "pyapp"
    (app / "src").mkdir(parents=True)
    (app / "src" / "main.py").write_text(MAIN)
    (app / "src" / "numbers.csv").write_text("n\n1\n2\n3\n4\n")
    (app / "ociforge.toml").write_text(f"""\
[app]
name = "pyapp"
base = "{base}"
platform = "{PLATFORM}"

[config]
entrypoint = ["python3", "/app/main.py"]
workdir = "/app"

[config.env]
PYAPP_MODE = "test"

[[layers]]
src = "src"
dest = "/app"
""")
    return app


def test_python_app_on_debian_runs_with_runc_and_in_docker(
        debian_base_layout: str, docker_engine: DockerEngine, tmp_path: Path) -> None:
    require_root("umoci unpack and runc run")
    umoci, runc = require_tool("umoci"), require_tool("runc")
    app = python_app(tmp_path, debian_base_layout)
    layout = tmp_path / "exported"
    archive = tmp_path / "pyapp.tar"
    name = f"ociforge-test/pyapp:{uuid.uuid4().hex[:8]}"
    ociforge("export", app, "--compression", "gzip", "--tag", name,
             "-o", f"oci:{layout}:1", "-o", archive)

    bundle = tmp_path / "bundle"
    run([umoci, "unpack", "--image", f"{layout}:1", str(bundle)], timeout=300)
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["python3", "/app/main.py"]
    proc = run_bundle(runc, bundle, "ociforge-debian", [
        "/bin/sh", "-c", f'python3 -c "{STDLIB_CHECK}" && exec python3 /app/main.py'])
    first, *rest = proc.stdout.splitlines()
    assert json.loads(first) == ["OpenSSL", True]
    assert rest == EXPECTED, proc.stdout

    try:
        docker_engine.load(archive)
        assert docker_engine.run_image(name).splitlines() == EXPECTED
    finally:
        docker_engine.remove(name)
