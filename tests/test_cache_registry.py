"""The cache against the real registry: bases by HEAD, --offline, pushes that remember.

Requests are counted from the registry's own log ("response completed" lines
carry method, URI and status), so the tests see exactly what reached it.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from imagediff import explain
from progresslines import messages
from registry_fixtures import RegistryServer, docker_login, write_docker_config

ROOT = Path(__file__).resolve().parent.parent
_LINE = re.compile(r'msg="response completed(?: with error)?".*?http\.request\.method=(\w+) '
                   r'.*?http\.request\.uri=("[^"]+"|\S+).*?http\.response\.status=(\d+)')


def hits(registry: RegistryServer, mark: int) -> list[tuple[str, str, int]]:
    """(method, URI, status) of every request the registry answered since ``mark``."""
    return [(m, uri.strip('"'), int(status))
            for m, uri, status in _LINE.findall(registry.log_since(mark))]


def run(*argv: Any, check: bool = True) -> subprocess.CompletedProcess[str]:
    """ociforge in a new process (a new process has nothing but the cache to remember)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "ociforge", *map(str, argv)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _probe(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """ociforge in a new process (with ``env`` added to its environment) that then says
    whether requests or urllib3 were loaded: "<code> <requests?> <urllib3?>"."""
    probe = ("import sys\nfrom ociforge.cli import main\n"
             f"code = main({argv!r})\n"
             "print(code, 'requests' in sys.modules, 'urllib3' in sys.modules)")
    return subprocess.run([sys.executable, "-c", probe],
                          env=dict(os.environ, PYTHONPATH=str(ROOT), **env),
                          capture_output=True, text=True, timeout=120, check=False)


def tree(folder: Path, seed: int, files: int = 3) -> Path:
    folder.mkdir(parents=True)
    for i in range(files):
        (folder / f"f{i}.bin").write_bytes(os.urandom(2000 + seed * 10 + i))
    return folder


def layout_image(cli: Any, tmp_path: Path, name: str, base: str = "scratch",
                 layers: int = 2) -> tuple[str, list[str]]:
    """A new image in oci:<tmp>/<name>:1; (its location, its layer digests)."""
    args: list[Any] = []
    for k in range(layers):
        args += ["--layer", f"{tree(tmp_path / f'{name}-t{k}', k)}:/{name}{k}"]
    location = f"oci:{tmp_path / name}:1"
    code, _, err = cli("append", base, *args, "-o", location, "--platform", "linux/amd64",
                       "--no-cache")
    assert code == 0, err
    from ociforge.options import Options
    from ociforge.stores.locations import parse_location

    image: Any = parse_location(location).read(Options())
    return location, [str(layer.digest) for layer in image.layers]


def app_on(base: str, folder: Path) -> Path:
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "main.py").write_text("print('hi')\n")
    (folder / "ociforge.toml").write_text(
        f'[app]\nname = "cached/app"\nbase = "{base}"\nplatform = "linux/amd64"\n'
        '[config]\ncmd = ["python3", "/app/main.py"]\n'
        '[[layers]]\nsrc = "code"\ndest = "/app"\n')
    return folder


def test_registry_base_is_resolved_by_head_and_read_from_the_cache(
        cli: Any, registry: RegistryServer, tmp_path: Path) -> None:
    base, layers = layout_image(cli, tmp_path, "base")
    ref = f"{registry.host}/cachebase/img:1"
    assert cli("copy", base, ref, "--no-cache")[0] == 0
    app = app_on(ref, tmp_path / "app")
    mark = registry.log_mark()
    code, out, err = cli("-v", "export", app, "-o", tmp_path / "one.tar",
                         "-o", f"oci:{tmp_path / 'one'}")
    assert code == 0, err
    first = [(m, u) for m, u, _ in hits(registry, mark) if u != "/v2/"]
    assert ("HEAD", "/v2/cachebase/img/manifests/1") in first
    assert any(m == "GET" and "/manifests/sha256:" in u for m, u in first)   # GET by digest
    assert sum(1 for m, u in first if m == "GET" and "/blobs/" in u) == len(layers) + 1
    mark = registry.log_mark()
    code, out2, err = cli("-v", "export", app, "-o", tmp_path / "two.tar")
    assert code == 0, err
    second = [(m, u) for m, u, _ in hits(registry, mark) if u != "/v2/"]
    assert second == [("HEAD", "/v2/cachebase/img/manifests/1")]          # no GET at all
    assert "manifest of" in err and "from the cache" in err               # -v says so
    assert out.split()[0] == out2.split()[0]
    code, out3, err = cli("export", app, "-o", tmp_path / "three.tar", "--no-cache",
                          "-o", f"oci:{tmp_path / 'three'}")
    assert code == 0, err
    assert out3.split()[0] == out.split()[0], explain(tmp_path / "one", tmp_path / "three")


