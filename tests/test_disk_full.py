"""A full disk: exit 1 naming the path that could not be written, nothing half-written left.

The disk is a real one: a 1 MiB tmpfs mounted for each test (root only) and
unmounted again whatever happens.  Writes hit ENOSPC in the build workspace
($TMPDIR, where layer blobs are made), in an OCI layout, in an archive and in
the export report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from progresslines import messages
from tools import require_root, require_tool

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello"
NO_SPACE = os.strerror(28)  # ENOSPC: "No space left on device"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted at the end."""
    require_root("mounting a small tmpfs to fill it")
    require_tool("mount")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mount)],
                   check=True, capture_output=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


@pytest.fixture
def big_app(tmp_path: Path) -> Path:
    """The example app with 3 MB of incompressible data: no layer of it fits in 1 MiB."""
    app = tmp_path / "big"
    shutil.copytree(EXAMPLE, app, symlinks=True)
    (app / "app" / "blob.bin").write_bytes(os.urandom(3_000_000))
    return app


def _fill(mount: Path) -> None:
    """Use up every block of the disk."""
    with open(mount / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass


def _one_error_line(stderr: str, *needles: str) -> None:
    lines = messages(stderr)
    assert len(lines) == 1 and lines[0].startswith("ociforge: error: "), stderr
    for needle in needles:
        assert needle in lines[0], stderr


def test_full_workspace_names_the_layer_blob(small_disk: Path, big_app: Path,
                                             tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(small_disk)}
    proc = subprocess.run([sys.executable, "-m", "ociforge", "export", str(big_app),
                           "-o", str(tmp_path / "out.tar")], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    _one_error_line(proc.stderr, "layer blob", str(small_disk), NO_SPACE)
    assert os.listdir(small_disk) == [], "the half-built blob and its folder are gone"
    assert not (tmp_path / "out.tar").exists()


def test_full_layout_names_the_blob(cli, small_disk: Path, big_app: Path) -> None:  # type: ignore[no-untyped-def]
    layout = small_disk / "layout"
    code, _, stderr = cli("export", big_app, "-o", f"oci:{layout}")
    assert code == 1, stderr
    _one_error_line(stderr, str(layout / "blobs" / "sha256"), NO_SPACE)
    assert os.listdir(small_disk) == [], "a layout this run created is removed again"


def test_full_disk_under_an_archive_names_it(cli, small_disk: Path, big_app: Path) -> None:  # type: ignore[no-untyped-def]
    archive = small_disk / "app.tar"
    code, _, stderr = cli("export", big_app, "-o", archive)
    assert code == 1, stderr
    _one_error_line(stderr, f"writing {archive} failed", NO_SPACE)
    assert os.listdir(small_disk) == [], "no archive, no temporary file"


def test_full_disk_under_the_report_names_it(cli, small_disk: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _fill(small_disk)
    report = small_disk / "report.json"
    code, _, stderr = cli("export", EXAMPLE, "-o", tmp_path / "hello.tar", "--report", report)
    assert code == 1, stderr
    assert stderr.strip().splitlines()[-1].startswith("ociforge: error: ")
    assert f"writing {report} failed" in stderr and NO_SPACE in stderr, stderr
    assert os.listdir(small_disk) == ["filler"], "no report, no temporary file"
