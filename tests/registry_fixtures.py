"""Real registries for the tests: Debian's docker-registry (CNCF distribution 2.8).

Session fixtures, each started once on a free loopback port with its own config
and stopped at teardown:

* ``registry``: plain HTTP, no auth.
* ``tls_registry``: htpasswd Basic auth over TLS with a CA made here
  (``.username``/``.password``, ``.ca_path`` (PEM), ``.cert_dir`` (for skopeo)).
* ``token_registry``: Docker-Hub-style token auth served by tests/tokenserver.py
  (``.username``/``.password``, ``.token_server``).

Every server exposes ``.host`` ("127.0.0.1:PORT"), ``.url``, ``.data_dir`` and
``.log_path``; the registry's log (access log included) is attached to the
report of any failing test that used it.
"""

from __future__ import annotations

import atexit
import base64
import datetime as dt
import ipaddress
import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from tools import free_port, require_tool

if TYPE_CHECKING:
    from tokenserver import TokenServer

_STARTED: list[RegistryServer] = []
LOG_MARKER = "ociforge-test-log-marker"      # the repository name of settle()'s requests
_ACCESS_LINE = re.compile(r'^\S+ - \S+ \[[^\]]*\] "([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3}) ', re.M)


@dataclass
class RegistryServer:
    host: str
    scheme: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    username: str | None = None
    password: str | None = None
    ca_path: Path | None = None
    cert_dir: Path | None = None
    token_server: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def creds(self) -> str:
        """``user:pass`` for skopeo --creds."""
        return f"{self.username}:{self.password}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_mark(self) -> int:
        """Current log size: pass to ``log_since`` to see only later lines."""
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _read_from(self, mark: int) -> str:
        with open(self.log_path, "rb") as fh:
            fh.seek(mark)
            return fh.read().decode(errors="replace")

    def settle(self) -> None:
        """Wait until the registry has logged the requests it answered so far.

        It writes a request's lines when the handler returns, which can be just after
        the client has read the answer (a blob body is sent before).  So a marker
        request is sent and its own line awaited: the lines of requests answered before
        the marker was even sent are written by then (they had the marker's whole round
        trip to be).  A positive signal, where waiting for a quiet log guessed.
        """
        if self.proc is None or self.proc.poll() is not None:
            return
        marker = f"/v2/{LOG_MARKER}/{secrets.token_hex(8)}/tags/list"
        start = self.log_mark()
        try:
            requests.get(self.url + marker, timeout=60,
                         verify=str(self.ca_path) if self.ca_path else False).close()
        except requests.RequestException:
            return      # a registry that does not answer logs nothing more either
        deadline = time.monotonic() + 60
        while marker not in self._read_from(start):
            if time.monotonic() > deadline:
                raise AssertionError(f"the registry never logged {marker}")
            time.sleep(0.01)

    def log_since(self, mark: int) -> str:
        """The log written after ``mark``, once every request answered so far is in it
        (``settle``), without the marker's own lines."""
        self.settle()
        return "".join(line for line in self._read_from(mark).splitlines(keepends=True)
                       if LOG_MARKER not in line)

    def requests_since(self, mark: int) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request the registry answered after ``mark``,
        from its access log: counts that show what a client did, not how long it took."""
        return [(m.group(1), m.group(2), int(m.group(3)))
                for m in _ACCESS_LINE.finditer(self.log_since(mark))]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if self.token_server is not None:
            self.token_server.stop()


def write_docker_config(doc: dict[str, Any]) -> Path:
    """``doc`` as config.json in this test's own DOCKER_CONFIG (conftest gives each test one)."""
    path = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def docker_auth(user: str, password: str) -> str:
    """The ``auth`` value of a docker config entry: base64 of ``user:password``."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def docker_login(host: str, user: str, password: str) -> None:
    """Basic credentials for ``host`` added to this test's docker config, as `docker login`
    stores them."""
    path = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    doc = json.loads(path.read_text()) if path.exists() else {"auths": {}}
    doc.setdefault("auths", {})[host] = {"auth": docker_auth(user, password)}
    write_docker_config(doc)


def start_registry(
    root: Path, auth: dict[str, Any] | None = None, tls: tuple[Path, Path] | None = None,
    verify: str | bool = False,
) -> RegistryServer:
    """Start docker-registry with a config of our own; wait until /v2/ answers.

    A free port can be taken by someone else before the registry binds it: then
    try again on another port (a few times).
    """
    for attempt in range(3):
        try:
            return _start_registry(root, auth, tls, verify)
        except _PortTaken:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")



def start_token_registry(root: Path, tokens: TokenServer) -> RegistryServer:
    """docker-registry trusting ``tokens`` (started here) for token auth; stopping the
    registry stops the token server too."""
    realm = tokens.start()
    (root / "token.crt").write_bytes(tokens.cert_pem)
    try:
        server = start_registry(root, auth={"token": {
            "realm": realm, "service": tokens.service, "issuer": tokens.issuer,
            "rootcertbundle": str(root / "token.crt")}})
    except Exception:
        tokens.stop()
        raise
    server.token_server = tokens
    return server

class _PortTaken(RuntimeError):
    pass


def _start_registry(
    root: Path, auth: dict[str, Any] | None, tls: tuple[Path, Path] | None,
    verify: str | bool,
) -> RegistryServer:
    binary = require_tool("docker-registry")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    http: dict[str, Any] = {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)}
    if tls is not None:
        http["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")},
                    "delete": {"enabled": True}},
        "http": http,
    }
    if auth:
        config["auth"] = auth
    cfg_path = root / "config.yml"
    cfg_path.write_text(json.dumps(config))  # JSON is valid YAML
    log_path = root / "registry.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the child owns it
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    proc = subprocess.Popen([binary, "serve", str(cfg_path)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env)
    log.close()
    server = RegistryServer(f"127.0.0.1:{port}", "https" if tls else "http", root / "data",
                            log_path, proc)
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            text = server.log()
            if "address already in use" in text:
                raise _PortTaken(text)
            raise RuntimeError(f"docker-registry exited {proc.returncode}:\n{text}")
        try:
            resp = requests.get(f"{server.url}/v2/", timeout=1, verify=verify)
            if resp.status_code in (200, 401):
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"docker-registry did not answer on {server.url}:\n{server.log()}")
        time.sleep(0.05)
    _STARTED.append(server)
    atexit.register(server.stop)   # even if the session dies before teardown
    return server


def make_ca_and_cert(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
                     ) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate it signs: (ca.pem, cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ociforge test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path = directory / "ca.pem", directory / "cert.pem"
    key_path = directory / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


def _htpasswd(path: Path, user: str, password: str) -> None:
    tool = require_tool("htpasswd")
    out = subprocess.run([tool, "-Bbn", user, password], capture_output=True, text=True,
                         check=True).stdout
    path.write_text(out.strip() + "\n")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A plain-HTTP registry without auth on 127.0.0.1."""
    server = start_registry(tmp_path_factory.mktemp("registry"))
    server.extra["fixture"] = "registry"
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """htpasswd Basic auth over TLS; the CA is made here and trusted only when passed."""
    root = tmp_path_factory.mktemp("tls-registry")
    ca, cert, key = make_ca_and_cert(root / "pki")
    user, password = "alice", "s3cret-" + secrets.token_hex(6)
    _htpasswd(root / "htpasswd", user, password)
    server = start_registry(
        root, auth={"htpasswd": {"realm": "basic-realm", "path": str(root / "htpasswd")}},
        tls=(cert, key), verify=str(ca),
    )
    server.username, server.password, server.ca_path = user, password, ca
    cert_dir = root / "certs.d"
    cert_dir.mkdir()
    (cert_dir / "ca.crt").write_bytes(ca.read_bytes())
    server.cert_dir = cert_dir
    server.extra["fixture"] = "tls_registry"
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """Token auth like Docker Hub's: the registry trusts tests/tokenserver.py's certificate."""
    from tokenserver import TokenServer

    root = tmp_path_factory.mktemp("token-registry")
    user, password = "bob", "t0ken-" + secrets.token_hex(6)
    server = start_token_registry(root, TokenServer(users={user: password}))
    server.username, server.password = user, password
    server.extra["fixture"] = "token_registry"
    yield server
    server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        used = set(getattr(item, "fixturenames", ()))
        for server in _STARTED:
            if server.proc is not None and server.extra.get("fixture") in used:
                tail = server.log()[-6000:]
                report.sections.append((f"registry log {server.host}", tail))


