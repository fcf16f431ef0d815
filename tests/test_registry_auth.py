"""Auth against real registries: htpasswd Basic over TLS, and Docker-Hub-style tokens."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from registry_fixtures import docker_auth, make_image, make_layer, write_docker_config
from tools import require_tool

from ociforge.errors import AuthError, TransportError
from ociforge.model.image import Image
from ociforge.model.mutate import append_layers
from ociforge.model.platform import Platform
from ociforge.model.reference import Reference
from ociforge.options import Options, RegistryOptions
from ociforge.remote.auth import Credentials
from ociforge.remote.client import RegistryClient
from ociforge.remote.pull import pull
from ociforge.remote.push import push

AMD64 = Options(platform=Platform.parse("linux/amd64"))


# -- htpasswd Basic over TLS ------------------------------------------------------

def test_tls_basic_push_with_config_credentials(tls_registry, tmp_path: Path) -> None:
    write_docker_config({"auths": {tls_registry.host: {
        "auth": docker_auth(tls_registry.username, tls_registry.password)}}})
    client = RegistryClient(tls_registry.host, RegistryOptions(ca_cert=str(tls_registry.ca_path)))
    image = make_image(tmp_path / "blobs", (3000,))
    ref = Reference.parse(f"{tls_registry.host}/secure/app:1")
    assert push(client, ref, image, AMD64).digest == image.digest
    skopeo = require_tool("skopeo")
    proc = subprocess.run([skopeo, "inspect", "--raw", "--cert-dir", str(tls_registry.cert_dir),
                           "--creds", tls_registry.creds, f"docker://{ref}"],
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == image.manifest_bytes
    back = pull(client, ref, AMD64)
    assert back.digest == image.digest


def test_tls_is_verified_by_default(tls_registry) -> None:
    client = RegistryClient(tls_registry.host, RegistryOptions(retries=0),
                            Credentials(tls_registry.username, tls_registry.password))
    with pytest.raises(TransportError, match="TLS") as info:
        client.head_manifest("secure/app", "1")
    assert tls_registry.password not in str(info.value)


def test_requests_ca_bundle_env_is_honoured(tls_registry, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_registry.ca_path))
    client = RegistryClient(tls_registry.host, RegistryOptions(),
                            Credentials(tls_registry.username, tls_registry.password))
    assert client.list_tags("secure/none") == []


def test_insecure_skips_verification(tls_registry) -> None:
    client = RegistryClient(tls_registry.host, RegistryOptions(insecure=(tls_registry.host,)),
                            Credentials(tls_registry.username, tls_registry.password))
    assert client.head_manifest("secure/missing", "1") is None


def test_bad_password_fails_fast_naming_registry(tls_registry) -> None:
    wrong = "wrong-password-123"
    client = RegistryClient(tls_registry.host, RegistryOptions(ca_cert=str(tls_registry.ca_path)),
                            Credentials(tls_registry.username, wrong))
    mark = tls_registry.log_mark()
    with pytest.raises(AuthError) as info:
        client.head_manifest("secure/app", "1")
    answered = tls_registry.requests_since(mark)
    assert 1 <= len(answered) <= 2, answered     # the ping and the refused request: no retry
    assert {status for _, _, status in answered} == {401}
    assert tls_registry.host in str(info.value)
    assert "refused" in str(info.value)
    assert wrong not in str(info.value) and wrong not in repr(info.value)


def test_no_credentials_says_login(tls_registry) -> None:
    client = RegistryClient(tls_registry.host, RegistryOptions(ca_cert=str(tls_registry.ca_path)))
    with pytest.raises(AuthError, match="login"):
        client.head_manifest("secure/app", "1")


def test_cli_login_logout_tls(tls_registry, cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    monkeypatch.setattr("sys.stdin", io.StringIO("nope\n"))
    code, out, err = cli("login", tls_registry.host, "-u", tls_registry.username,
                         "--password-stdin", "--ca-cert", str(tls_registry.ca_path))
    assert code == 1 and not config.exists()
    assert tls_registry.host in err and "nope" not in err + out
    monkeypatch.setattr("sys.stdin", io.StringIO(tls_registry.password + "\n"))
    code, out, err = cli("login", tls_registry.host, "-u", tls_registry.username,
                         "--password-stdin", "--ca-cert", str(tls_registry.ca_path))
    assert code == 0, err
    assert "Login Succeeded" in out
    assert tls_registry.password not in out + err
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    doc = json.loads(config.read_text())
    assert doc["auths"][tls_registry.host]["auth"] == docker_auth(tls_registry.username,
                                                                  tls_registry.password)
    code, out, err = cli("logout", tls_registry.host)
    assert code == 0 and "Removing login credentials" in out
    assert tls_registry.host not in json.loads(config.read_text())["auths"]


# -- token auth (Docker Hub style) ---------------------------------------------------

def _token_client(token_registry, creds: Credentials | None = None) -> RegistryClient:  # type: ignore[no-untyped-def]
    return RegistryClient(token_registry.host, RegistryOptions(),
                          creds or Credentials(token_registry.username, token_registry.password))


def test_token_push_pull_and_anonymous_pull(token_registry, tmp_path: Path) -> None:
    server = token_registry.token_server
    client = _token_client(token_registry)
    image = make_image(tmp_path / "blobs", (2000, 3000))
    ref = Reference.parse(f"{token_registry.host}/tok/app:1")
    before = len(server.requests)
    push(client, ref, image, AMD64)
    asked = server.requests[before:]
    assert len(asked) == 1, "one token for the whole push"
    assert asked[0].user == token_registry.username
    assert asked[0].scopes == ["repository:tok/app:pull,push"]
    anonymous = RegistryClient(token_registry.host, RegistryOptions(), lambda: None)
    back = pull(anonymous, ref, AMD64)
    assert back.digest == image.digest
    assert server.requests[-1].user is None
    # anonymous tokens carry pull only: a push is refused with the registry's code
    with pytest.raises(AuthError) as info:
        push(anonymous, Reference.parse(f"{token_registry.host}/tok/other:1"), image, AMD64)
    assert info.value.code in ("UNAUTHORIZED", "DENIED")


def test_token_mount_asks_pull_on_source(token_registry, tmp_path: Path) -> None:
    server = token_registry.token_server
    client = _token_client(token_registry)
    base_ref = Reference.parse(f"{token_registry.host}/tok/base:1")
    push(client, base_ref, make_image(tmp_path / "blobs", (4000,)), AMD64)
    base = pull(client, base_ref, AMD64)
    assert isinstance(base, Image)
    app = append_layers(base, [make_layer(tmp_path / "blobs", 500, "app.bin")], epoch=0)
    before = len(server.requests)
    result = push(client, Reference.parse(f"{token_registry.host}/tok/app2:1"), app, AMD64)
    assert result.count("mounted") == 1
    scopes = [r.scopes for r in server.requests[before:]]
    assert ["repository:tok/app2:pull,push", "repository:tok/base:pull"] in scopes


def test_invalid_token_is_refreshed_once(token_registry, tmp_path: Path) -> None:
    client = _token_client(token_registry)
    image = make_image(tmp_path / "blobs", (100,))
    ref = Reference.parse(f"{token_registry.host}/tok/refresh:1")
    push(client, ref, image, AMD64)
    # corrupt every cached token: the registry answers 401 invalid_token
    for token in client.transport.auth._tokens.values():
        token.value = token.value[:-4] + "AAAA"
    before = len(token_registry.token_server.requests)
    assert client.head_manifest("tok/refresh", "1") is not None
    assert len(token_registry.token_server.requests) == before + 1


def test_identity_token_uses_oauth_post(token_registry, tmp_path: Path) -> None:
    server = token_registry.token_server
    server.refresh_tokens["refresh-abc-123"] = token_registry.username
    write_docker_config({"auths": {token_registry.host: {"identitytoken": "refresh-abc-123"}}})
    client = RegistryClient(token_registry.host, RegistryOptions())
    before = len(server.requests)
    push(client, Reference.parse(f"{token_registry.host}/tok/idt:1"),
         make_image(tmp_path / "blobs", (100,)), AMD64)
    assert [r.method for r in server.requests[before:]] == ["POST"]


def test_registry_token_is_sent_as_is(token_registry, tmp_path: Path) -> None:
    server = token_registry.token_server
    token = server.mint(token_registry.username, ["repository:tok/rt:pull,push"])
    write_docker_config({"auths": {token_registry.host: {"registrytoken": token}}})
    client = RegistryClient(token_registry.host, RegistryOptions())
    before = len(server.requests)
    push(client, Reference.parse(f"{token_registry.host}/tok/rt:1"),
         make_image(tmp_path / "blobs", (100,)), AMD64)
    assert len(server.requests) == before


def test_token_bad_credentials_fail_fast(token_registry) -> None:
    client = _token_client(token_registry, Credentials(token_registry.username, "bad-pw-42"))
    server = token_registry.token_server
    mark, denied, granted = token_registry.log_mark(), server.denied, len(server.requests)
    with pytest.raises(AuthError) as info:
        client.head_manifest("tok/app", "1")
    assert server.denied - denied == 1, "the refused credentials were not tried again"
    assert len(server.requests) == granted
    assert len(token_registry.requests_since(mark)) <= 1   # at most the ping
    assert token_registry.host in str(info.value) and "bad-pw-42" not in str(info.value)


def test_verbose_log_masks_secrets(token_registry, tmp_path: Path, cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("sys.stdin", io.StringIO(token_registry.password))
    code, out, err = cli("login", token_registry.host, "-u", token_registry.username,
                         "--password-stdin", "-vv")
    assert code == 0, err
    server = token_registry.token_server
    image = make_image(tmp_path / "blobs", (100,))
    push(RegistryClient(token_registry.host, RegistryOptions()),
         Reference.parse(f"{token_registry.host}/tok/log:1"), image, AMD64)
    issued_before = len(server.issued)
    code, out, err = cli("copy", f"{token_registry.host}/tok/log:1", f"oci:{tmp_path / 'o'}:t",
                         "-vv")
    assert code == 0, err
    assert "GET http://" in err and "-> 200" in err
    secrets = [token_registry.password, *server.issued[issued_before:]]
    assert len(secrets) > 1
    for secret in secrets:
        assert secret not in out and secret not in err


def test_skopeo_reads_our_push_through_token_auth(token_registry, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    image = make_image(tmp_path / "blobs", (1500,))
    ref = Reference.parse(f"{token_registry.host}/tok/skopeo:1")
    push(_token_client(token_registry), ref, image, AMD64)
    proc = subprocess.run([skopeo, "inspect", "--raw", "--tls-verify=false", "--creds",
                           token_registry.creds, f"docker://{ref}"],
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == image.manifest_bytes
    # and we read what skopeo pushed there
    run_out = subprocess.run([skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                              "--src-creds", token_registry.creds, "--dest-creds",
                              token_registry.creds, f"docker://{ref}",
                              f"docker://{token_registry.host}/tok/by-skopeo:2"],
                             capture_output=True, check=False)
    assert run_out.returncode == 0, run_out.stderr
    back = pull(_token_client(token_registry),
                Reference.parse(f"{token_registry.host}/tok/by-skopeo:2"), AMD64)
    assert back.digest == image.digest


def test_cli_copies_an_index_between_registries(registry, token_registry, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                cli, monkeypatch) -> None:
    from ociforge.model.index import build_index

    amd = make_image(tmp_path / "blobs", (1000,), platform="linux/amd64")
    arm = make_image(tmp_path / "blobs", (1200,), platform="linux/arm64")
    index = build_index([(amd, None), (arm, None)])
    source = Reference.parse(f"{registry.host}/xreg/app:1")
    push(RegistryClient(registry.host), source, index, AMD64)
    monkeypatch.setattr("sys.stdin", io.StringIO(token_registry.password))
    assert cli("login", token_registry.host, "-u", token_registry.username,
               "--password-stdin")[0] == 0
    dest = f"{token_registry.host}/xreg/copied:1"
    code, out, err = cli("copy", str(source), dest, "--platform", "all", "--jobs", "2")
    assert code == 0, err
    assert str(index.digest) in out
    back = pull(_token_client(token_registry), Reference.parse(dest), Options(all_platforms=True))
    assert back.digest == index.digest
    one = pull(_token_client(token_registry), Reference.parse(dest),
               Options(platform=Platform.parse("linux/arm64")))
    with one.layers[0].open() as fh:                   # type: ignore[union-attr]
        fh.read()
    assert one.digest == arm.digest


def test_tokens_are_cached_until_they_expire(token_registry, tmp_path: Path) -> None:
    server = token_registry.token_server
    client = _token_client(token_registry)
    push(client, Reference.parse(f"{token_registry.host}/tok/cache:1"),
         make_image(tmp_path / "blobs", (100,)), AMD64)
    before = len(server.requests)
    for _ in range(3):
        assert client.head_manifest("tok/cache", "1") is not None
    assert len(server.requests) == before            # the push's token is still good
    for token in client.transport.auth._tokens.values():
        token.expires_at = 0                            # as if its lifetime had passed
    assert client.head_manifest("tok/cache", "1") is not None
    assert len(server.requests) == before + 1
