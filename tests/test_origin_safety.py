"""Credentials stay with their origin, judged by the parser that opens the connection.

A hostile registry (tests/hostileregistry.py, a real server on loopback) sends
URLs that parsers read differently -- ``http://127.0.0.1:B\\@127.0.0.1:A/`` is
host A to Python's urlsplit and host B to urllib3 -- or that carry user info, in
every place a registry can send us somewhere: an upload Location, a blob
redirect, a Link to the next tag page, a token realm, a chain of redirects.  A
second listener on port B logs what reaches it: for a refused URL nothing may
(no connection at all, so no Authorization, no token and no blob bytes), and
the run ends with exit 1 naming the registry and the URL, secrets masked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hostileregistry import (
    BASIC,
    PASSWORD,
    Answer,
    HostileRegistry,
    Listener,
    docker_config,
    leaked,
)
from progresslines import messages

from ociforge.errors import TransportError
from ociforge.options import RegistryOptions
from ociforge.remote.auth import Credentials
from ociforge.remote.client import RegistryClient
from ociforge.remote.transport import Transport
from ociforge.remote.urls import unsafe

# A broken implementation fails fast instead of waiting on a silent listener.
FAST = ("--retries", "0", "--timeout", "5")

pytestmark = pytest.mark.usefixtures("fast_retries")


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as second:
        yield second


def _refused(code: int, err: str, registry: HostileRegistry, *secrets: str) -> None:
    assert code == 1, err
    assert len(messages(err)) == 1, err
    assert "Traceback" not in err
    assert registry.host in err and "refusing" in err, err
    for secret in (PASSWORD, BASIC.split()[1], "STATE-SECRET", *secrets):
        assert secret not in err


def _tricky(listener: Listener, registry: HostileRegistry, path: str) -> list[str]:
    """URLs that name the second listener in ways parsers disagree on, or with user info."""
    a, b = registry.host, listener.host
    return [
        f"http://{b}\\@{a}{path}",                 # urllib3: host B; urlsplit: host A
        f"http://{b}\\\\@{a}{path}",
        f"http://{a}\\@{b}{path}",
        f"http://x:y@{b}{path}",                   # user info
        f"http://{a}@{b}{path}",
        f"http://{b}%5C@{a}{path}",                # percent-encoded backslash in user info
        f"//u:p@{b}{path}",                        # scheme-relative with user info
        f"\\\\{b}{path}",                          # backslashes read as // by browsers
    ]


# -- upload Location -------------------------------------------------------------------

@pytest.mark.parametrize("case", range(8))
def test_upload_location_to_another_origin_is_refused(case: int, src: Path, tmp_path: Path,
                                                      listener: Listener, cli) -> None:  # type: ignore[no-untyped-def]
    with HostileRegistry() as registry:
        docker_config(Path(_docker_config_dir()), registry.host)
        location = _tricky(listener, registry, "/v2/app/blobs/uploads/u?_state=STATE-SECRET")[case]
        registry.tricks["upload-start"] = location
        code, _, err = cli("copy", f"oci:{src}:t", f"{registry.host}/app:1", *FAST)
    _refused(code, err, registry)
    assert "upload Location" in err
    assert listener.connections == 0 and not listener.received
    assert not registry.requests_of("upload-put"), "no blob bytes anywhere"


def test_upload_location_on_the_registry_itself_still_works(src: Path, cli) -> None:  # type: ignore[no-untyped-def]
    with HostileRegistry() as registry:
        docker_config(Path(_docker_config_dir()), registry.host)
        registry.tricks["upload-start"] = (f"http://{registry.host}/v2/app/blobs/uploads/u0"
                                           "?_state=STATE-SECRET")
        code, _, err = cli("copy", f"oci:{src}:t", f"{registry.host}/app:1", *FAST)
    assert code == 0, err
    puts = registry.requests_of("upload-put")
    assert puts and all(h.get("authorization") == BASIC for _, _, h in puts)


# -- blob redirects and redirect chains ------------------------------------------------

@pytest.mark.parametrize("case", range(8))
def test_blob_redirect_to_another_origin_is_refused(case: int, src: Path, tmp_path: Path,
                                                    listener: Listener, cli) -> None:  # type: ignore[no-untyped-def]
    with HostileRegistry(src) as registry:
        docker_config(Path(_docker_config_dir()), registry.host)
        target = _tricky(listener, registry, "/cdn/blob?X-Signature=SIG-SECRET")[case]
        registry.tricks["blob"] = Answer(307, {"Location": target})
        out = tmp_path / "out"
        code, _, err = cli("copy", f"{registry.host}/app:t", f"oci:{out}:t", *FAST)
    _refused(code, err, registry, "SIG-SECRET")
    assert "redirect" in err
    assert listener.connections == 0
    assert not (out / "index.json").exists()


def test_redirect_chain_through_another_origin_carries_no_credentials(
        src: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """registry -> other origin -> registry: the middle hop gets no Authorization, the
    registry's own origin gets it again (hop by hop, same parser)."""
    with HostileRegistry(src) as registry:
        back = (f"HTTP/1.1 307 X\r\nLocation: http://{registry.host}/v2/app/manifests/t"
                "?back=1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").encode()
        with Listener(answer=back) as middle:
            registry.tricks["manifest"] = lambda path: None if "back=1" in path else Answer(
                307, {"Location": f"http://{middle.host}/hop"})
            docker_config(Path(_docker_config_dir()), registry.host)
            # --no-cache: one GET of the tag (the cache would HEAD it first, a second hop)
            code, _, err = cli("copy", f"{registry.host}/app:t", f"oci:{tmp_path / 'o'}:t",
                               "--timeout", "5", "--no-cache")
        assert code == 0, err
        assert middle.connections == 1 and b"GET /hop " in middle.received
        assert leaked(middle.received) == []
        final = [h for m, p, h in registry.requests_of("manifest") if "back=1" in p]
        assert final and final[0].get("authorization") == BASIC


