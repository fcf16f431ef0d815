"""Runnable base images for the tests, built by ociforge from real Debian parts.

* ``busybox_rootfs``: a folder with Debian's static busybox and a link for each
  applet, so ``/bin/sh`` and the usual commands exist.
* ``busybox_base``: an ``oci:`` layout of that folder made with
  ``ociforge append scratch --layer`` (a few hundred KiB).
* ``debian_rootfs_tar``: a real Debian bookworm root filesystem with python3
  (``mmdebstrap --variant=minbase --include=python3 --format=tar``, about 120
  packages and 210 MB: dpkg status, copyright files, /bin/sh, python3).  Built
  once and cached under ``$OCIFORGE_TEST_CACHE`` (default
  ``$TMPDIR/ociforge-test-cache``), keyed by the command and mmdebstrap's
  version, under a lock so parallel sessions build it once; delete the cache to
  take newer packages.
* ``debian_base_layout``: an ``oci:`` layout of that tarball as one layer
  (``ociforge append scratch --layer rootfs.tar``).

Session-scoped: every test shares one build.  The Debian parts need root
(mmdebstrap's root mode) and network access to the Debian mirror; outside CI
a missing tool skips, in CI it fails (tests/tools.py).  A test using them may
be the one that pays for the build, so it gets a longer timeout
(DEBIAN_TIMEOUT) unless it sets its own.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from tools import require_root, require_tool, run

REPO = Path(__file__).resolve().parent.parent
DEBIAN_SUITE = "bookworm"
MMDEBSTRAP_ARGS = ("--variant=minbase", "--include=python3", "--format=tar", DEBIAN_SUITE)
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBIAN_TIMEOUT = 900   # seconds: the first build downloads and installs ~120 packages


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses_debian = "debian_rootfs_tar" in getattr(item, "fixturenames", ())
        if uses_debian and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEBIAN_TIMEOUT))


def ociforge(*args: object, check: bool = True, timeout: float = 600
             ) -> subprocess.CompletedProcess[str]:
    """Run the ociforge CLI in a process of its own (session fixtures cannot use ``cli``)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return run([sys.executable, "-m", "ociforge", *map(str, args)], check=check, env=env,
               timeout=timeout)


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        busybox = Path(require_tool("busybox"))
    tree = tmp_path_factory.mktemp("busybox") / "rootfs"
    (tree / "bin").mkdir(parents=True)
    (tree / "tmp").mkdir(mode=0o1777)
    shutil.copy2(busybox, tree / "bin" / "busybox")
    applets = run([str(busybox), "--list"]).stdout.split()
    assert "sh" in applets, applets
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", tree / "bin" / applet)
    return tree


@pytest.fixture(scope="session")
def busybox_base(busybox_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``oci:DIR:latest``: busybox as one gzip layer on scratch, PATH=/bin, cmd sh."""
    location = f"oci:{tmp_path_factory.mktemp('busybox-base') / 'layout'}:latest"
    ociforge("append", "scratch", "--layer", f"{busybox_rootfs}:/", "--env", "PATH=/bin",
             "--cmd", "/bin/sh", "--compression", "gzip", "-o", location)
    return location


def _cache_root() -> Path:
    configured = os.environ.get("OCIFORGE_TEST_CACHE")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "ociforge-test-cache"


@pytest.fixture(scope="session")
def debian_rootfs_tar() -> Path:
    """A real Debian root filesystem tarball (see the module docstring); built once."""
    require_root("mmdebstrap builds the Debian tree in root mode")
    tool = require_tool("mmdebstrap")
    version = run([tool, "--version"]).stdout.strip()
    key = hashlib.sha256(" ".join([version, *MMDEBSTRAP_ARGS]).encode()).hexdigest()[:16]
    cache = _cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"debian-{DEBIAN_SUITE}-{key}.tar"
    with open(cache / f"debian-{DEBIAN_SUITE}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)      # another session may be building it right now
        if not target.exists():
            partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                run([tool, "--quiet", *MMDEBSTRAP_ARGS, str(partial)], timeout=DEBIAN_TIMEOUT)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
    return target


@pytest.fixture(scope="session")
def debian_base_layout(debian_rootfs_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``oci:DIR:bookworm``: the Debian tarball as one layer on scratch."""
    location = f"oci:{tmp_path_factory.mktemp('debian-base') / 'layout'}:{DEBIAN_SUITE}"
    ociforge("append", "scratch", "--layer", debian_rootfs_tar, "--env", f"PATH={DEBIAN_PATH}",
             "--cmd", "/bin/bash", "-o", location)
    return location
