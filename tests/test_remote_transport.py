"""Transport: challenge parsing, URL masking, retries, redirects, rate limits."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy, Rule
from httpserver import LoopbackServer, QuietHandler
from registry_fixtures import make_image

from ociforge.errors import DigestMismatchError, RegistryError, TransportError
from ociforge.model.platform import Platform
from ociforge.model.reference import Reference
from ociforge.options import Options, RegistryOptions
from ociforge.remote.auth import Credentials, merge_scopes, parse_challenges
from ociforge.remote.client import RegistryClient
from ociforge.remote.pull import pull
from ociforge.remote.push import push
from ociforge.remote.transport import is_loopback, mask_url

AMD64 = Options(platform=Platform.parse("linux/amd64"))


def _fast(**kwargs: Any) -> RegistryOptions:
    """Registry options with short backoff delays (the faults here are retried)."""
    return RegistryOptions(retry_base=0.01, **kwargs)


@pytest.mark.parametrize(("header", "expected"), [
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
     'scope="repository:samalba/my-app:pull,push"',
     [("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                  "scope": "repository:samalba/my-app:pull,push"})]),
    ('Basic realm="basic-realm"', [("basic", {"realm": "basic-realm"})]),
    ('bearer realm="r", scope="repository:a:push,pull repository:b:pull", '
     'error="insufficient_scope"',
     [("bearer", {"realm": "r", "scope": "repository:a:push,pull repository:b:pull",
                  "error": "insufficient_scope"})]),
    ('Bearer realm="a\\"b,c"', [("bearer", {"realm": 'a"b,c'})]),
    ('Basic realm="x", Bearer realm="y",service=z',
     [("basic", {"realm": "x"}), ("bearer", {"realm": "y", "service": "z"})]),
    ('Negotiate, Basic realm="x"', [("negotiate", {}), ("basic", {"realm": "x"})]),
    ("", []),
    ('=broken "stuff', []),
])
def test_parse_challenges(header: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    got = [(c.scheme, c.params) for c in parse_challenges(header)]
    assert got == expected


def test_parse_challenges_never_crashes() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=200))
    def check(text: str) -> None:
        for challenge in parse_challenges(text):
            assert isinstance(challenge.scopes, list)

    check()


def test_scopes_and_masking() -> None:
    assert merge_scopes(["repository:a:pull", "repository:a:push,pull", "repository:b:pull"]) == [
        "repository:a:pull,push", "repository:b:pull"]
    assert mask_url("https://cdn.example/blob?X-Amz-Signature=abc&digest=sha256:1") == \
        "https://cdn.example/blob?X-Amz-Signature=***&digest=sha256:1"
    assert "secret" not in mask_url("http://h/v2/x/blobs/uploads/u?_state=secret&digest=d")


@pytest.mark.parametrize(("host", "loop"), [
    ("localhost", True), ("localhost:5000", True), ("127.0.0.1:5000", True),
    ("127.3.2.1", True), ("[::1]:5000", True), ("::1", True), ("10.0.0.1:5000", False),
    ("ghcr.io", False), ("localhost.example.com", False), ("docker.io", False),
])
def test_is_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


def test_non_loopback_never_uses_plain_http() -> None:
    client = RegistryClient("example.invalid", _fast(retries=0))
    assert client.transport.loopback is False and client.transport.insecure is False
    with pytest.raises(TransportError, match=r"https://example\.invalid/v2/"):
        client.ping()


# -- against the real registry through a fault-injecting proxy -------------------------

@pytest.fixture
def proxy(registry) -> Iterator[FaultProxy]:  # type: ignore[no-untyped-def]
    with FaultProxy(registry.host) as p:
        yield p
        print(p.report())


def test_retries_on_5xx_and_retry_after(proxy: FaultProxy, tmp_path: Path) -> None:
    proxy.add(Rule("status", method="HEAD", path="/blobs/", status=503, times=2))
    proxy.add(Rule("status", method="PUT", path="/blobs/uploads/", status=502, times=1))
    proxy.add(Rule("status", method="PUT", path="/manifests/", status=429, times=1,
                   headers={"Retry-After": "0"}))
    proxy.add(Rule("status", method="GET", path="/manifests/", status=500, times=1))
    image = make_image(tmp_path / "blobs", (2000,))
    ref = Reference.parse(f"{proxy.host}/retry/app:1")
    client = RegistryClient(proxy.host, _fast(retries=3))
    assert push(client, ref, image, AMD64).digest == image.digest
    assert pull(client, ref, AMD64).digest == image.digest
    assert sum(proxy.injected.values()) == 5


def test_connection_reset_mid_upload_restarts(proxy: FaultProxy, tmp_path: Path) -> None:
    proxy.add(Rule("reset", method="PUT", path="/blobs/uploads/", times=2))
    image = make_image(tmp_path / "blobs", (3 << 20,))
    ref = Reference.parse(f"{proxy.host}/reset/app:1")
    client = RegistryClient(proxy.host, _fast(retries=3, jobs=1))
    assert push(client, ref, image, AMD64).digest == image.digest
    back = pull(client, ref, AMD64)
    with back.layers[0].open() as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == image.layers[0].digest.hex


def test_retries_are_bounded(proxy: FaultProxy) -> None:
    proxy.add(Rule("status", method="GET", path="/manifests/", status=503, times=100))
    client = RegistryClient(proxy.host, _fast(retries=2))
    with pytest.raises(RegistryError) as info:
        client.get_manifest("bounded/app", "1")
    assert info.value.status == 503
    assert proxy.injected["status 503"] == 3


def test_rate_limit_is_reported(proxy: FaultProxy) -> None:
    proxy.add(Rule("status", method="GET", path="/manifests/", status=429, times=100,
                   code="TOOMANYREQUESTS", headers={"ratelimit-limit": "100;w=21600",
                                                    "ratelimit-remaining": "0;w=21600"}))
    client = RegistryClient(proxy.host, _fast(retries=1))
    with pytest.raises(RegistryError) as info:
        client.get_manifest("limited/app", "1")
    assert info.value.code == "TOOMANYREQUESTS"
    assert "ratelimit-remaining=0;w=21600" in str(info.value)


def test_corrupt_blob_is_refused(proxy: FaultProxy, tmp_path: Path) -> None:
    image = make_image(tmp_path / "blobs", (5000,))
    ref = Reference.parse(f"{proxy.host}/corrupt/app:1")
    client = RegistryClient(proxy.host, _fast())
    push(client, ref, image, AMD64)
    back = pull(client, ref, AMD64)
    proxy.add(Rule("corrupt", method="GET", path=f"/blobs/{image.layers[0].digest}"))
    with pytest.raises(DigestMismatchError), back.layers[0].open() as fh:
        fh.read()


def test_mount_refused_falls_back_to_upload(proxy: FaultProxy, tmp_path: Path) -> None:
    image = make_image(tmp_path / "blobs", (1000,))
    client = RegistryClient(proxy.host, _fast())
    push(client, Reference.parse(f"{proxy.host}/fb/base:1"), image, AMD64)
    pulled = pull(client, Reference.parse(f"{proxy.host}/fb/base:1"), AMD64)
    proxy.add(Rule("status", method="POST", path="mount=", status=401, code="UNAUTHORIZED",
                   times=1))
    proxy.add(Rule("strip_mount", method="POST", path="mount=", times=1))
    result = push(client, Reference.parse(f"{proxy.host}/fb/app:1"), pulled, AMD64)
    assert result.count("uploaded") == 2 and result.count("mounted") == 0


# -- redirects -----------------------------------------------------------------------

class _Recorder(QuietHandler):
    seen: list[dict[str, str]]
    target: str
    body = b"hello blob"

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers.items()))
        if self.path == "/v2/":
            if not self.headers.get("Authorization"):
                self.reply(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
                return
            self.reply(200)
            return
        if "/blobs/" in self.path and self.target:
            self.reply(307, headers={"Location": f"{self.target}/storage/blob?X-Signature=abc"})
            return
        self.reply(200, self.body)


def test_cross_host_redirect_drops_authorization() -> None:
    storage_seen: list[dict[str, str]] = []
    api_seen: list[dict[str, str]] = []
    storage_handler = type("Storage", (_Recorder,), {"seen": storage_seen, "target": ""})
    storage = LoopbackServer(storage_handler)
    # "localhost" and "127.0.0.1" are different hosts to an HTTP client
    api_handler = type("Api", (_Recorder,), {
        "seen": api_seen, "target": f"http://localhost:{storage.port}"})
    api = LoopbackServer(api_handler)
    try:
        host = api.host
        client = RegistryClient(host, _fast(), Credentials("u", "redirect-secret"))
        digest = "sha256:" + hashlib.sha256(_Recorder.body).hexdigest()
        with client.get_blob("a/b", digest, len(_Recorder.body)) as fh:
            assert fh.read() == _Recorder.body
        expected = "Basic " + base64.b64encode(b"u:redirect-secret").decode()
        assert any(h.get("Authorization") == expected for h in api_seen)
        assert storage_seen, "the blob came from the storage host"
        assert all("Authorization" not in h for h in storage_seen)
    finally:
        api.stop()
        storage.stop()


def test_truncated_download_is_resumed_with_range(proxy: FaultProxy, tmp_path: Path) -> None:
    image = make_image(tmp_path / "blobs", (400_000,))
    ref = Reference.parse(f"{proxy.host}/resume/app:1")
    client = RegistryClient(proxy.host, _fast())
    push(client, ref, image, AMD64)
    back = pull(client, ref, AMD64)
    proxy.add(Rule("truncate", method="GET", path=f"/blobs/{image.layers[0].digest}"))
    with back.layers[0].open() as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == image.layers[0].digest.hex
    assert proxy.injected["truncate"] == 1
    assert proxy.count("GET", f"/blobs/{image.layers[0].digest}") == 2


def test_chunked_upload_honours_min_chunk_length(proxy: FaultProxy, tmp_path: Path) -> None:
    proxy.add(Rule("add_headers", method="POST", path="/blobs/uploads/", times=10,
                   headers={"OCI-Chunk-Min-Length": "100000"}))
    image = make_image(tmp_path / "blobs", (350_000,))
    client = RegistryClient(proxy.host, _fast(chunk_size=16 * 1024, jobs=1))
    push(client, Reference.parse(f"{proxy.host}/minchunk/app:1"), image, AMD64)
    patches = [length for method, _, length in proxy.bodies if method == "PATCH"]
    assert len(patches) >= 4                      # 350 kB in >= 100 kB chunks, + the config
    small = [length for length in patches if length is None or length < 100_000]
    assert len(small) <= 2                        # only the last chunk of each blob
    assert pull(client, Reference.parse(f"{proxy.host}/minchunk/app:1"), AMD64).digest == \
        image.digest


def test_exception_texts_mask_signed_urls() -> None:
    from ociforge.remote.transport import _short

    exc = Exception("Max retries exceeded with url: /blob?X-Amz-Signature=abcdef123&token=tok-9"
                    "&digest=sha256:1 (Caused by X)")
    text = _short(exc)
    assert "abcdef123" not in text and "tok-9" not in text and "digest=sha256:1" in text