# -- small images for registry tests -----------------------------------------

from imagegen import make_layer  # noqa: E402  one helper for every test's small layers


def push_scratch(host: str, repo: str, tag: str, arch: str = "amd64") -> str:
    """Push a layer-less image with the registry client; returns its manifest digest."""
    from ociforge.model import mediatypes as mt
    from ociforge.model.mutate import scratch
    from ociforge.model.platform import Platform
    from ociforge.remote.client import RegistryClient

    image = scratch(Platform.parse(f"linux/{arch}"))
    client = RegistryClient(host)
    try:
        client.put_blob_bytes(repo, image.config_bytes, mt.OCI_CONFIG)
        client.put_manifest(repo, tag, image.manifest_bytes, image.media_type)
    finally:
        client.close()
    return str(image.digest)


def make_image(directory: Path, sizes: tuple[int, ...] = (1024, 2048), base: Any = None,
               platform: str = "linux/amd64") -> Any:
    """An image of random-content layers on ``base`` (default: scratch for ``platform``)."""
    from ociforge.model.mutate import append_layers, scratch
    from ociforge.model.platform import Platform

    layers = [make_layer(directory, s, name=f"f{i}-{secrets.token_hex(4)}.bin")
              for i, s in enumerate(sizes)]
    return append_layers(base if base is not None else scratch(Platform.parse(platform)),
                         layers, epoch=0)
