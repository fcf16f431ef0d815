"""The blob workspace: folders of killed processes are swept, live ones never."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tools import skip

from ociforge.layers import workspace


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
        "import os; from ociforge.layers import workspace; p = workspace.blob_dir();"
        "assert p.name.startswith(f'ociforge-blobs-{os.getpid()}-'), p; print(p)"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert not stale.exists()
    assert not Path(out).exists()  # and its own folder went at exit


_HOLDER = (
    "import sys; from ociforge.layers import workspace; p = workspace.blob_dir();"
    "(p / 'big.blob').write_bytes(b'in progress'); print(p, flush=True); sys.stdin.read()"
)
_SWEEPER = (
    "import sys; from pathlib import Path; from ociforge.layers import workspace;"
    "print([str(p) for p in workspace.remove_stale_folders(Path(sys.argv[1]))])"
)


def _env(tmp_path: Path) -> dict[str, str]:
    repo = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": repo}


def _age(path: Path) -> None:
    then = time.time() - workspace.STALE_AFTER - 60
    os.utime(path, (then, then))


def _unshare_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-fp", "--mount-proc", "true"], capture_output=True)
    return probe.returncode == 0


def test_a_live_process_folder_is_kept_by_its_lock_and_swept_once_it_dies(
        tmp_path: Path) -> None:
    """The owner holds a flock on <folder>/.lock for its life: a sweeper in another
    process (and, where unshare works, in another PID namespace, where the owner's pid
    means nothing) leaves the folder alone however old it looks; after a SIGKILL the
    kernel drops the lock and the next sweep removes it."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER], env=_env(tmp_path),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        folder = Path(holder.stdout.readline().strip())
        assert folder.name.startswith(f"{workspace.PREFIX}{holder.pid}-")
        assert (folder / workspace.LOCK_NAME).is_file()
        _age(folder)
        assert workspace.remove_stale_folders(tmp_path) == [] and folder.is_dir()
        sweep = subprocess.run([sys.executable, "-c", _SWEEPER, str(tmp_path)],
                               env=_env(tmp_path), capture_output=True, text=True, check=True)
        assert sweep.stdout.strip() == "[]" and (folder / "big.blob").is_file()
        if _unshare_works():
            foreign = subprocess.run(
                ["unshare", "-fp", "--mount-proc", sys.executable, "-c", _SWEEPER,
                 str(tmp_path)], env=_env(tmp_path), capture_output=True, text=True,
                check=True)
            assert foreign.stdout.strip() == "[]", foreign.stdout
            assert (folder / "big.blob").is_file()
        holder.kill()
        holder.wait(10)
        _age(folder)
        assert workspace.remove_stale_folders(tmp_path) == [folder] and not folder.exists()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_an_unlocked_old_folder_is_swept_even_when_its_pid_is_alive(tmp_path: Path) -> None:
    """A folder with a lock file nobody holds is abandoned, whatever process now has the
    pid in its name (another namespace's pid, or a reused one)."""
    folder = _folder(tmp_path, os.getppid(), workspace.STALE_AFTER + 60)
    (folder / workspace.LOCK_NAME).write_bytes(b"")
    _age(folder)
    assert workspace.remove_stale_folders(tmp_path) == [folder]


def test_a_build_in_another_pid_namespace_keeps_our_folder(tmp_path: Path) -> None:
    """The audit's repro: a run under `unshare -fp` while this process's folder is old."""
    if not _unshare_works():
        skip("unshare -fp needs root and PID namespaces")
    env = _env(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        folder = Path(holder.stdout.readline().strip())
        _age(folder)
        (tmp_path / "a.txt").write_text("a")
        run = subprocess.run(
            ["unshare", "-fp", "--mount-proc", sys.executable, "-m", "ociforge", "append",
             "scratch", "--layer", f"{tmp_path / 'a.txt'}:/a", "-o", f"oci:{tmp_path / 'n'}"],
            env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert (folder / "big.blob").read_bytes() == b"in progress"
    finally:
        holder.kill()
        holder.wait(10)
