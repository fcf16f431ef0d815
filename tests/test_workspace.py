"""The blob workspace: folders of killed processes are swept, live ones never."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ociforge import workspace


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no process has this pid now (reuse is rare and only spares it)


def _folder(parent: Path, pid: int, age: float) -> Path:
    path = parent / f"{workspace.PREFIX}{pid}-abcd1234"
    path.mkdir()
    (path / "x.blob").write_bytes(b"left over")
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_only_old_folders_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = _dead_pid()
    live = os.getppid()  # our parent is certainly alive
    stale = _folder(tmp_path, dead, workspace.STALE_AFTER + 60)
    (tmp_path / "young").mkdir()
    fresh = _folder(tmp_path / "young", dead, 5)
    alive = _folder(tmp_path, live, workspace.STALE_AFTER + 60)
    legacy = tmp_path / f"{workspace.PREFIX}nopid"
    legacy.mkdir()
    other = tmp_path / "unrelated-1"
    other.mkdir()
    removed = workspace.remove_stale_folders(tmp_path)
    assert removed == [stale] and not stale.exists()
    assert alive.exists() and legacy.exists() and other.exists()
    assert workspace.remove_stale_folders(tmp_path / "young") == [] and fresh.exists()


def test_the_folder_name_carries_the_pid_and_a_new_process_sweeps(tmp_path: Path) -> None:
    stale = _folder(tmp_path, _dead_pid(), workspace.STALE_AFTER + 60)
    code = (
        "import os; from ociforge import workspace; p = workspace.blob_dir();"
        "assert p.name.startswith(f'ociforge-blobs-{os.getpid()}-'), p; print(p)"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert not stale.exists()
    assert not Path(out).exists()  # and its own folder went at exit
