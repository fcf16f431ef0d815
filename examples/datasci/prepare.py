"""Make what examples/datasci exports but does not commit: the database, the wheel,
the virtual environment.  Offline, and the same bytes on every run.

    python3 examples/datasci/prepare.py [--python /usr/bin/python3.11]

* ``data/sales.db`` from ``data/sales.sql`` (SQLite);
* ``dist/salesmetrics-1.0.0-py3-none-any.whl``: the project's own library, built
  here as a plain wheel (a zip with its dist-info; no build tools, no network);
* ``venv/``: a virtual environment made with ``--python`` (default
  ``/usr/bin/python3.11``: it must be the Python of the image's base, here Debian 12's
  3.11, since the venv links to it), the wheel installed with pip from that file
  only (``--no-index``), then made fit to ship: pip and setuptools removed, no
  activate scripts, no bytecode, no record of where it was built.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAME, VERSION = "salesmetrics", "1.0.0"
WHEEL_TIME = (1980, 1, 1, 0, 0, 0)   # fixed zip times: the same wheel every time


def make_database() -> Path:
    target = HERE / "data" / "sales.db"
    partial = target.with_suffix(".db.tmp")
    partial.unlink(missing_ok=True)
    with sqlite3.connect(partial) as db:
        db.executescript((HERE / "data" / "sales.sql").read_text())
    db.close()
    partial.replace(target)
    return target


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel() -> Path:
    source = HERE / "lib" / NAME / "src" / NAME
    info = f"{NAME}-{VERSION}.dist-info"
    files = {f"{NAME}/{path.name}": path.read_bytes()
             for path in sorted(source.glob("*.py"))}
    files[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n"
                                 "Summary: Small helpers the sales analysis shares with its "
                                 "notebook\nRequires-Python: >=3.9\n").encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: prepare.py\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    record = [_record_line(name, data) for name, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    target = HERE / "dist" / f"{NAME}-{VERSION}-py3-none-any.whl"
    target.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, WHEEL_TIME)
            entry.external_attr = 0o644 << 16
            wheel.writestr(entry, data, zipfile.ZIP_DEFLATED)
    return target


def make_venv(python: str, wheel: Path) -> Path:
    venv = HERE / "venv"
    subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check",
           "--no-input", "-q"]
    subprocess.run([*pip, "install", "--no-index", "--no-deps", "--no-compile", str(wheel)],
                   check=True)
    subprocess.run([*pip, "uninstall", "-y", "pip", "setuptools"], check=True)
    for script in venv.glob("bin/*ctivate*"):
        script.unlink()
    for found in [*venv.rglob("__pycache__"), *venv.rglob("direct_url.json")]:
        shutil.rmtree(found) if found.is_dir() else found.unlink()
    for record in venv.rglob("RECORD"):  # direct_url.json named the wheel's host path
        record.write_text("".join(line for line in record.read_text().splitlines(True)
                                  if "/direct_url.json," not in line))
    config = venv / "pyvenv.cfg"  # "command = ..." names the folder it was made in
    config.write_text("".join(line for line in config.read_text().splitlines(keepends=True)
                              if not line.startswith("command")))
    return venv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="/usr/bin/python3.11",
                        help="the Python of the image's base (default /usr/bin/python3.11)")
    args = parser.parse_args()
    print(make_database().relative_to(HERE))
    wheel = build_wheel()
    print(wheel.relative_to(HERE))
    print(make_venv(args.python, wheel).relative_to(HERE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
