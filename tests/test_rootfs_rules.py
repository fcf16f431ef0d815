"""The live-system rules of a rootfs export (app/rootfs.py), on the kernel's own formats.

mountinfo, /proc/PID/stat and /proc/PID/environ are read from files laid out as the
kernel lays them out (the real /proc of this machine where the test can use it), so
the parsing is checked on real input, escapes and odd bytes included.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from tools import require_tool

from ociforge.app.rootfs import (
    LivePrune,
    image_rel,
    is_live_root,
    live_prune,
    mount_points,
    process_env,
    start_time_ns,
)
from ociforge.errors import InvalidInputError

MOUNTINFO = """\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:21 / /proc rw,nosuid shared:2 - proc proc rw
40 22 0:40 / {root}/srv/my\\040volume rw,relatime - tmpfs none rw
41 22 0:41 / {root}/etc/hosts rw - ext4 /dev/vda rw
42 22 0:42 / {root}-other/x rw - tmpfs none rw
43 40 0:43 / {root}/srv/my\\040volume/inner rw - tmpfs none rw
"""


def test_mount_points_below_the_rootfs_from_mountinfo(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO.format(root=rootfs))
    assert mount_points(rootfs, str(info)) == [b"etc/hosts", b"srv/my volume",
                                               b"srv/my volume/inner"]
    everything = mount_points(Path("/"), str(info))
    assert b"proc" in everything and b"" not in everything and len(everything) == 5
    assert mount_points(rootfs, str(tmp_path / "missing")) == []


def test_a_real_mount_is_found_in_this_machines_mountinfo(tmp_path: Path) -> None:
    from tools import require_root

    require_root("mounting a tmpfs")
    mount = require_tool("mount")
    target = tmp_path / "rootfs" / "data vol"
    target.mkdir(parents=True)
    subprocess.run([mount, "-t", "tmpfs", "-o", "size=1m", "ociforge-test", str(target)],
                   check=True)
    try:
        assert b"data vol" in mount_points(tmp_path / "rootfs")
        prune = live_prune(tmp_path / "rootfs", [])
        assert prune(b"data vol", b"") == "live-mount"
    finally:
        subprocess.run([require_tool("umount"), str(target)], check=True)


def test_fixed_and_named_rules(tmp_path: Path) -> None:
    prune = LivePrune({b"files": "workspace"})
    assert prune(b"proc", b"") == "live-virtual"
    assert prune(b"var/tmp", b"") == "live-volatile"
    assert prune(b"var/log", b"") == "logs"
    assert prune(b"home/ana", b"") == "personal-folder"
    assert prune(b"home", b"") is None and prune(b"home/ana/x", b"") is None
    assert prune(b"srv/app/.cache", b"") == "cache-folder"
    assert prune(b"files", b"") == "workspace"
    assert prune(b"usr/lib/x", b"") is None
    conda = tmp_path / "opt" / "conda"
    (conda / "conda-meta").mkdir(parents=True)
    (conda / "pkgs").mkdir()
    (tmp_path / "srv" / "pkgs").mkdir(parents=True)
    assert prune(b"opt/conda/pkgs", os.fsencode(conda / "pkgs")) == "package-cache"
    assert prune(b"srv/pkgs", os.fsencode(tmp_path / "srv" / "pkgs")) is None
    assert {b"proc", b"var/log", b"home/*", b"files"} <= prune.protected


def test_own_paths_inside_the_rootfs_and_the_rootfs_itself(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "var" / "cache").mkdir(parents=True)
    assert image_rel(rootfs / "var" / "cache", rootfs) == b"var/cache"
    assert image_rel(tmp_path / "elsewhere", rootfs) is None
    assert image_rel(str(rootfs) + "-sibling", rootfs) is None
    prune = live_prune(rootfs, [(rootfs / "var" / "cache" / "oci", "ociforge-files"),
                                (tmp_path / "out.tar", "ociforge-files")])
    assert prune(b"var/cache/oci", b"") == "ociforge-files"
    with pytest.raises(InvalidInputError, match="nothing would be left"):
        live_prune(rootfs, [(rootfs, "workspace")])
    assert is_live_root(Path("/")) and not is_live_root(rootfs)


def test_start_time_of_process_one(tmp_path: Path) -> None:
    here = start_time_ns()
    assert here is not None and here < time.time_ns()
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    # the command name may hold spaces and parentheses: fields count from the last ')'
    ticks = 4200
    fields = ["S"] + ["0"] * 18 + [str(ticks)] + ["0"] * 30
    (proc / "1" / "stat").write_text(f"1 (my (odd) init) {' '.join(fields)}\n")
    (proc / "stat").write_text("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n")
    hertz = os.sysconf("SC_CLK_TCK")
    assert start_time_ns(str(proc)) == (1700000000 - 1) * 10**9 + ticks * 10**9 // hertz
    (proc / "stat").write_text("cpu 1 2 3\n")
    assert start_time_ns(str(proc)) is None


def test_process_environment_bytes(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "77").mkdir(parents=True)
    (proc / "77" / "environ").write_bytes(
        b"APP=1\0EMPTY=\0HOSTNAME=abc\0SSH_TTY=/dev/pts/0\0BAD\xff=x\0VAL=caf\xe9\0"
        b"noequals\0=weird\0APP=2\0\0")
    got = process_env(77, str(proc))
    assert got.env == [("APP", "2", "pid"), ("EMPTY", "", "pid")]
    dropped = {d.name: d.rule for d in got.dropped}
    assert dropped == {"HOSTNAME": "session-variable", "SSH_TTY": "session-variable",
                       "BAD\udcff": "env-not-utf8", "VAL": "env-not-utf8",
                       "noequals": "env-not-a-name", "": "env-not-a-name"}
    with pytest.raises(InvalidInputError, match="no such process"):
        process_env(78, str(proc))
    with pytest.raises(InvalidInputError, match="process id"):
        process_env(0, str(proc))
    # this very process, through the real /proc
    own = dict((name, value) for name, value, _ in process_env(os.getpid()).env)
    assert own.get("PATH") == os.environ.get("PATH")
