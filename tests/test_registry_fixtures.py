"""The registry fixtures themselves: each real registry answers /v2/ as configured."""

from __future__ import annotations

import requests


def test_plain_registry_answers(registry) -> None:  # type: ignore[no-untyped-def]
    resp = requests.get(f"{registry.url}/v2/", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert registry.host.startswith("127.0.0.1:")


def test_tls_registry_needs_basic_auth(tls_registry) -> None:  # type: ignore[no-untyped-def]
    url = f"{tls_registry.url}/v2/"
    resp = requests.get(url, timeout=5, verify=str(tls_registry.ca_path))
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    ok = requests.get(url, timeout=5, verify=str(tls_registry.ca_path),
                      auth=(tls_registry.username, tls_registry.password))
    assert ok.status_code == 200


def test_token_registry_accepts_minted_tokens(token_registry) -> None:  # type: ignore[no-untyped-def]
    url = f"{token_registry.url}/v2/"
    resp = requests.get(url, timeout=5)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer realm=")
    token = token_registry.token_server.mint("bob", [])
    ok = requests.get(url, timeout=5, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
