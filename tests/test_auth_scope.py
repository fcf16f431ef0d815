"""Credentials and TLS settings stay with the registry's own origin.

A registry may send us elsewhere (an upload Location on object storage, a blob
or manifest redirect, a token realm): the other host still gets the request
when that is safe, but never the Authorization header, never the registry's
--insecure / --ca-cert settings, and never a downgrade from HTTPS to plain HTTP.
Two in-process servers on 127.0.0.1 with different ports are two origins.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from httpserver import LoopbackServer, QuietHandler

from ociforge.errors import OciforgeError, TransportError
from ociforge.options import RegistryOptions
from ociforge.remote.auth import Credentials
from ociforge.remote.client import RegistryClient
from ociforge.remote.transport import Transport

USER, PASSWORD = "alice", "s3cret-pass-word"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@dataclass
class Seen:
    """What one fake server received: (method, path, Authorization or None)."""

    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    stored: bytearray = field(default_factory=bytearray)

    @property
    def auth_headers(self) -> list[str]:
        return [a for _, _, a in self.requests if a is not None]


@dataclass
class Pair:
    registry: str
    storage: str
    reg_seen: Seen
    store_seen: Seen


@pytest.fixture
def pair() -> Iterator[Pair]:
    """A Basic-auth registry whose uploads and redirects point at a second server."""
    reg_seen, store_seen = Seen(), Seen()
    state: dict[str, Any] = {}

    class Storage(QuietHandler):
        def _handle(self) -> None:
            store_seen.requests.append((self.command, self.path,
                                        self.headers.get("Authorization")))
            store_seen.stored.extend(self.read_body())
            if self.command == "PATCH":
                self.reply(202, headers={"Location": "/upload/abc",
                                         "Range": f"0-{len(store_seen.stored) - 1}"})
            elif self.command == "PUT" and "digest=" in self.path:
                digest = self.path.split("digest=", 1)[1]
                self.reply(201, headers={"Docker-Content-Digest": digest.replace("%3A", ":")})
            elif self.command == "GET" and self.path == "/manifest":
                self.reply(200, b"{}",
                           {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
            else:
                self.reply(500)

        do_GET = do_PUT = do_PATCH = do_POST = _handle

    class Registry(Storage):
        def _handle(self) -> None:
            auth = self.headers.get("Authorization")
            reg_seen.requests.append((self.command, self.path, auth))
            self.read_body()
            if state.get("realm"):
                self.reply(401, headers={"WWW-Authenticate": f'Bearer realm="{state["realm"]}",'
                                                             'service="fake"'})
                return
            if auth != BASIC:
                self.reply(401, headers={"WWW-Authenticate": 'Basic realm="fake"'})
                return
            if self.command == "HEAD":
                self.reply(404)
            elif self.command == "POST" and "/blobs/uploads/" in self.path:
                target = ("/v2/app/blobs/uploads/abc" if state.get("chunked_here")
                          else f"http://{state['storage']}/upload/abc")
                self.reply(202, headers={"Location": target})
            elif self.command == "PATCH":
                self.reply(202, headers={"Location": f"http://{state['storage']}/upload/abc",
                                         "Range": "0-0"})
            elif self.command == "GET" and "/manifests/" in self.path:
                self.reply(307, headers={"Location": f"http://{state['storage']}/manifest"})
            else:
                self.reply(200)

        do_GET = do_PUT = do_PATCH = do_POST = do_HEAD = _handle

    store = LoopbackServer(Storage)
    reg = LoopbackServer(Registry)
    state["storage"] = store.host
    p = Pair(reg.host, store.host, reg_seen, store_seen)
    p.__dict__["state"] = state
    try:
        yield p
    finally:
        reg.stop()
        store.stop()


def _client(pair: Pair, **options: Any) -> RegistryClient:
    return RegistryClient(pair.registry, RegistryOptions(retries=0, **options),
                          Credentials(USER, PASSWORD))


def test_upload_location_on_another_host_gets_no_authorization(
        pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = _client(pair)
    data = b"layer bytes " * 1000
    digest = client.put_blob_bytes("app", data)
    assert pair.reg_seen.auth_headers, "the registry itself must get the credentials"
    assert [m for m, _, _ in pair.store_seen.requests] == ["PUT"]
    assert pair.store_seen.auth_headers == []
    assert bytes(pair.store_seen.stored) == data
    assert hashlib.sha256(data).hexdigest() == digest.hex
    assert PASSWORD not in caplog.text and BASIC.split()[1] not in caplog.text


def test_chunked_patch_location_on_another_host_gets_no_authorization(pair: Pair) -> None:
    pair.__dict__["state"]["chunked_here"] = True
    client = _client(pair, chunk_size=1)
    data = b"ab"
    client.put_blob_bytes("app", data)
    registry_patches = [r for r in pair.reg_seen.requests if r[0] == "PATCH"]
    assert registry_patches and all(a == BASIC for _, _, a in registry_patches)
    # the first PATCH answered with a Location elsewhere: the rest went there, bare
    assert [m for m, _, _ in pair.store_seen.requests] == ["PATCH", "PUT"]
    assert pair.store_seen.auth_headers == []
    assert bytes(pair.store_seen.stored) == b"b"


def test_redirect_to_another_host_is_followed_without_authorization(pair: Pair) -> None:
    resp = _client(pair).transport.request("GET", "/v2/app/manifests/latest", scopes=[])
    assert resp.status_code == 200 and resp.content == b"{}"
    assert pair.store_seen.requests == [("GET", "/manifest", None)]
    assert pair.reg_seen.requests[-1][2] == BASIC


def _transport(base: str, **options: Any) -> Transport:
    """A transport whose scheme is already known (no network needed)."""
    host = base.split("://", 1)[1]
    transport = Transport(host, host, RegistryOptions(retries=0, **options), lambda: None)
    transport._base = base
    return transport


def test_https_registry_never_downgrades_to_plain_http() -> None:
    transport = _transport("https://registry.example.test")
    with pytest.raises(TransportError) as info:
        transport.check_target("http://storage.example.test/upload/abc?_state=SECRET")
    text = str(info.value)
    assert "registry.example.test" in text and "plain HTTP" in text
    assert "SECRET" not in text
    with pytest.raises(TransportError):
        transport.check_target("file:///etc/passwd")
    transport.check_target("https://storage.example.test/upload/abc")


def test_https_downgrade_is_refused_before_any_request(pair: Pair) -> None:
    client = _client(pair)
    client.transport._base = f"https://{pair.registry}"
    with pytest.raises(TransportError, match=pair.registry):
        client.transport.request("PUT", f"http://{pair.storage}/upload/abc", body=b"x",
                                 ok=(201,))
    assert pair.store_seen.requests == []


def test_authorization_only_for_the_exact_origin() -> None:
    transport = _transport("https://registry.example.test")
    assert transport.same_origin("https://registry.example.test:443/v2/x")
    assert transport.same_origin("https://REGISTRY.example.test/v2/x")
    assert not transport.same_origin("https://registry.example.test:8443/v2/x")
    assert not transport.same_origin("http://registry.example.test/v2/x")
    assert not transport.same_origin("https://registry.example.test.evil.test/v2/x")
    assert not transport.same_origin("https://evil.test/registry.example.test")


@pytest.mark.parametrize(("base", "realm", "options", "allowed"), [
    ("https://registry.example.test", "https://auth.example.test/token", {}, True),
    ("https://registry.example.test", "http://auth.example.test/token", {}, False),
    ("https://registry.example.test", "http://registry.example.test/token", {}, False),
    ("https://registry.example.test", "http://127.0.0.1:5001/token", {}, True),
    ("https://registry.example.test", "http://auth.example.test/token",
     {"insecure": ("registry.example.test",)}, True),
    ("http://127.0.0.1:5000", "http://auth.example.test/token", {}, False),
    ("https://registry.example.test", "ftp://auth.example.test/token", {}, False),
])
def test_token_realm_over_plain_http_is_refused(base: str, realm: str, options: dict[str, Any],
                                                allowed: bool) -> None:
    transport = _transport(base, **options)
    if allowed:
        transport.check_realm(realm)
    else:
        with pytest.raises(TransportError, match=transport.registry):
            transport.check_realm(realm)


def test_plain_http_realm_refused_end_to_end_without_leaking(pair: Pair) -> None:
    # Nothing listens at this realm: refusing must happen before any connection.
    pair.__dict__["state"]["realm"] = "http://auth.example.invalid/token"
    client = _client(pair)
    with pytest.raises(OciforgeError) as info:
        client.get_manifest("app", "latest")
    text = str(info.value)
    assert pair.registry in text and "plain HTTP" in text
    assert PASSWORD not in text and BASIC.split()[1] not in text
    assert info.value.exit_code == 1


def test_insecure_and_ca_cert_apply_only_to_the_registry_host(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    insecure = _transport("https://registry.example.test:5000",
                          insecure=("registry.example.test:5000",))
    assert insecure.verify_for(insecure.target("https://registry.example.test:5000/v2/")) is False
    assert insecure.verify_for(insecure.target("https://storage.example.test/blob")) is True
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    custom = _transport("https://registry.example.test", ca_cert=str(ca))
    assert isinstance(custom.verify_for(custom.target("https://registry.example.test/v2/")), str)
    assert custom.verify_for(custom.target("https://storage.example.test/blob")) is True
