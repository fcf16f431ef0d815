"""The two examples, from the first minute: what README.md says to run, runs.

* ``examples/hello`` with its base switched to a shell image (``--base``, as the
  README shows with busybox from Docker Hub; here the busybox base the tests build)
  loads with ``docker load`` and runs with ``docker run``;
* ``examples/datasci``: ``prepare.py`` makes its database, wheel and venv offline
  (the venv from Debian 12's /usr/bin/python3.11), twice the same; its export runs
  in the Docker Engine on the Debian 12 base the tests build, and prints what its
  README says.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from docker_fixtures import DockerEngine
from tools import require_tool, skip

from ociforge.model.platform import Platform

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello"
DATASCI = ROOT / "examples" / "datasci"
DEBIAN_PYTHON = "/usr/bin/python3.11"


def _readme_block(path: Path, after: str) -> str:
    text = path.read_text()
    start = text.index(after)
    block = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert block is not None
    return block.group(1)


def test_readme_runs_hello_with_a_shell_base(cli, docker_engine: DockerEngine,
                                             busybox_base: str, tmp_path: Path) -> None:
    recipe = _readme_block(ROOT / "README.md", "**Run what it wrote.**")
    assert "ociforge export examples/hello --base busybox:1.36 -o hello.tar" in recipe
    assert "docker load -i hello.tar" in recipe and "docker run --rm hello:latest" in recipe
    # the same steps, with the busybox base the tests build instead of Docker Hub's
    archive = tmp_path / "hello.tar"
    code, _, err = cli("export", HELLO, "--base", busybox_base, "-o", archive,
                       "--platform", str(Platform.host()), "--report", tmp_path / "r.json")
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["base"]["reference"] == busybox_base
    assert "Loaded image: hello:latest" in docker_engine.load(archive)
    try:
        out = docker_engine.run_image("hello:latest")
        assert out.splitlines()[0] == "Hello from ociforge, world! (mode: demo, lang: en)"
        named = docker_engine.run_image("hello:latest", "Ada")
        assert named.startswith("Hello from ociforge, Ada!")
    finally:
        docker_engine.remove("hello:latest")


def test_base_option_is_checked_and_relative_to_the_working_directory(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("export", HELLO, "--base", "oci:no-such-layout", "-o", "x.tar")
    assert code == 2 and "no-such-layout" in err and not (tmp_path / "x.tar").exists()
    code, _, err = cli("export", HELLO, "--base", "out/hello", "-o", "x.tar")
    assert code == 2 and "could be a folder or a Docker Hub repository" in err


def _debian_python() -> str:
    if not Path(DEBIAN_PYTHON).exists():
        skip(f"{DEBIAN_PYTHON} (Debian 12's Python, the base's) is not installed")
    probe = subprocess.run([DEBIAN_PYTHON, "-c", "import ensurepip, venv"], capture_output=True)
    if probe.returncode != 0:
        skip("python3-venv is not installed (run `make test-deps` as root)")
    return DEBIAN_PYTHON


def _prepared(folder: Path) -> Path:
    app = folder / "datasci"
    shutil.copytree(DATASCI, app, ignore=shutil.ignore_patterns("venv", "dist", "sales.db"))
    done = subprocess.run([sys.executable, str(app / "prepare.py"), "--python",
                           _debian_python()], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (app / "venv" / "pyvenv.cfg").is_file() and (app / "data" / "sales.db").is_file()
    return app


def test_datasci_prepare_is_offline_clean_and_reproducible(cli, tmp_path: Path) -> None:
    one, two = _prepared(tmp_path / "one"), _prepared(tmp_path / "two")
    venv = one / "venv"
    assert not list(venv.rglob("pip")) and not list(venv.rglob("__pycache__"))
    assert not list(venv.glob("bin/activate*"))
    text = "".join(p.read_text(errors="replace") for p in venv.rglob("*")
                   if p.is_file() and not p.is_symlink())
    assert str(one) not in text                      # nothing names where it was made
    digests = []
    for app in (one, two):
        code, out, err = cli("export", app, "--with-files", "--base", "scratch",
                             "-o", f"oci:{app / 'out'}:1", "--json")
        assert code == 0, err
        digests.append(json.loads(out)["digest"])
    assert digests[0] == digests[1]


def test_datasci_runs_in_docker_on_debian(cli, docker_engine: DockerEngine,
                                          debian_base_layout: str, tmp_path: Path) -> None:
    app = _prepared(tmp_path)
    archive = tmp_path / "datasci.tar"
    image = f"ociforge-test/datasci:{uuid.uuid4().hex[:8]}"
    code, _, err = cli("export", app, "--with-files", "--base", debian_base_layout,
                       "--platform", str(Platform.host()), "--tag", image, "-o", archive,
                       "--report", tmp_path / "r.json")
    assert code == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert [d["name"] for d in report["dropped_env"]] == ["WAREHOUSE_PASSWORD"]
    assert {t["name"]: t["rows"] for t in report["tables"]} == {"sales": 8, "totals": 3}
    assert [e["source"] for e in report["layers"] if e["role"] == "runtime"] == ["venv", "app"]
    docker_engine.load(archive)
    try:
        out = docker_engine.run_image(image)
    finally:
        docker_engine.remove(image)
    expected = _readme_block(DATASCI / "README.md", "Nothing built is committed")
    wanted = [line[2:] for line in expected.splitlines() if line.startswith("# ")]
    assert out.splitlines() == wanted


def test_datasci_example_commits_nothing_built() -> None:
    git = require_tool("git")
    listed = subprocess.run([git, "ls-files", "examples/datasci"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        skip("not a git checkout", can_apply_in_ci=False)
    names = listed.stdout.split()
    assert "examples/datasci/prepare.py" in names or not names
    assert not [n for n in names if "/venv/" in n or n.endswith((".db", ".whl"))]
    ignored = subprocess.run([git, "check-ignore", "examples/datasci/venv/x",
                              "examples/datasci/data/sales.db", "examples/datasci/dist/x.whl"],
                             cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert len(ignored) == 3