def test_offline_uses_the_digest_a_tag_last_resolved_to(cli: Any, registry: RegistryServer,
                                                        tmp_path: Path) -> None:
    base, _ = layout_image(cli, tmp_path, "base")
    other, _ = layout_image(cli, tmp_path, "other", layers=1)
    ref = f"{registry.host}/offline/img:1"
    assert cli("copy", base, ref, "--no-cache")[0] == 0
    app = app_on(ref, tmp_path / "app")
    code, out, err = cli("export", app, "-o", tmp_path / "one.tar")
    assert code == 0, err
    online = out.split()[0]
    assert cli("copy", other, ref, "--no-cache")[0] == 0       # the tag moves on
    mark = registry.log_mark()
    code, out, err = cli("-v", "export", app, "-o", tmp_path / "two.tar", "--offline")
    assert code == 0, err
    assert out.split()[0] == online
    assert "as resolved" in err
    assert hits(registry, mark) == []                           # not one request
    code, out, err = cli("export", app, "-o", tmp_path / "three.tar")
    assert code == 0, err
    assert out.split()[0] != online                             # online: the new base


def test_offline_names_what_is_missing(cli: Any, registry: RegistryServer,
                                       tmp_path: Path) -> None:
    app = app_on(f"{registry.host}/offline/never:1", tmp_path / "app")
    mark = registry.log_mark()
    code, _, err = cli("export", app, "-o", tmp_path / "x.tar", "--offline")
    assert code == 1
    assert f"{registry.host}/offline/never:1" in err and "not in the cache" in err
    assert len(messages(err)) == 1
    assert not (tmp_path / "x.tar").exists()
    assert hits(registry, mark) == []
    code, _out, err = cli("copy", f"{registry.host}/offline/never:1", f"oci:{tmp_path / 'o'}",
                         "--offline", "--no-cache")
    assert code == 2