@pytest.mark.parametrize("case", range(8))
def test_redirect_chain_switching_to_a_tricky_url_is_refused(case: int, src: Path,
                                                             tmp_path: Path, listener: Listener,
                                                             cli) -> None:  # type: ignore[no-untyped-def]
    """registry -> registry (relative) -> another origin -> a URL naming the listener."""
    with HostileRegistry(src) as registry:
        tricky = _tricky(listener, registry, "/v2/app/manifests/t")[case]
        hop = (f"HTTP/1.1 302 X\r\nLocation: {tricky}\r\nContent-Length: 0\r\n"
               "Connection: close\r\n\r\n").encode()
        with Listener(answer=hop) as middle:
            registry.tricks["manifest"] = lambda path: (
                Answer(307, {"Location": f"http://{middle.host}/hop"}) if "step=2" in path
                else Answer(307, {"Location": "/v2/app/manifests/t?step=2"}))
            docker_config(Path(_docker_config_dir()), registry.host)
            code, _, err = cli("copy", f"{registry.host}/app:t", f"oci:{tmp_path / 'o'}:t",
                               *FAST)
        _refused(code, err, registry)
        assert leaked(middle.received) == []
    assert listener.connections == 0


# -- Link pagination -------------------------------------------------------------------

def _client(registry: HostileRegistry) -> RegistryClient:
    return RegistryClient(registry.host, RegistryOptions(retries=0, timeout=5),
                          Credentials("mallory-victim", PASSWORD))


@pytest.mark.parametrize("case", range(8))
def test_tag_list_link_to_another_origin_is_refused(case: int, listener: Listener) -> None:
    with HostileRegistry() as registry:
        url = _tricky(listener, registry, "/v2/app/tags/list?last=a&n=1")[case]
        registry.tricks["tags"] = f'<{url}>; rel="next"'
        with pytest.raises(TransportError) as info:
            _client(registry).list_tags("app")
    text = str(info.value)
    assert registry.host in text and "refusing the Link" in text
    assert PASSWORD not in text
    assert listener.connections == 0


def test_tag_list_link_to_a_plain_other_origin_is_refused(listener: Listener) -> None:
    with HostileRegistry() as registry:
        registry.tricks["tags"] = f'<http://{listener.host}/v2/app/tags/list?last=a>; rel="next"'
        with pytest.raises(TransportError, match="leads away from"):
            _client(registry).list_tags("app")
    assert listener.connections == 0


