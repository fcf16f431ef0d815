"""A throwaway CNCF distribution registry on a free loopback port.

Each push measurement gets a fresh registry (new storage, new port), so no
tool can turn an upload into a mount through state left by an earlier run
(skopeo's blob-info cache is keyed by host:port).  The registry writes JSON
logs; ``requests()`` reads them back to count uploads and mounts.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

REGISTRY_BIN = "docker-registry"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """The registry reads REGISTRY_* variables as config overrides; REGISTRY_AUTH_FILE
    (set for podman/skopeo credentials) would break its auth section."""
    return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int


class Registry:
    """``with Registry(workdir) as reg:`` starts it; leaving the block stops it and
    removes its storage."""

    def __init__(self, workdir: Path, basic_auth: tuple[str, str] | None = None) -> None:
        self.dir = workdir
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "registry.log"
        self.basic_auth = basic_auth   # (user, password): htpasswd Basic auth

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Registry:
        exe = shutil.which(REGISTRY_BIN)
        if exe is None:
            raise FileNotFoundError(REGISTRY_BIN)
        self.dir.mkdir(parents=True, exist_ok=True)
        for _attempt in range(5):
            self.port = free_port()
            config = {
                "version": 0.1,
                "log": {"level": "info", "formatter": "json", "accesslog": {"disabled": True}},
                "storage": {"filesystem": {"rootdirectory": str(self.dir / "data")},
                            "delete": {"enabled": True}},
                "http": {"addr": self.host, "secret": secrets.token_hex(16)},
            }
            if self.basic_auth is not None:
                config["auth"] = {"htpasswd": {"realm": "bench", "path": self._htpasswd()}}
            cfg = self.dir / "config.yml"
            cfg.write_text(json.dumps(config))  # JSON is valid YAML
            log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the process
            self.proc = subprocess.Popen([exe, "serve", str(cfg)], stdout=log, env=_clean_env(),
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"registry did not start; see {self.log_path}")

    def _htpasswd(self) -> str:
        """The htpasswd file (bcrypt, as the registry requires) for ``basic_auth``."""
        assert self.basic_auth is not None
        tool = shutil.which("htpasswd")
        if tool is None:
            raise FileNotFoundError("htpasswd")
        user, password = self.basic_auth
        line = subprocess.run([tool, "-Bbn", user, password], capture_output=True, text=True,
                              check=True).stdout.strip()
        path = self.dir / "htpasswd"
        path.write_text(line + "\n")
        return str(path)

    def _wait_ready(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1) as resp:
                    if resp.status == 200:
                        return True
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and self.basic_auth is not None:
                    return True     # up, and asking for the credentials it should
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def mark(self) -> int:
        """A position in the log: pass it to ``requests(since=...)`` to see only what
        happened after it."""
        time.sleep(0.1)  # the registry logs a request just after answering it
        if not self.log_path.exists():
            return 0
        return len(self.log_path.read_text(errors="replace").splitlines())

    def requests(self, repo: str | None = None, since: int = 0) -> list[Request]:
        """Completed requests from the log, optionally only those on ``/v2/<repo>/``."""
        out: list[Request] = []
        if not self.log_path.exists():
            return out
        time.sleep(0.1)
        for line in self.log_path.read_text(errors="replace").splitlines()[since:]:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") != "response completed":
                continue
            parts = urlsplit(str(entry.get("http.request.uri", "")))
            if repo is not None and not parts.path.startswith(f"/v2/{repo}/"):
                continue
            out.append(Request(str(entry.get("http.request.method")), parts.path,
                               parse_qs(parts.query), int(entry.get("http.response.status", 0))))
        return out

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def blob_traffic(requests: list[Request]) -> dict[str, list[str]]:
    """Digests uploaded (PUT ...?digest=), mounted (POST ?mount= -> 201), and the
    write requests of any kind (POST/PATCH/PUT on blobs).

    An upload session opened and deleted again without data (ociforge's
    push-access check: POST -> 202, DELETE -> 204) writes nothing: it is not
    counted.
    """
    uploaded: list[str] = []
    mounted: list[str] = []
    writes: list[str] = []
    cancelled = sum(1 for req in requests if req.method == "DELETE" and req.status == 204
                    and "/blobs/uploads/" in req.path)
    for req in requests:
        if "/blobs/" not in req.path:
            continue
        if (cancelled and req.method == "POST" and req.status == 202
                and "mount" not in req.query):
            cancelled -= 1
            continue
        if req.method in ("POST", "PATCH", "PUT"):
            writes.append(f"{req.method} {req.status}")
        if req.method in ("PUT", "POST") and req.status == 201 and "digest" in req.query:
            uploaded.append(req.query["digest"][0])   # POST ?digest= is a monolithic upload
        if req.method == "POST" and req.status == 201 and "mount" in req.query:
            mounted.append(req.query["mount"][0])
    return {"uploaded": uploaded, "mounted": mounted, "writes": writes}
