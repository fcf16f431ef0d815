"""A real Debian root filesystem (mmdebstrap, bookworm minbase + python3) as a tarball.

Built once per test session into the session's temp folder (about 30 s: Debian's
own packages, real ``var/lib/dpkg/status``, DEP-5 and free-form copyright files,
``/bin/sh`` and python3), never committed.  ``OCIFORGE_TEST_DEBIAN_TAR`` names a
tarball built the same way to reuse across sessions while developing.  mmdebstrap
needs the Debian mirrors apt is configured with; outside CI a failure skips.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tools import require_tool, skip

SUITE = "bookworm"
INCLUDE = "python3"


@pytest.fixture(scope="session")
def debian_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("OCIFORGE_TEST_DEBIAN_TAR")
    if given and Path(given).is_file():
        return Path(given)
    mmdebstrap = require_tool("mmdebstrap")
    out = tmp_path_factory.mktemp("debian") / f"{SUITE}-minbase.tar"
    proc = subprocess.run([mmdebstrap, "--variant=minbase", "--format=tar", "--quiet",
                           f"--include={INCLUDE}", SUITE, str(out)],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or not out.is_file():
        skip(f"mmdebstrap could not build a Debian {SUITE} root filesystem "
             f"(Debian mirrors unreachable?): {proc.stderr.strip()[-300:]}")
    return out