def test_tag_list_link_on_the_registry_is_followed() -> None:
    with HostileRegistry() as registry:
        registry.tricks["tags"] = '</v2/app/tags/list?last=a&n=1>; rel="next"'
        assert _client(registry).list_tags("app") == ["a", "a"]
    pages = registry.requests_of("tags")
    assert len(pages) == 2 and all(h.get("authorization") == BASIC for _, _, h in pages)


# -- token realms ----------------------------------------------------------------------

@pytest.mark.parametrize("case", range(5))
def test_token_realm_with_user_info_or_backslash_is_refused(case: int, tmp_path: Path,
                                                            listener: Listener, cli) -> None:  # type: ignore[no-untyped-def]
    with HostileRegistry(bearer=True) as registry:
        realms = [
            f"http://localhost:x@{listener.host}/token",   # passed the loopback check before
            f"http://{listener.host}\\@{registry.host}/token",
            f"http://{registry.host}@{listener.host}/token",
            f"https://user:pw@{listener.host}/token",
            f"http://localhost\\@{listener.host}/token",
        ]
        registry.tricks["realm"] = realms[case]
        docker_config(Path(_docker_config_dir()), registry.host)
        code, _, err = cli("copy", f"{registry.host}/app:t", f"oci:{tmp_path / 'o'}:t",
                           *FAST)
        assert not registry.requests_of("token")
    _refused(code, err, registry, "pw@")
    assert "token service" in err
    assert listener.connections == 0


# -- the parser that judges is the parser that connects --------------------------------

def test_the_origin_judged_is_the_origin_connected() -> None:
    """For URLs that are not refused, the listener that gets the connection is the one
    ``Transport.target`` named, and only the registry's own origin gets Authorization."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    with Listener(answer=ok) as a, Listener(answer=ok) as b:
        transport = Transport(a.host, a.host, RegistryOptions(retries=0, timeout=5),
                              lambda: Credentials("u", PASSWORD))
        transport._base = f"http://{a.host}"
        transport.auth.set_challenge('Basic realm="r"')
        pa, pb = a.port, b.port
        urls = [
            f"http://127.0.0.1:{pa}/x", f"HTTP://127.0.0.1:{pa}/x", f"http://127.0.0.1:0{pa}/x",
            f"http://127.0.0.1:{pa}#@127.0.0.1:{pb}/x", f"http://127.0.0.1:{pa}?@127.0.0.1:{pb}/",
            f"http://127.0.0.1:{pb}/x", f"http://127.0.0.1:{pb}/@127.0.0.1:{pa}/",
            f"http://127.0.0.1:{pb}\\@127.0.0.1:{pa}/", f"http://127.0.0.1:{pb}%5C@127.0.0.1:{pa}/",
            f"http://127.0.0.1%3A{pb}@127.0.0.1:{pa}/", f"http://127.0.0.1:{pa}:{pb}/",
            f"http://127.0.0.1:{pb}\t/", f"http://127.0.0.1:{pa}/\r\nX: y",
            f"http://[::ffff:127.0.0.1]x:{pa}/", f"http://127.0.0.1:{pa}/caf\u00e9",
        ]
        for url in urls:
            before = (a.connections, b.connections, len(a.received), len(b.received))
            if unsafe(url) is not None:
                with pytest.raises(TransportError, match="refusing"):
                    transport.request("GET", url, ok=(200,))
                assert (a.connections, b.connections) == before[:2], url
                continue
            origin = transport.target(url)
            transport.request("GET", url, ok=(200,)).close()
            got = a if a.connections > before[0] else b
            assert (a.connections + b.connections) == before[0] + before[1] + 1, url
            assert origin.port == got.port, url
            sent = bytes(got.received[before[2] if got is a else before[3]:])
            assert (BASIC.split()[0].encode() in sent) is (origin == transport.origin), url
        assert leaked(b.received) == []
        transport.close()


def _docker_config_dir() -> str:
    import os

    return os.environ["DOCKER_CONFIG"]
