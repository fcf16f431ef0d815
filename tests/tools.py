"""Finding the real tools the interop tests use (skopeo, umoci, runc, ...).

Outside CI a missing tool skips its test with a reason; in CI (CI=true) a
missing tool fails the test, because `make test` installs them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Sequence

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required in CI but not installed (make test-deps)")
        pytest.skip(f"{name} not installed (run `make test-deps` as root)")
    return path


def is_root() -> bool:
    return os.geteuid() == 0


def run(cmd: Sequence[str], check: bool = True, **kwargs: object) -> subprocess.CompletedProcess:
    """Run a tool, capturing output; on failure show its stderr in the assertion."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\nstdout:\n{proc.stdout}\n"
            f"stderr:\n{proc.stderr}"
        )
    return proc


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
