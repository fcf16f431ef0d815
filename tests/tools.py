"""The one skip guard, and finding the real tools the interop tests use.

Every skip goes through ``skip`` (or ``require_tool``, ``require_module``,
``require_root``).  Outside CI a missing tool skips its test with a reason; in
CI (CI=true) it fails the test, because `make test` installs everything and CI
runs as root.  tests/skip_guard.py turns any other skip into a failure in CI.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


NOT_IN_CI = "[cannot apply in CI] "


def skip(reason: str, *, can_apply_in_ci: bool = True) -> NoReturn:
    """The one way a test skips.

    In CI (CI=true) every dependency is installed and the job runs as root, so a
    skip there means a test silently did not run: it fails instead.  Pass
    ``can_apply_in_ci=False`` only when the reason cannot hold in CI (an opt-in
    such as Docker Hub credentials that CI never has).
    """
    if not can_apply_in_ci:
        pytest.skip(NOT_IN_CI + reason)
    if IN_CI:
        pytest.fail(f"would skip in CI, where it must run: {reason}")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        skip(f"{name} not installed (run `make test-deps` as root)")
    return path


def require_module(name: str) -> ModuleType:
    """importorskip through the guard: `make test` installs every extra."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        skip(f"Python module {name} not importable ({exc})")


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        skip(f"needs root: {why}")


def is_root() -> bool:
    return os.geteuid() == 0


def ociforge_env(**extra: str) -> dict[str, str]:
    """The environment for ociforge run in a new process: this checkout first on
    PYTHONPATH, no backoff sleeps between retries, then ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent) + os.pathsep + \
        env.get("PYTHONPATH", "")
    env["OCIFORGE_RETRY_BASE"] = "0"
    env.update(extra)
    return env


def run(cmd: Sequence[str], check: bool = True, **kwargs: object) -> subprocess.CompletedProcess:
    """Run a tool, capturing output; on failure show its stderr in the assertion."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\nstdout:\n{proc.stdout}\n"
            f"stderr:\n{proc.stderr}"
        )
    return proc



def run_bundle(runc: str, bundle: Path, name: str, args: Sequence[str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    """Run an unpacked OCI bundle with runc (no terminal; ``args`` replace the process's
    arguments), then delete the container; its state lives next to the bundle."""
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["process"]["terminal"] = False
    if args is not None:
        config["process"]["args"] = list(args)
    config_path.write_text(json.dumps(config))
    state = bundle.parent / "runc-state"
    container = f"{name}-{os.getpid()}"
    try:
        return run([runc, "--root", str(state), "run", "--bundle", str(bundle), container],
                   timeout=timeout)
    finally:
        run([runc, "--root", str(state), "delete", "--force", container], check=False)

def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, for a server about to bind it (which must cope with losing it to
    someone faster: see registry_fixtures.start_registry)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def closed_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port that refuses connections for as long as the block runs: it is bound here
    and never listened on, so no other process can start listening on it meanwhile
    (a port that was merely free a moment ago can be taken by then)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        yield int(sock.getsockname()[1])