def test_a_push_remembers_and_a_new_process_mounts(cli: Any, token_registry: RegistryServer,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Push a base to repo A; in a new process push an image on it, from a local layout,
    to repo B: the base layers are mounted from A, never uploaded."""
    monkeypatch.setattr("sys.stdin", io.StringIO(token_registry.password or ""))
    assert cli("login", token_registry.host, "-u", token_registry.username,
               "--password-stdin")[0] == 0
    reg = token_registry.host
    base, base_layers = layout_image(cli, tmp_path, "base")
    app, app_layers = layout_image(cli, tmp_path, "app", base=base, layers=1)
    assert app_layers[:2] == base_layers
    run("copy", base, f"{reg}/team-a/base:1")
    scopes_before = len(token_registry.token_server.requests)
    mark = token_registry.log_mark()
    run("copy", app, f"{reg}/team-b/app:1")
    seen = hits(token_registry, mark)
    mounted = {re.search(r"mount=([^&]+)", u).group(1)  # type: ignore[union-attr]
               for m, u, s in seen if m == "POST" and "mount=" in u and s == 201}
    uploaded = {re.search(r"digest=([^&]+)", u).group(1)  # type: ignore[union-attr]
                for m, u, s in seen if m == "PUT" and "/blobs/uploads/" in u and s == 201}
    assert set(base_layers) <= mounted, seen
    assert not set(base_layers) & uploaded, seen
    assert all("from=team-a/base" in u for m, u, _ in seen if "mount=" in u)
    asked = [s for r in token_registry.token_server.requests[scopes_before:] for s in r.scopes]
    assert "repository:team-a/base:pull" in asked
    # without the memory (--no-cache) the same push uploads the base layers
    mark = token_registry.log_mark()
    run("copy", app, f"{reg}/team-c/app:1", "--no-cache")
    seen = hits(token_registry, mark)
    uploaded = {re.search(r"digest=([^&]+)", u).group(1)  # type: ignore[union-attr]
                for m, u, s in seen if m == "PUT" and "/blobs/uploads/" in u and s == 201}
    assert set(base_layers) <= uploaded


def test_a_remembered_repository_that_lost_the_blob_falls_back_to_upload(
        cli: Any, registry: RegistryServer, tmp_path: Path) -> None:
    from ociforge.cache.mounts import remember_blobs
    from ociforge.cache.store import Cache
    from ociforge.model.digest import Digest

    image, layers = layout_image(cli, tmp_path, "img")
    remember_blobs(Cache(os.environ["OCIFORGE_CACHE_DIR"]), registry.host, "ghost/repo",
                   [Digest.parse(d) for d in layers])
    mark = registry.log_mark()
    code, _out, err = cli("copy", image, f"{registry.host}/real/repo:1")
    assert code == 0, err
    seen = hits(registry, mark)
    assert any(m == "POST" and "from=ghost/repo" in u and s == 202 for m, u, s in seen), seen
    uploads = [u for m, u, s in seen if m == "PUT" and "/blobs/uploads/" in u and s == 201]
    assert all(any(d in u for u in uploads) for d in layers)


def test_noop_repush_is_one_head_without_the_http_stack(cli: Any, registry: RegistryServer,
                                                        tmp_path: Path) -> None:
    image, _ = layout_image(cli, tmp_path, "img")
    other, _ = layout_image(cli, tmp_path, "other", layers=1)
    dest = f"{registry.host}/fast/img:1"
    code, out, err = cli("copy", image, dest)
    assert code == 0, err
    digest = out.split()[0]
    mark = registry.log_mark()
    proc = _probe(["copy", image, dest])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-3:] == ["0", "False", "False"], proc.stdout
    assert proc.stdout.split()[0] == digest
    assert hits(registry, mark) == [("HEAD", "/v2/fast/img/manifests/1", 200)]
    # the tag moved (another pusher): the HEAD shows another digest, the full push follows
    assert run("copy", other, dest, "--no-cache").returncode == 0
    mark = registry.log_mark()
    proc = run("copy", image, dest)
    assert proc.stdout.split()[0] == digest
    seen = hits(registry, mark)
    assert ("PUT", "/v2/fast/img/manifests/1", 201) in seen
    head = subprocess.run(["curl", "-sI", "-H", "Accept: application/vnd.oci.image.manifest."
                           "v1+json", f"{registry.url}/v2/fast/img/manifests/1"],
                          capture_output=True, text=True, check=False).stdout
    assert digest in head


def test_noop_repush_to_a_basic_auth_registry_is_one_head_without_the_http_stack(
        cli: Any, tls_registry: RegistryServer, tmp_path: Path) -> None:
    """htpasswd over TLS: the HEAD carries the Basic credentials, no push-access probe (an
    upload opened and deleted) is needed when the registry serves the image already."""
    user, password = tls_registry.username or "", tls_registry.password or ""
    docker_login(tls_registry.host, user, password)
    image, _ = layout_image(cli, tmp_path, "img")
    other, _ = layout_image(cli, tmp_path, "other", layers=1)
    dest = f"{tls_registry.host}/fast/basic:1"
    ca = str(tls_registry.ca_path)
    code, out, err = cli("copy", image, dest, "--ca-cert", ca)
    assert code == 0, err
    digest = out.split()[0]
    mark = tls_registry.log_mark()
    proc = _probe(["copy", image, dest, "--ca-cert", ca])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-3:] == ["0", "False", "False"], proc.stdout
    assert proc.stdout.split()[0] == digest
    assert hits(tls_registry, mark) == [("HEAD", "/v2/fast/basic/manifests/1", 200)]
    assert password not in proc.stdout + proc.stderr
    # the tag moved: the HEAD shows another digest, push access is asked, the push follows
    assert run("copy", other, dest, "--no-cache", "--ca-cert", ca).returncode == 0
    mark = tls_registry.log_mark()
    proc = run("copy", image, dest, "--ca-cert", ca)
    assert proc.stdout.split()[0] == digest
    seen = hits(tls_registry, mark)
    assert seen[0] == ("HEAD", "/v2/fast/basic/manifests/1", 200), seen
    assert ("POST", "/v2/fast/basic/blobs/uploads/", 202) in seen, seen
    assert ("PUT", "/v2/fast/basic/manifests/1", 201) in seen, seen
    # credentials no longer accepted: the HEAD is refused, and so is push access, before
    # anything is written to any destination
    docker_login(tls_registry.host, user, "not-the-password")
    assert run("copy", other, dest, "--no-cache", "--ca-cert", ca, check=False).returncode == 1
    mark = tls_registry.log_mark()
    proc = run("copy", image, f"oci:{tmp_path / 'lay'}", dest, "--ca-cert", ca, check=False)
    assert proc.returncode == 1 and "credentials refused" in proc.stderr, proc.stderr
    assert not (tmp_path / "lay").exists()
    hits(tls_registry, mark)    # waits until the registry has logged everything
    seen = tls_registry.requests_since(mark)    # its access log: refusals too
    assert seen[0] == ("HEAD", "/v2/fast/basic/manifests/1", 401), seen
    assert ("POST", "/v2/fast/basic/blobs/uploads/", 401) in seen, seen
    assert not [hit for hit in seen if hit[0] in ("PUT", "PATCH")], seen


def test_no_login_for_a_remembered_basic_registry_fails_before_the_build(
        cli: Any, tls_registry: RegistryServer, tmp_path: Path) -> None:
    """The cache remembers the tag on a Basic-auth registry, but there is no login at all:
    the re-push check would have no credentials to send, so push access is not left until
    the image is built; the run fails up front, nothing built and nothing written."""
    docker_login(tls_registry.host, tls_registry.username or "", tls_registry.password or "")
    folder = tree(tmp_path / "t", 1)
    dest = f"{tls_registry.host}/fast/nologin:1"
    ca = str(tls_registry.ca_path)
    code, _, err = cli("append", "scratch", "--layer", f"{folder}:/t", "-o", dest,
                       "--ca-cert", ca)
    assert code == 0, err
    write_docker_config({"auths": {}})
    mark = tls_registry.log_mark()
    proc = run("append", "scratch", "--layer", f"{folder}:/t", "-o", f"oci:{tmp_path / 'lay'}",
               "-o", dest, "--ca-cert", ca, check=False)
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    (error,) = messages(proc.stderr)
    assert "push access check" in error and "authentication required" in error, error
    assert "built layer" not in proc.stderr, proc.stderr     # refused before the build
    assert not (tmp_path / "lay").exists()
    hits(tls_registry, mark)    # waits until the registry has logged everything
    seen = tls_registry.requests_since(mark)
    assert seen and not [hit for hit in seen if hit[0] in ("PUT", "PATCH")], seen


def test_noop_repush_check_falls_back_to_the_default_bundle(
        cli: Any, tls_registry: RegistryServer, tmp_path: Path) -> None:
    """--ca-cert names a CA that did not sign the registry's certificate, the default
    bundle ($SSL_CERT_FILE) holds the one that did: the check trusts --ca-cert alone first,
    then both, as the transport does, and still settles the re-push with one HEAD."""
    from registry_fixtures import make_ca_and_cert

    docker_login(tls_registry.host, tls_registry.username or "", tls_registry.password or "")
    unrelated, _, _ = make_ca_and_cert(tmp_path / "other-ca")
    image, _ = layout_image(cli, tmp_path, "img")
    dest = f"{tls_registry.host}/fast/fallback:1"
    env = dict(os.environ, PYTHONPATH=str(ROOT), SSL_CERT_FILE=str(tls_registry.ca_path))
    first = subprocess.run([sys.executable, "-m", "ociforge", "copy", image, dest,
                            "--ca-cert", str(unrelated)], env=env, capture_output=True,
                           text=True, timeout=120, check=False)
    assert first.returncode == 0, first.stderr
    mark = tls_registry.log_mark()
    proc = _probe(["copy", image, dest, "--ca-cert", str(unrelated)],
                  SSL_CERT_FILE=str(tls_registry.ca_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-3:-1] == ["0", "False"], proc.stdout
    assert hits(tls_registry, mark) == [("HEAD", "/v2/fast/fallback/manifests/1", 200)]


def test_noop_repush_to_a_token_registry_is_one_token_and_one_head(
        cli: Any, token_registry: RegistryServer, tmp_path: Path) -> None:
    """Docker-Hub-style token auth: one pull-scope token GET to the remembered realm (with
    the login's Basic credentials) and one manifest HEAD, no HTTP stack, no push-access
    probe; a moved tag gets the full push."""
    tokens = token_registry.token_server
    user, password = token_registry.username or "", token_registry.password or ""
    docker_login(token_registry.host, user, password)
    image, _ = layout_image(cli, tmp_path, "img")
    other, _ = layout_image(cli, tmp_path, "other", layers=1)
    dest = f"{token_registry.host}/fast/bearer:1"
    code, out, err = cli("copy", image, dest)
    assert code == 0, err
    digest = out.split()[0]
    mark, granted, issued = token_registry.log_mark(), len(tokens.requests), len(tokens.issued)
    proc = _probe(["copy", image, dest])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-3:] == ["0", "False", "False"], proc.stdout
    assert proc.stdout.split()[0] == digest and proc.stdout.splitlines()[:-1] == out.splitlines()
    hits(token_registry, mark)    # waits until the registry has logged everything
    assert token_registry.requests_since(mark) == [("HEAD", "/v2/fast/bearer/manifests/1", 200)]
    asked = tokens.requests[granted:]
    assert [(r.method, r.user, r.scopes) for r in asked] == [
        ("GET", user, ["repository:fast/bearer:pull"])], asked
    output = proc.stdout + proc.stderr
    assert password not in output and not any(t in output for t in tokens.issued[issued:])
    # the tag moved (another pusher): the HEAD shows another digest, the full push follows
    assert run("copy", other, dest, "--no-cache").returncode == 0
    mark = token_registry.log_mark()
    proc = run("copy", image, dest)
    assert proc.stdout.split()[0] == digest
    hits(token_registry, mark)
    seen = token_registry.requests_since(mark)
    assert seen[0] == ("HEAD", "/v2/fast/bearer/manifests/1", 200), seen
    assert ("PUT", "/v2/fast/bearer/manifests/1", 201) in seen, seen


def test_token_repush_without_a_login_uses_an_anonymous_token(
        cli: Any, token_registry: RegistryServer, tmp_path: Path) -> None:
    """No credentials: an anonymous pull token settles a tag that serves the image already;
    when it does not, push access is asked and refused (anonymous tokens only pull), before
    anything is written."""
    tokens = token_registry.token_server
    docker_login(token_registry.host, token_registry.username or "",
                  token_registry.password or "")
    image, _ = layout_image(cli, tmp_path, "img")
    other, _ = layout_image(cli, tmp_path, "other", layers=1)
    dest = f"{token_registry.host}/fast/anon:1"
    code, _, err = cli("copy", image, dest)
    assert code == 0, err
    write_docker_config({"auths": {}})
    mark, granted = token_registry.log_mark(), len(tokens.requests)
    proc = _probe(["copy", image, dest])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-3:] == ["0", "False", "False"], proc.stdout
    hits(token_registry, mark)
    assert token_registry.requests_since(mark) == [("HEAD", "/v2/fast/anon/manifests/1", 200)]
    assert [(r.user, r.scopes) for r in tokens.requests[granted:]] == [
        (None, ["repository:fast/anon:pull"])]
    # the tag serves another image now: a push is needed, and an anonymous user may not
    docker_login(token_registry.host, token_registry.username or "",
                  token_registry.password or "")
    assert run("copy", other, dest, "--no-cache").returncode == 0
    write_docker_config({"auths": {}})
    mark = token_registry.log_mark()
    proc = run("copy", image, f"oci:{tmp_path / 'lay'}", dest, check=False)
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    assert not (tmp_path / "lay").exists()
    hits(token_registry, mark)
    seen = token_registry.requests_since(mark)
    assert seen[0] == ("HEAD", "/v2/fast/anon/manifests/1", 200), seen
    assert not [hit for hit in seen if hit[0] in ("PUT", "PATCH", "POST")], seen


def test_a_refusing_token_service_sends_the_repush_the_full_way(
        cli: Any, token_registry: RegistryServer, tmp_path: Path) -> None:
    """The token service refuses the login (401): no HEAD is sent with a token, the full
    way runs and reports the refusal itself."""
    tokens = token_registry.token_server
    user = token_registry.username or ""
    docker_login(token_registry.host, user, token_registry.password or "")
    image, _ = layout_image(cli, tmp_path, "img")
    dest = f"{token_registry.host}/fast/refused:1"
    code, _, err = cli("copy", image, dest)
    assert code == 0, err
    docker_login(token_registry.host, user, "not-the-password")
    mark, denied = token_registry.log_mark(), tokens.denied
    proc = run("copy", image, dest, check=False)
    assert proc.returncode == 1, proc.stderr
    (error,) = messages(proc.stderr)
    assert "token service refused the credentials" in error, error
    assert tokens.denied - denied >= 2      # the re-push check's GET, then the full way's
    hits(token_registry, mark)
    seen = token_registry.requests_since(mark)
    assert ("HEAD", "/v2/fast/refused/manifests/1", 200) not in seen, seen
    assert not [hit for hit in seen if hit[0] in ("PUT", "PATCH", "POST")], seen


def test_the_repush_check_sends_no_credentials_to_a_realm_the_transport_would_refuse(
        cli: Any, token_registry: RegistryServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A remembered realm over plain HTTP off loopback, or one whose URL names another
    origin than the transport judged it to be, is never contacted: the full way decides."""
    from ociforge.cache import repush
    from ociforge.cache.keys import record_name
    from ociforge.cache.store import Cache
    from ociforge.model.digest import Digest
    from ociforge.options import RegistryOptions

    docker_login(token_registry.host, token_registry.username or "",
                  token_registry.password or "")
    image, _ = layout_image(cli, tmp_path, "img")
    dest = f"{token_registry.host}/fast/realm:1"
    code, out, err = cli("copy", image, dest)
    assert code == 0, err
    digest = Digest.parse(out.split()[0])
    cache = Cache(os.environ["OCIFORGE_CACHE_DIR"])
    name = record_name(token_registry.host)
    fact = cache.record("registries", name, touch=False)
    assert fact is not None
    realm = fact["realm"]
    assert fact["realm_origin"] == ["http", "127.0.0.1", int(realm.split(":")[2].split("/")[0])]
    options = RegistryOptions()
    assert repush.already_served(cache, token_registry.host, "fast/realm", "1", digest, options)
    connected: list[tuple[str, int]] = []
    real_connect = repush._connect

    def connect(scheme: str, host: str, port: int, opts: RegistryOptions) -> Any:
        connected.append((host, port))
        return real_connect(scheme, host, port, opts)

    monkeypatch.setattr(repush, "_connect", connect)
    port = fact["realm_origin"][2]
    for bad_realm, origin in (("http://192.0.2.1/token", ["http", "192.0.2.1", 80]),
                              (realm, ["http", "127.0.0.2", port]),
                              (f"http://127.0.0.2:{port}/token", ["http", "127.0.0.1", port])):
        cache.put_record("registries", name, {**fact, "realm": bad_realm,
                                              "realm_origin": origin})
        assert not repush.already_served(cache, token_registry.host, "fast/realm", "1",
                                         digest, options)
    assert connected == []
    cache.put_record("registries", name, fact)
    assert repush.already_served(cache, token_registry.host, "fast/realm", "1", digest, options)
    assert len(connected) == 2      # the realm, then the registry


def test_any_surprise_from_the_token_service_sends_the_repush_the_full_way(
        cli: Any, token_registry: RegistryServer, tmp_path: Path,
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    """A realm that redirects, fails, sends no token, no JSON, a token the registry refuses,
    or no answer within --timeout: False (the full way runs).  A chunked answer with a real
    token is read, and so is one whose connection stays open after its Content-Length.
    Neither the password nor a token is logged."""
    import logging
    import time as clock

    from httpserver import LoopbackServer, QuietHandler

    from ociforge.cache import repush
    from ociforge.cache.keys import record_name
    from ociforge.cache.store import Cache
    from ociforge.model.digest import Digest
    from ociforge.options import RegistryOptions

    tokens = token_registry.token_server
    password = token_registry.password or ""
    docker_login(token_registry.host, token_registry.username or "", password)
    image, _ = layout_image(cli, tmp_path, "img")
    dest = f"{token_registry.host}/fast/surprise:1"
    code, out, err = cli("copy", image, dest)
    assert code == 0, err
    digest = Digest.parse(out.split()[0])
    good = tokens.mint(None, ["repository:fast/surprise:pull"])
    mode = {"now": ""}

    class Realm(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            now = mode["now"]
            if now == "redirect":
                self.reply(302, b"", {"Location": fact["realm"]})
            elif now == "error":
                self.reply(500, b'{"token": "%s"}' % good.encode())
            elif now == "no-token":
                self.reply(200, b'{"expires_in": 300}')
            elif now == "not-json":
                self.reply(200, b"[" * 5000)
            elif now == "refused-token":
                self.reply(200, b'{"token": "not-a-jwt"}')
            elif now == "silent":
                clock.sleep(3)
            elif now == "lingering":        # the answer, then the connection kept open
                self.reply(200, b'{"token": "%s"}' % good.encode())
                self.wfile.flush()
                clock.sleep(3)
            elif now == "chunked":
                body = b'{"token": "%s"}' % good.encode()
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                for part in (body[:7], body[7:]):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")

    cache = Cache(os.environ["OCIFORGE_CACHE_DIR"])
    name = record_name(token_registry.host)
    fact = cache.record("registries", name, touch=False)
    assert fact is not None
    caplog.set_level(logging.DEBUG, logger="ociforge.http")
    granted = len(tokens.requests)
    with LoopbackServer(Realm) as realm:
        cache.put_record("registries", name, {
            **fact, "realm": f"http://{realm.host}/token",
            "realm_origin": ["http", "127.0.0.1", realm.port]})
        results = {}
        for mode["now"] in ("redirect", "error", "no-token", "not-json", "refused-token",
                            "silent", "lingering", "chunked"):
            results[mode["now"]] = repush.already_served(
                cache, token_registry.host, "fast/surprise", "1", digest,
                RegistryOptions(timeout=1.0))
    assert results == {"redirect": False, "error": False, "no-token": False,
                       "not-json": False, "refused-token": False, "silent": False,
                       "lingering": True, "chunked": True}
    assert len(tokens.requests) == granted      # the redirect was not followed
    logged = capsys.readouterr().err + caplog.text
    assert password not in logged and good not in logged
    assert logged.count("(cached-state check token)") == 8, logged


def test_cache_info_and_prune(cli: Any, tmp_path: Path) -> None:
    """info: location, size and entries; prune: least recently used first, --all empties."""
    from ociforge.cache.store import Cache

    cache_dir = Path(os.environ["OCIFORGE_CACHE_DIR"])
    for i in range(3):
        folder = tree(tmp_path / f"app{i}" / "code", i + 10, files=2)
        (folder.parent / "ociforge.toml").write_text(
            f'[app]\nname = "a{i}"\nplatform = "linux/amd64"\n'
            '[[layers]]\nsrc = "code"\ndest = "/code"\n')
        code, _, err = cli("export", folder.parent, "-o", tmp_path / f"a{i}.tar")
        assert code == 0, err
    blobs = sorted((cache_dir / "v1" / "blobs" / "sha256").iterdir())
    assert len(blobs) == 3
    for age, blob in enumerate(blobs):          # oldest first: blobs[0]
        os.utime(blob, (1_000_000 + age, 1_000_000 + age))
    code, out, err = cli("cache", "info", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["location"] == str(cache_dir) and info["blobs"] == 3
    assert info["records"]["layers"] == 3 and info["size"] > 0
    keep = Cache(cache_dir).usage().size - blobs[0].stat().st_size    # all but the oldest
    code, out, err = cli("cache", "prune", "--max-size", str(keep))
    assert code == 0, err
    left = sorted((cache_dir / "v1" / "blobs" / "sha256").iterdir())
    assert left == blobs[1:]                                   # the oldest went
    assert Cache(cache_dir).usage().records["layers"] == 2     # and its record with it
    code, out, err = cli("cache", "prune", "--all")
    assert code == 0, err
    assert Cache(cache_dir).usage().size == 0


def test_automatic_prune_keeps_the_cap(cli: Any, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from ociforge.cache.store import Cache

    monkeypatch.setenv("OCIFORGE_CACHE_MAX_SIZE", "40K")
    for i in range(6):
        folder = tmp_path / f"app{i}" / "code"
        folder.mkdir(parents=True)
        (folder / "data.bin").write_bytes(os.urandom(12_000))
        (folder.parent / "ociforge.toml").write_text(
            f'[app]\nname = "a{i}"\nplatform = "linux/amd64"\n'
            '[[layers]]\nsrc = "code"\ndest = "/code"\n')
        code, _, err = cli("export", folder.parent, "-o", tmp_path / f"a{i}.tar")
        assert code == 0, err
        assert Cache(os.environ["OCIFORGE_CACHE_DIR"]).usage().size <= 40 << 10
    assert Cache(os.environ["OCIFORGE_CACHE_DIR"]).usage().blobs >= 1
