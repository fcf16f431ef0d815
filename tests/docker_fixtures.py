"""A real Docker Engine for the tests: Debian's dockerd, started once per session.

The engine most recipients of an export use.  It runs as root with vfs storage,
no bridge and no iptables, on a socket and data root of its own (never the
machine's /var/run/docker.sock), exactly as /work/shared/docs/test-tools.md
describes; ``docker_engine`` yields a handle whose ``docker(...)`` runs the
docker CLI against it (``load``, ``run_image`` and ``remove`` for the usual
steps).  At the end of the session it is stopped with SIGTERM
and its data root removed.  vfs copies every layer in full, so images loaded
into it should stay small.  This engine (20.10) cannot unpack zstd layers:
give it gzip.

Outside CI a missing dockerd, or not being root, skips the tests that use it;
in CI both fail (tests/tools.py).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tools import require_root, require_tool

_STARTED: list[DockerEngine] = []


@dataclass
class DockerEngine:
    root: Path            # everything of this engine: data, exec root, socket, log
    host: str             # DOCKER_HOST value, unix://ROOT/docker.sock
    cli: str              # the docker client shipped with this dockerd
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "dockerd.log"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def docker(self, *args: str, check: bool = True, timeout: float = 300,
               input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``docker ARGS`` against this engine; on failure the assertion shows stderr."""
        cmd = [self.cli, *map(str, args)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env(),
                              timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def load(self, archive: str | os.PathLike[str]) -> str:
        """``docker load -i ARCHIVE``; returns Docker's output ("Loaded image: ...")."""
        return self.docker("load", "-i", os.fspath(archive)).stdout

    def run_image(self, image: str, *args: str, entrypoint: str | None = None) -> str:
        """``docker run --rm --network none [--entrypoint E] IMAGE ARGS``; returns stdout."""
        options = ["--entrypoint", entrypoint] if entrypoint is not None else []
        return self.docker("run", "--rm", "--network", "none", *options, image, *args).stdout

    def remove(self, *images: str) -> None:
        """Remove images (vfs keeps a full copy of every layer: free the space)."""
        self.docker("image", "rm", "-f", *images, check=False)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM (dockerd stops its containers and its containerd), then remove the root."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                _kill_pidfile(self.root / "exec" / "containerd" / "containerd.pid")
        if self.root.exists():
            _unmount_below(self.root)
            shutil.rmtree(self.root, ignore_errors=True)


def _kill_pidfile(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(path.read_text().strip()), signal.SIGKILL)


def _unmount_below(root: Path) -> None:
    """Lazily unmount whatever a killed engine left mounted under ``root`` (deepest first)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    prefix = str(root.resolve()) + "/"
    points = [line.split()[4] for line in lines if len(line.split()) > 4]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _docker_cli(dockerd: str) -> str:
    """The client next to dockerd (Debian's docker.io), else whatever docker is on PATH."""
    beside = Path(dockerd).resolve().parent.parent / "bin" / "docker"
    return str(beside) if beside.exists() else require_tool("docker")


def start_docker_engine() -> DockerEngine:
    require_root("dockerd runs as root here (vfs storage, no rootless setup)")
    dockerd = require_tool("dockerd")
    # short, so that unix socket paths below it stay under the 108-byte limit
    root = Path(tempfile.mkdtemp(prefix="ofdk-", dir="/tmp"))
    engine = DockerEngine(root, f"unix://{root}/docker.sock", _docker_cli(dockerd))
    namespace = f"ociforge-test-{os.getpid()}"
    log = open(engine.log_path, "wb")  # noqa: SIM115 - the child owns it
    engine.proc = subprocess.Popen(
        [dockerd, "--iptables=false", "--ip6tables=false", "--bridge=none",
         "--storage-driver=vfs", f"--data-root={root}/data", f"--exec-root={root}/exec",
         f"--pidfile={root}/dockerd.pid", "-H", engine.host,
         # a system containerd, if one runs, is shared: keep our objects apart from its
         f"--containerd-namespace={namespace}",
         f"--containerd-plugins-namespace={namespace}-plugins"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    _STARTED.append(engine)
    atexit.register(engine.stop)   # even if the session dies before teardown
    deadline = time.monotonic() + 90
    while True:
        code = engine.proc.poll() if engine.proc is not None else None
        if code is not None:
            text = engine.log()[-6000:]
            engine.stop()
            raise RuntimeError(f"dockerd exited {code}:\n{text}")
        if engine.docker("info", "--format", "{{.ServerVersion}}", check=False,
                         timeout=30).returncode == 0:
            return engine
        if time.monotonic() > deadline:
            text = engine.log()[-6000:]
            engine.stop()
            raise RuntimeError(f"dockerd did not answer on {engine.host}:\n{text}")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A Docker Engine of our own (DOCKER_HOST in ``.env()``; ``.docker(...)`` runs the CLI)."""
    engine = start_docker_engine()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and "docker_engine" in getattr(item, "fixturenames", ()):
        for engine in _STARTED:
            if engine.proc is not None:
                report.sections.append((f"dockerd log {engine.host}", engine.log()[-6000:]))
