"""Faults injected between ociforge and a real registry (issue 6 item 1).

tests/faultproxy.py sits in front of the real docker-registry and resets
connections, answers 5xx/429, stalls, corrupts or truncates bodies, refuses
mounts and enforces chunk sizes.  For every fault the push or pull either
completes and the result is checked independently of ociforge (manifest and
every blob fetched straight from the registry and hashed), or fails with one
clear line and exit 1 after a bounded number of requests (counted at the
proxy).  The terminal summary reports faults injected and survived.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests
from faultproxy import FaultProxy, Rule
from imagegen import layout_with_image
from progresslines import messages

OCI_ACCEPT = ("application/vnd.oci.image.manifest.v1+json, "
              "application/vnd.oci.image.index.v1+json, "
              "application/vnd.docker.distribution.manifest.v2+json")

# -- the report -------------------------------------------------------------------

INJECTED: Counter[str] = Counter()
OUTCOMES: Counter[str] = Counter()


class _FaultReport:
    """Registered once as a plugin so the summary shows even without ``-s``."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not INJECTED:
            return
        fired = {k: v for k, v in INJECTED.items() if v > 0}
        total = sum(fired.values())
        kinds = ", ".join(f"{k} x{v}" for k, v in sorted(fired.items()))
        terminalreporter.write_sep("-", "fault injection report")
        terminalreporter.write_line(f"faults injected: {total} ({kinds})")
        terminalreporter.write_line(
            f"survived (completed and verified): {OUTCOMES['survived']}; "
            f"failed cleanly (exit 1, one line, bounded retries): {OUTCOMES['failed cleanly']}")


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> None:
    manager = request.config.pluginmanager
    if not manager.has_plugin("ociforge-fault-report"):
        manager.register(_FaultReport(), "ociforge-fault-report")


pytestmark = pytest.mark.usefixtures("fast_retries")


@pytest.fixture
def proxy(registry: Any) -> Iterator[FaultProxy]:
    with FaultProxy(registry.host) as p:
        yield p
        INJECTED.update(p.injected)


# -- images ------------------------------------------------------------------------

SIZES = (256 << 10, 1536 << 10, 4 << 10)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """An OCI layout with a three-layer image: (location, manifest digest)."""
    loc, image = layout_with_image(tmp_path_factory.mktemp("faults") / "src", SIZES)
    return loc, str(image.digest)


@pytest.fixture(scope="module")
def pushed(registry: Any, source: tuple[str, str]) -> tuple[str, str]:
    """The source image pushed straight to the registry (no proxy): (repo, digest)."""
    from ociforge.cli import main

    repo = "faults/pull-source"
    assert main(["copy", source[0], f"{registry.host}/{repo}:t"]) == 0
    return repo, source[1]


def repo_name(label: str) -> str:
    clean = "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")
    return f"faults/{clean}-{uuid.uuid4().hex[:6]}"


# -- independent checks --------------------------------------------------------------

def registry_has_image(registry: Any, repo: str, ref: str, digest: str) -> None:
    """Manifest and every blob fetched straight from the registry hash to their digests."""
    base = f"http://{registry.host}/v2/{repo}"
    resp = requests.get(f"{base}/manifests/{ref}", headers={"Accept": OCI_ACCEPT}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert "sha256:" + hashlib.sha256(resp.content).hexdigest() == digest
    manifest = json.loads(resp.content)
    for desc in [manifest["config"], *manifest["layers"]]:
        blob = requests.get(f"{base}/blobs/{desc['digest']}", timeout=10)
        assert blob.status_code == 200
        assert len(blob.content) == desc["size"]
        assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == desc["digest"]


def layout_is_sound(root: Path, digest: str | None) -> None:
    """Every blob file hashes to its name; index.json names only blobs that exist."""
    blobs = root / "blobs" / "sha256"
    if blobs.is_dir():
        for blob in blobs.iterdir():
            if blob.name.startswith("."):
                continue
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, blob
    index_path = root / "index.json"
    if not index_path.exists():
        assert digest is None, "a finished pull leaves an index.json"
        return
    index = json.loads(index_path.read_text())
    names = [m["digest"] for m in index["manifests"]]
    for name in names:
        manifest_path = blobs / name.split(":")[1]
        assert manifest_path.exists(), f"index.json names missing {name}"
        manifest = json.loads(manifest_path.read_bytes())
        for desc in [manifest["config"], *manifest["layers"]]:
            assert (blobs / desc["digest"].split(":")[1]).exists(), desc
    if digest is not None:
        assert digest in names


def survived(code: int, err: str) -> None:
    assert code == 0, err
    assert "Traceback" not in err
    OUTCOMES["survived"] += 1


def failed_cleanly(code: int, out: str, err: str, *, mentions: tuple[str, ...] = ()) -> None:
    assert code == 1, (code, out, err)
    assert "Traceback" not in err
    lines = messages(err)
    assert len(lines) == 1, err
    assert lines[0].startswith("ociforge: error:"), err
    for word in mentions:  # "a|b": either
        assert any(w.lower() in lines[0].lower() for w in word.split("|")), (word, lines[0])
    OUTCOMES["failed cleanly"] += 1


# -- 5xx and 429 on every kind of request ---------------------------------------------

PUSH_REQUESTS = {
    "ping": ("GET", r"^/v2/$"),
    "HEAD blob": ("HEAD", r"/blobs/sha256:"),
    "POST upload": ("POST", r"/blobs/uploads/"),
    "PUT upload": ("PUT", r"/blobs/uploads/"),
    "PUT manifest": ("PUT", r"/manifests/"),
}
PULL_REQUESTS = {
    "GET manifest": ("GET", r"/manifests/"),
    "GET blob": ("GET", r"/blobs/sha256:"),
}
STATUSES = {
    "500": (500, {}),
    "502": (502, {}),
    "503": (503, {}),
    "429": (429, {}),
    "429+Retry-After": (429, {"Retry-After": "1"}),
}


@pytest.mark.parametrize("status", sorted(STATUSES))
@pytest.mark.parametrize("kind", sorted(PUSH_REQUESTS))
def test_push_survives_transient_status(kind: str, status: str, cli, registry: Any,
                                        proxy: FaultProxy, source: tuple[str, str]) -> None:
    method, path = PUSH_REQUESTS[kind]
    code_, headers = STATUSES[status]
    rule = proxy.add(Rule("status", method=method, path=path, status=code_, times=2,
                          headers=headers, code="TOOMANYREQUESTS" if code_ == 429 else "UNKNOWN"))
    repo = repo_name(f"{kind}-{status}")
    code, _, err = cli("copy", source[0], f"{proxy.host}/{repo}:t")
    survived(code, err)
    assert rule.fired == 2, f"{kind} was never requested"
    registry_has_image(registry, repo, "t", source[1])


@pytest.mark.parametrize("status", sorted(STATUSES))
def test_chunked_push_survives_transient_status_on_patch(status: str, cli, registry: Any,
                                                         proxy: FaultProxy,
                                                         source: tuple[str, str]) -> None:
    code_, headers = STATUSES[status]
    rule = proxy.add(Rule("status", method="PATCH", path=r"/blobs/uploads/", status=code_,
                          times=2, skip=1, headers=headers))
    repo = repo_name(f"patch-{status}")
    code, _, err = cli("copy", source[0], f"{proxy.host}/{repo}:t", "--chunk-size", "256K")
    survived(code, err)
    assert rule.fired == 2
    registry_has_image(registry, repo, "t", source[1])


@pytest.mark.parametrize("status", sorted(STATUSES))
@pytest.mark.parametrize("kind", sorted(PULL_REQUESTS))
def test_pull_survives_transient_status(kind: str, status: str, cli, tmp_path: Path,
                                        proxy: FaultProxy, pushed: tuple[str, str]) -> None:
    method, path = PULL_REQUESTS[kind]
    code_, headers = STATUSES[status]
    rule = proxy.add(Rule("status", method=method, path=path, status=code_, times=2,
                          headers=headers))
    out = tmp_path / "out"
    code, _, err = cli("copy", f"{proxy.host}/{pushed[0]}:t", f"oci:{out}:t")
    survived(code, err)
    assert rule.fired == 2
    layout_is_sound(out, pushed[1])


@pytest.mark.parametrize("kind", sorted(PUSH_REQUESTS))
def test_push_gives_up_after_bounded_retries(kind: str, cli, proxy: FaultProxy,
                                             source: tuple[str, str]) -> None:
    method, path = PUSH_REQUESTS[kind]
    proxy.add(Rule("status", method=method, path=path, status=503, times=10_000))
    code, out, err = cli("copy", source[0], f"{proxy.host}/{repo_name(kind)}:t",
                         "--retries", "2", "--jobs", "1")
    failed_cleanly(code, out, err, mentions=("UNAVAILABLE|503",))
    # 3 attempts (1 + 2 retries) per distinct request, at most one per blob
    blobs = len(SIZES) + 1
    assert proxy.count(method, path) <= 3 * blobs
    assert proxy.count(method, path) >= 3


@pytest.mark.parametrize("kind", sorted(PULL_REQUESTS))
def test_pull_gives_up_after_bounded_retries(kind: str, cli, tmp_path: Path, proxy: FaultProxy,
                                             pushed: tuple[str, str]) -> None:
    method, path = PULL_REQUESTS[kind]
    proxy.add(Rule("status", method=method, path=path, status=429, times=10_000,
                   code="TOOMANYREQUESTS", headers={"Retry-After": "1"}))
    out = tmp_path / "out"
    code, stdout, err = cli("copy", f"{proxy.host}/{pushed[0]}:t", f"oci:{out}:t",
                            "--retries", "2", "--jobs", "1")
    failed_cleanly(code, stdout, err, mentions=("TOOMANYREQUESTS",))
    assert 3 <= proxy.count(method, path) <= 3 * (len(SIZES) + 1)
    layout_is_sound(out, None)


def test_retry_after_is_honoured(cli, monkeypatch: pytest.MonkeyPatch, proxy: FaultProxy,
                                 source: tuple[str, str]) -> None:
    """The wait before the retry is the registry's Retry-After, not the short backoff: the
    transport's sleeps are recorded (and skipped) rather than timed."""
    from ociforge.remote import transport

    waits: list[float] = []

    class _RecordingClock:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            waits.append(seconds)

    monkeypatch.setattr(transport, "time", _RecordingClock())
    monkeypatch.setenv("OCIFORGE_RETRY_BASE", "0.01")
    rule = proxy.add(Rule("status", method="PUT", path=r"/manifests/", status=429, times=1,
                          headers={"Retry-After": "2"}, code="TOOMANYREQUESTS"))
    code, _, err = cli("copy", source[0], f"{proxy.host}/{repo_name('retry-after')}:t")
    survived(code, err)
    assert rule.fired == 1 and len(proxy.arrived("PUT", r"/manifests/")) == 2
    assert waits == [2.0]


# -- resets ------------------------------------------------------------------------------

def test_push_survives_reset_mid_blob_upload(cli, registry: Any, proxy: FaultProxy,
                                             source: tuple[str, str]) -> None:
    rule = proxy.add(Rule("reset", method="PUT|PATCH", path=r"/blobs/uploads/", times=2))
    repo = repo_name("reset-upload")
    code, _, err = cli("copy", source[0], f"{proxy.host}/{repo}:t")
    survived(code, err)
    assert rule.fired == 2
    registry_has_image(registry, repo, "t", source[1])
    # and as other tools see it: skopeo reads the same manifest, ociforge verify agrees
    from tools import require_tool, run

    raw = subprocess.run([require_tool("skopeo"), "inspect", "--tls-verify=false", "--raw",
                          f"docker://{registry.host}/{repo}:t"], capture_output=True, check=True)
    assert "sha256:" + hashlib.sha256(raw.stdout).hexdigest() == source[1]
    run([sys.executable, "-m", "ociforge", "verify", f"{registry.host}/{repo}:t"],
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)))


def test_pull_survives_reset_mid_download(cli, tmp_path: Path, proxy: FaultProxy,
                                          pushed: tuple[str, str]) -> None:
    rule = proxy.add(Rule("reset", method="GET", path=r"/blobs/sha256:", times=1))
    out = tmp_path / "out"
    code, _, err = cli("copy", f"{proxy.host}/{pushed[0]}:t", f"oci:{out}:t")
    assert rule.fired == 1
    survived(code, err)
    layout_is_sound(out, pushed[1])


# -- stalls and timeouts --------------------------------------------------------------------

STALL_FOREVER = 120.0   # far beyond any --timeout used here: waiting for it would show
# --timeout bounds every answer of the run, the honest ones too: short enough that a stall
# is given up soon, long enough that a loaded 2-core machine answers everything else in time
TIMEOUT = "2"
STALL = 5.0             # a stall that does end, after TIMEOUT


def test_pull_survives_one_stalled_response(cli, tmp_path: Path, proxy: FaultProxy,
                                            pushed: tuple[str, str]) -> None:
    rule = proxy.add(Rule("stall", method="GET", path=r"/blobs/sha256:", times=1,
                          delay=STALL_FOREVER))
    out = tmp_path / "out"
    code, _, err = cli("copy", f"{proxy.host}/{pushed[0]}:t", f"oci:{out}:t",
                       "--timeout", TIMEOUT)
    survived(code, err)
    assert rule.fired == 1 and rule.released == 0, "the stalled answer was not waited for"
    gets = proxy.arrived("GET", r"/blobs/sha256:")
    assert len(gets) == len(set(gets)) + 1, "exactly the stalled blob was asked for again"
    layout_is_sound(out, pushed[1])


def test_push_survives_stalled_manifest_put(cli, registry: Any, proxy: FaultProxy,
                                            source: tuple[str, str]) -> None:
    proxy.add(Rule("stall", method="PUT", path=r"/manifests/", times=1, delay=STALL))
    repo = repo_name("stall-manifest")
    code, _, err = cli("copy", source[0], f"{proxy.host}/{repo}:t", "--timeout", TIMEOUT)
    survived(code, err)
    registry_has_image(registry, repo, "t", source[1])


def _smallest_layer(location: str) -> str:
    """The digest of the smallest layer blob of the image an ``oci:DIR:TAG`` names."""
    root = Path(location.split(":")[1])
    index = json.loads((root / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((root / "blobs" / "sha256" / manifest_digest[7:]).read_text())
    return str(min(manifest["layers"], key=lambda layer: layer["size"])["digest"])


def test_push_survives_a_stalled_blob_upload(cli, registry: Any, proxy: FaultProxy,
                                             source: tuple[str, str]) -> None:
    """The stalled PUT reaches the registry only after the retried one: the push completes
    and the registry holds every blob intact.  The stalled PUT is the smallest blob's,
    whose body the sockets hold while the proxy sleeps, so the client waits for an answer
    (an overrun, retried); a body too large for them would stall on the way (not retried,
    see test_hostile_servers), and with parallel uploads which PUT comes first is chance."""
    small = _smallest_layer(source[0])
    rule = proxy.add(Rule("stall", method="PUT", path=rf"/blobs/uploads/.*digest={small}",
                          times=1, delay=STALL))
    repo = repo_name("stall-upload")
    code, _, err = cli("copy", source[0], f"{proxy.host}/{repo}:t", "--timeout", TIMEOUT)
    survived(code, err)
    assert rule.fired == 1
    registry_has_image(registry, repo, "t", source[1])


def test_pull_gives_up_on_a_registry_that_always_stalls(cli, tmp_path: Path, proxy: FaultProxy,
                                                        pushed: tuple[str, str]) -> None:
    rule = proxy.add(Rule("stall", method="GET", path=r"/manifests/", times=100,
                          delay=STALL_FOREVER))
    out = tmp_path / "out"
    code, stdout, err = cli("copy", f"{proxy.host}/{pushed[0]}:t", f"oci:{out}:t",
                            "--timeout", TIMEOUT, "--retries", "1")
    failed_cleanly(code, stdout, err)
    assert rule.fired == 2, "one attempt and one retry (--retries 1), each given up on"
    assert rule.released == 0, "no stalled answer was waited for"
    assert not (out / "index.json").exists()


# -- corrupt and truncated downloads ----------------------------------------------------------

@pytest.mark.parametrize("action", ["corrupt", "truncate"])
def test_pull_refuses_a_corrupt_blob(action: str, cli, tmp_path: Path, proxy: FaultProxy,
                                     pushed: tuple[str, str], registry: Any) -> None:
    manifest = json.loads(requests.get(
        f"http://{registry.host}/v2/{pushed[0]}/manifests/t",
        headers={"Accept": OCI_ACCEPT}, timeout=10).content)
    victim = manifest["layers"][1]["digest"]
    proxy.add(Rule(action, method="GET", path=f"/blobs/{victim}", times=10_000))
    out = tmp_path / "out"
    code, stdout, err = cli("copy", f"{proxy.host}/{pushed[0]}:t", f"oci:{out}:t",
                            "--retries", "1")
    failed_cleanly(code, stdout, err, mentions=(victim[:19],))
    assert not (out / "blobs" / "sha256" / victim.split(":")[1]).exists()
    layout_is_sound(out, None)
    assert proxy.count("GET", f"/blobs/{victim}") <= 4


def test_pull_recovers_from_one_truncated_download(cli, tmp_path: Path, proxy: FaultProxy,
                                                   pushed: tuple[str, str]) -> None:
    """A body cut off half-way is a broken transfer: resumed or fetched again."""
    rule = proxy.add(Rule("truncate", method="GET", path=r"/blobs/sha256:", times=1))
    out = tmp_path / "out"
    code, _, err = cli("copy", f"{proxy.host}/{pushed[0]}:t", f"oci:{out}:t")
    survived(code, err)
    assert rule.fired == 1
    layout_is_sound(out, pushed[1])


def test_pull_stops_at_one_corrupt_download_naming_the_blob(cli, tmp_path: Path,
                                                           proxy: FaultProxy,
                                                           pushed: tuple[str, str]) -> None:
    """A complete body with the wrong digest is not a transfer fault to retry: the pull
    stops with the blob named, and the bad bytes are never written."""
    rule = proxy.add(Rule("corrupt", method="GET", path=r"/blobs/sha256:", times=1))
    out = tmp_path / "out"
    code, stdout, err = cli("copy", f"{proxy.host}/{pushed[0]}:t", f"oci:{out}:t")
    assert rule.fired == 1
    failed_cleanly(code, stdout, err, mentions=("has digest",))
    layout_is_sound(out, None)


def test_pull_by_digest_refuses_a_corrupt_manifest(cli, tmp_path: Path, proxy: FaultProxy,
                                                   pushed: tuple[str, str]) -> None:
    proxy.add(Rule("corrupt", method="GET", path=r"/manifests/", times=10_000))
    out = tmp_path / "out"
    code, stdout, err = cli("copy", f"{proxy.host}/{pushed[0]}@{pushed[1]}", f"oci:{out}:t",
                            "--retries", "1")
    failed_cleanly(code, stdout, err)
    assert not (out / "index.json").exists()


@pytest.mark.parametrize("cache", ["--no-cache", "--cache-dir"])
def test_pull_by_tag_checks_docker_content_digest(cache: str, cli, tmp_path: Path,
                                                  proxy: FaultProxy,
                                                  pushed: tuple[str, str]) -> None:
    """Without the cache the manifest is fetched by tag (checked against the registry's
    Docker-Content-Digest); with it, the tag is resolved by HEAD and the manifest fetched
    by that digest (checked against it): a corrupt body fails cleanly either way."""
    proxy.add(Rule("corrupt", method="GET", path=r"/manifests/(t|sha256:[0-9a-f]{64})$",
                   times=10_000))
    out = tmp_path / "out"
    flags = ["--no-cache"] if cache == "--no-cache" else ["--cache-dir", str(tmp_path / "c")]
    code, stdout, err = cli("copy", f"{proxy.host}/{pushed[0]}:t", f"oci:{out}:t",
                            "--retries", "1", *flags)
    failed_cleanly(code, stdout, err)
    assert not (out / "index.json").exists()


# -- expired token ---------------------------------------------------------------------------------

def test_push_survives_token_expiring_mid_push(cli, token_registry: Any,
                                               source: tuple[str, str],
                                               monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    challenge = requests.get(f"{token_registry.url}/v2/", timeout=5).headers["WWW-Authenticate"]
    repo = repo_name("token-expiry")
    invalid = (f'{challenge},scope="repository:{repo}:pull,push",error="invalid_token"')
    config = tmp_path / "docker"
    config.mkdir()
    import base64

    with FaultProxy(token_registry.host) as proxy:
        auth = base64.b64encode(token_registry.creds.encode()).decode()
        (config / "config.json").write_text(json.dumps({"auths": {proxy.host: {"auth": auth}}}))
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        rule = proxy.add(Rule("status", method="PUT", path=r"/blobs/uploads/", status=401,
                              times=1, skip=1, headers={"WWW-Authenticate": invalid},
                              code="UNAUTHORIZED"))
        manifest_rule = proxy.add(Rule("status", method="PUT", path=r"/manifests/", status=401,
                                       times=1, headers={"WWW-Authenticate": invalid},
                                       code="UNAUTHORIZED"))
        before = len(token_registry.token_server.requests)
        code, _, err = cli("copy", source[0], f"{proxy.host}/{repo}:t")
        INJECTED.update(proxy.injected)
    survived(code, err)
    assert rule.fired == 1 and manifest_rule.fired == 1
    assert len(token_registry.token_server.requests) - before >= 2, "a fresh token was fetched"
    token = token_registry.token_server.mint(token_registry.username,
                                             [f"repository:{repo}:pull"])
    resp = requests.get(f"{token_registry.url}/v2/{repo}/manifests/t",
                        headers={"Accept": OCI_ACCEPT, "Authorization": f"Bearer {token}"},
                        timeout=5)
    assert resp.status_code == 200
    assert "sha256:" + hashlib.sha256(resp.content).hexdigest() == source[1]


@pytest.fixture
def token_proxies(token_registry: Any, monkeypatch: pytest.MonkeyPatch,
                  tmp_path: Path) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    """(registry proxy, token-server proxy): the registry's challenges are rewritten so
    that token requests go through the second proxy too."""
    import base64

    challenge = requests.get(f"{token_registry.url}/v2/", timeout=5).headers["WWW-Authenticate"]
    realm_host = re.search(r'realm="https?://([^/"]+)', challenge).group(1)  # type: ignore[union-attr]
    with FaultProxy(realm_host) as tokens, FaultProxy(token_registry.host) as front:
        front.add(Rule("rewrite", headers={realm_host: tokens.host}, times=1_000_000))
        config = tmp_path / "docker"
        config.mkdir()
        auth = base64.b64encode(token_registry.creds.encode()).decode()
        (config / "config.json").write_text(json.dumps({"auths": {front.host: {"auth": auth}}}))
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        yield front, tokens
        INJECTED.update(tokens.injected)


def _token_registry_has(token_registry: Any, repo: str, digest: str) -> None:
    token = token_registry.token_server.mint(token_registry.username, [f"repository:{repo}:pull"])
    resp = requests.get(f"{token_registry.url}/v2/{repo}/manifests/t",
                        headers={"Accept": OCI_ACCEPT, "Authorization": f"Bearer {token}"},
                        timeout=5)
    assert resp.status_code == 200
    assert "sha256:" + hashlib.sha256(resp.content).hexdigest() == digest


@pytest.mark.parametrize("fault", ["500", "502", "503", "429", "429+Retry-After", "truncate"])
def test_push_survives_faults_on_token_requests(fault: str, cli, token_registry: Any,
                                                token_proxies: tuple[FaultProxy, FaultProxy],
                                                source: tuple[str, str]) -> None:
    front, tokens = token_proxies
    if fault == "truncate":
        rule = tokens.add(Rule("truncate", method="GET", path=r"/token", times=1))
    else:
        status, headers = STATUSES[fault]
        rule = tokens.add(Rule("status", method="GET", path=r"/token", status=status,
                               headers=headers, times=2))
    repo = repo_name(f"token-{fault}")
    code, _, err = cli("copy", source[0], f"{front.host}/{repo}:t")
    assert rule.fired >= 1, "the token server was reached through its proxy"
    assert code == 0, err
    survived(code, err)
    _token_registry_has(token_registry, repo, source[1])


def test_push_gives_up_when_the_token_server_is_down(cli, token_proxies: tuple[FaultProxy,
                                                                              FaultProxy],
                                                     source: tuple[str, str]) -> None:
    front, tokens = token_proxies
    tokens.add(Rule("status", method="GET", path=r"/token", status=503, times=10_000))
    code, out, err = cli("copy", source[0], f"{front.host}/{repo_name('token-down')}:t",
                         "--retries", "2", "--jobs", "1")
    failed_cleanly(code, out, err)
    assert 3 <= tokens.count("GET", r"/token") <= 3 * (len(SIZES) + 2)


# -- mounts refused ----------------------------------------------------------

@pytest.mark.parametrize("answer", ["202", "401"])
def test_mount_refused_falls_back_to_upload(answer: str, cli, registry: Any, proxy: FaultProxy,
                                            pushed: tuple[str, str]) -> None:
    if answer == "401":
        rule = proxy.add(Rule("status", method="POST", path=r"mount=", status=401, times=100,
                              code="UNAUTHORIZED", headers={
                                  "WWW-Authenticate": 'Basic realm="nope"'}))
    else:
        rule = proxy.add(Rule("strip_mount", method="POST", path=r"mount=", times=100))
    repo = repo_name(f"mount-{answer}")
    code, _, err = cli("copy", f"{proxy.host}/{pushed[0]}:t", f"{proxy.host}/{repo}:t")
    survived(code, err)
    assert rule.fired >= 1, "a mount was attempted"
    mounted = {re.search(r"mount=([^&]+)", p).group(1)  # type: ignore[union-attr]
               for m, p, _ in proxy.requests if m == "POST" and "mount=" in p}
    uploaded = {re.search(r"digest=([^&]+)", p).group(1)  # type: ignore[union-attr]
                for m, p, _ in proxy.requests if m == "PUT" and "digest=" in p}
    assert {unquote(d) for d in mounted} <= {unquote(d) for d in uploaded}, \
        "every refused mount was followed by an upload"
    registry_has_image(registry, repo, "t", pushed[1])


# -- chunked uploads ------------------------------------------------------------

def test_chunked_only_registry_with_minimum_chunk(cli, registry: Any, proxy: FaultProxy,
                                                  source: tuple[str, str]) -> None:
    minimum = 1 << 20
    proxy.add(Rule("add_headers", method="POST", path=r"/blobs/uploads/", times=100,
                   headers={"OCI-Chunk-Min-Length": str(minimum)}))
    proxy.add(Rule("chunked_only", method="PUT", path=r"/blobs/uploads/", times=100))
    repo = repo_name("chunked-min")
    code, _, err = cli("copy", source[0], f"{proxy.host}/{repo}:t", "--chunk-size", "256K")
    survived(code, err)
    registry_has_image(registry, repo, "t", source[1])
    patches = [n for m, _, n in proxy.bodies if m == "PATCH"]
    assert patches, "the upload was chunked"
    small = [n for n in patches if n is not None and n < minimum]
    # only the last chunk of each blob may be below the minimum
    assert len(small) <= len(SIZES) + 1, patches


def test_registry_rejecting_chunks_over_4mib(cli, registry: Any, proxy: FaultProxy,
                                             tmp_path: Path) -> None:
    loc, image = layout_with_image(tmp_path / "big", [9 << 20])
    limit = 4 << 20
    proxy.add(Rule("reject_large_chunks", method="PATCH|PUT", path=r"/blobs/uploads/",
                   times=1, limit=limit))
    repo = repo_name("chunk-limit")
    code, _, err = cli("copy", loc, f"{proxy.host}/{repo}:t", "--chunk-size", "4M")
    survived(code, err)
    registry_has_image(registry, repo, "t", str(image.digest))
    sizes = [n for m, p, n in proxy.bodies if m in ("PATCH", "PUT") and "/blobs/uploads/" in p]
    assert all(n is not None and n <= limit for n in sizes), sizes


def test_oversized_chunk_refusal_without_chunk_size_is_one_line(cli, proxy: FaultProxy,
                                                                tmp_path: Path) -> None:
    loc, _ = layout_with_image(tmp_path / "big", [5 << 20])
    """A registry that refuses every body over 4 MiB, pushed to without --chunk-size: one
    line naming the blob and the registry's error, not a retry loop."""
    proxy.add(Rule("reject_large_chunks", method="PATCH|PUT", path=r"/blobs/uploads/",
                   times=10_000, limit=4 << 20))
    code, out, err = cli("copy", loc, f"{proxy.host}/{repo_name('no-chunk')}:t",
                         "--retries", "1")
    failed_cleanly(code, out, err, mentions=("SIZE_INVALID", "upload of sha256:"))
    refused = [path for _, path, status in proxy.requests if status == 416]
    # bounded: 1 + 1 retry (--retries 1), each of which may open a fresh upload once
    assert 1 <= len(refused) <= 4, refused


# -- corrupt storage: layouts, archives, the registry's own disk ---------------------------
# Nothing corrupt is accepted (issue 6 item 3): every blob read is checked against its
# digest and size before use, so a flipped byte anywhere stops copy and verify with exit 1
# naming the blob, and the destination never receives it.


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _manifest_of(root: Path) -> dict[str, Any]:
    index = json.loads((root / "index.json").read_text())
    return json.loads((root / "blobs" / "sha256" /
                       index["manifests"][0]["digest"].split(":")[1]).read_bytes())


@pytest.mark.parametrize("damage", ["flip", "truncate", "extend"])
@pytest.mark.parametrize("which", ["layer", "config"])
def test_corrupt_layout_blob_is_never_accepted(which: str, damage: str, cli,
                                               tmp_path: Path) -> None:
    src, _ = layout_with_image(tmp_path / "src", (64 << 10, 8 << 10))
    manifest = _manifest_of(tmp_path / "src")
    digest = manifest["layers"][0]["digest"] if which == "layer" else manifest["config"]["digest"]
    blob = tmp_path / "src" / "blobs" / "sha256" / digest.split(":")[1]
    if damage == "flip":
        _flip(blob, blob.stat().st_size // 2)
    elif damage == "truncate":
        blob.write_bytes(blob.read_bytes()[:-10])
    else:
        blob.write_bytes(blob.read_bytes() + b"\n")
    code, out, err = cli("verify", src)
    failed_cleanly(code, out, err, mentions=(digest[:19],))
    for dest in (f"oci:{tmp_path / 'out'}:t", f"docker-archive:{tmp_path / 'out.tar'}",
                 f"oci-archive:{tmp_path / 'out-oci.tar'}"):
        code, out, err = cli("copy", src, dest)
        failed_cleanly(code, out, err, mentions=(digest[:19],))
    layout_is_sound(tmp_path / "out", None)
    assert not (tmp_path / "out.tar").exists() and not (tmp_path / "out-oci.tar").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], "no temp files left"


@pytest.mark.parametrize("scheme", ["docker-archive", "oci-archive"])
def test_corrupt_archive_member_is_never_accepted(scheme: str, cli, tmp_path: Path) -> None:
    src, _ = layout_with_image(tmp_path / "src", (64 << 10,))
    archive = tmp_path / "image.tar"
    code, _, err = cli("copy", src, f"{scheme}:{archive}")
    assert code == 0, err
    digest = _manifest_of(tmp_path / "src")["layers"][0]["digest"]
    with tarfile.open(archive) as tar:
        member = tar.getmember(f"blobs/sha256/{digest.split(':')[1]}")
        offset = member.offset_data + member.size // 2
    _flip(archive, offset)
    code, out, err = cli("verify", f"{scheme}:{archive}")
    failed_cleanly(code, out, err, mentions=(digest[:19],))
    code, out, err = cli("copy", f"{scheme}:{archive}", f"oci:{tmp_path / 'out'}:t")
    failed_cleanly(code, out, err, mentions=(digest[:19],))
    layout_is_sound(tmp_path / "out", None)


def test_corrupt_blob_in_registry_storage_is_never_accepted(cli, registry: Any,
                                                            tmp_path: Path) -> None:
    src, image = layout_with_image(tmp_path / "src", (96 << 10,))
    repo = repo_name("disk-corruption")
    code, _, err = cli("copy", src, f"{registry.host}/{repo}:t")
    assert code == 0, err
    digest = _manifest_of(tmp_path / "src")["layers"][0]["digest"]
    hexd = digest.split(":")[1]
    data = (Path(registry.data_dir) / "docker" / "registry" / "v2" / "blobs" / "sha256" /
            hexd[:2] / hexd / "data")
    assert data.exists()
    original = data.read_bytes()
    try:
        _flip(data, len(original) // 3)
        code, out, err = cli("copy", f"{registry.host}/{repo}:t", f"oci:{tmp_path / 'out'}:t",
                             "--retries", "1")
        failed_cleanly(code, out, err, mentions=(digest[:19],))
        layout_is_sound(tmp_path / "out", None)
        code, out, err = cli("verify", f"{registry.host}/{repo}:t", "--retries", "1")
        failed_cleanly(code, out, err, mentions=(digest[:19],))
    finally:
        data.write_bytes(original)
    code, _, err = cli("copy", f"{registry.host}/{repo}:t", f"oci:{tmp_path / 'out'}:t")
    assert code == 0, err
    layout_is_sound(tmp_path / "out", str(image.digest))


# -- answers lost after the registry acted ------------------------------------------------
# The registry did the work (stored the chunk, committed the blob, stored the manifest) but
# the answer never arrived: a blind resend must not corrupt the blob (registry 2.8 appends a
# resent PATCH) nor fail on the upload session the first request already closed.

LOST = {
    "PUT upload": ("PUT", r"/blobs/uploads/", []),
    "PATCH chunk": ("PATCH", r"/blobs/uploads/", ["--chunk-size", "256K"]),
    "PUT closing chunked upload": ("PUT", r"/blobs/uploads/", ["--chunk-size", "256K"]),
    "POST upload": ("POST", r"/blobs/uploads/", []),
    "PUT manifest": ("PUT", r"/manifests/", []),
}


@pytest.mark.parametrize("kind", sorted(LOST))
def test_push_survives_a_lost_answer(kind: str, cli, registry: Any, proxy: FaultProxy,
                                     source: tuple[str, str]) -> None:
    method, path, extra = LOST[kind]
    rule = proxy.add(Rule("lost_answer", method=method, path=path, status=503, times=1,
                          skip=0 if kind == "PUT manifest" else 1))
    repo = repo_name(f"lost-{kind}")
    code, _, err = cli("copy", source[0], f"{proxy.host}/{repo}:t", "--jobs", "1", *extra)
    assert rule.fired == 1
    survived(code, err)
    registry_has_image(registry, repo, "t", source[1])
    if kind.startswith("PUT") and path == r"/blobs/uploads/":
        # the resent PUT finds the session closed; a HEAD shows the commit happened, so
        # the blob is not uploaded again
        assert proxy.count("PUT", r"/blobs/uploads/.*digest=") == len(SIZES) + 2


# -- refused blob commits ----------------------------------------------------------------------
# A refused commit is checked with a HEAD: the blob the registry has (committed by another
# writer, or by our own PUT whose answer was lost) is done; one it lacks, or answers for with
# another size or digest, is uploaded again (bounded) and the registry's code is the error.

def _layout_root(location: str) -> Path:
    return Path(location.removeprefix("oci:").rsplit(":", 1)[0])


@pytest.mark.parametrize("code", ["DIGEST_INVALID", "BLOB_UPLOAD_INVALID",
                                  "BLOB_UPLOAD_UNKNOWN"])
def test_refused_blob_commit_of_a_blob_the_registry_has_counts_as_done(
        code: str, cli, registry: Any, proxy: FaultProxy, source: tuple[str, str]) -> None:
    """The registry committed the blob (another writer's commit or our own) and answered
    with a refusal: one HEAD shows the blob is there, nothing is uploaded again."""
    rule = proxy.add(Rule("lost_answer", method="PUT", path=r"/blobs/uploads/", status=400,
                          code=code, skip=1))
    repo = repo_name(f"refused-commit-{code}")
    code_, _, err = cli("copy", source[0], f"{proxy.host}/{repo}:t", "--jobs", "1")
    assert rule.fired == 1
    survived(code_, err)
    assert proxy.count("PUT", r"/blobs/uploads/") == len(SIZES) + 1   # layers and config
    registry_has_image(registry, repo, "t", source[1])


@pytest.mark.parametrize("times", [1, 100])
def test_digest_invalid_for_a_blob_the_registry_lacks_restarts_once(
        times: int, cli, registry: Any, proxy: FaultProxy, source: tuple[str, str]) -> None:
    """DIGEST_INVALID for a blob the registry lacks (the HEAD answers 404): one new upload
    session; a second DIGEST_INVALID is the error (our bytes hash the same every time)."""
    rule = proxy.add(Rule("status", method="PUT", path=r"/blobs/uploads/", status=400,
                          code="DIGEST_INVALID", times=times))
    repo = repo_name("digest-invalid")
    code, out, err = cli("copy", source[0], f"{proxy.host}/{repo}:t", "--jobs", "1")
    if times == 1:
        survived(code, err)
        assert proxy.count("PUT", r"/blobs/uploads/") == len(SIZES) + 2
        registry_has_image(registry, repo, "t", source[1])
    else:
        failed_cleanly(code, out, err, mentions=("DIGEST_INVALID",))
        assert rule.fired == 2, "one restart, then the registry's code"


@pytest.mark.parametrize("other", ["size", "digest"])
def test_refused_blob_commit_stands_when_the_head_names_another_blob(
        other: str, cli, registry: Any, proxy: FaultProxy, source: tuple[str, str]) -> None:
    """After DIGEST_INVALID, a HEAD answering 200 for the digest but with another length
    or naming another digest does not count as the blob: the upload restarts once, then
    fails with the registry's own code."""
    small = _smallest_layer(source[0])
    size = next(layer["size"] for layer in _manifest_of(_layout_root(source[0]))["layers"]
                if layer["digest"] == small)
    headers = ({"Docker-Content-Digest": small, "Content-Length": str(size + 1)}
               if other == "size" else
               {"Docker-Content-Digest": "sha256:" + "0" * 64, "Content-Length": str(size)})
    refusal = proxy.add(Rule("status", method="PUT", path=rf"/blobs/uploads/.*digest={small}",
                             status=400, code="DIGEST_INVALID", times=100))
    # the first HEAD is the push's own "is it there yet?" and reaches the registry (404)
    head = proxy.add(Rule("status", method="HEAD", path=rf"/blobs/{small}$", status=200,
                          headers=headers, skip=1, times=100))
    repo = repo_name(f"refused-other-{other}")
    code, out, err = cli("copy", source[0], f"{proxy.host}/{repo}:t", "--jobs", "1")
    failed_cleanly(code, out, err, mentions=("DIGEST_INVALID",))
    assert refusal.fired == 2, "one restart, then the registry's code"
    assert head.fired == 2, "a HEAD after each refusal"


# -- writers racing in the registry ---------------------------------------------------------------
# Registry 2.8 (filesystem storage) writes a blob's link file in place, truncate then write,
# on every commit of that blob -- also when the blob is already there.  A manifest PUT that
# reads the link in that instant is refused with DIGEST_INVALID and MANIFEST_BLOB_UNKNOWN
# although the blob is present: several pushes sharing blobs into one repository hit it (an
# index naming a child manifest whose revision link is rewritten, likewise).  The rules below
# empty the real link file around one exchange, as the racing commit does, and let the real
# registry answer.

def _link(registry: Any, repo: str, digest: str, kind: str = "_layers") -> Path:
    """The registry's link file for a blob (``_layers``) or a manifest
    (``_manifests/revisions``) of ``repo``."""
    return (Path(registry.data_dir) / "docker" / "registry" / "v2" / "repositories" / repo /
            kind / "sha256" / digest.split(":")[1] / "link")


@contextlib.contextmanager
def _link_rewritten(registry: Any, repo: str, digest: str,
                    kind: str = "_layers") -> Iterator[None]:
    link = _link(registry, repo, digest, kind)
    text = link.read_bytes()
    link.write_bytes(b"")
    try:
        yield
    finally:
        link.write_bytes(text)


def _manifest_puts(registry: Any, mark: int) -> list[int]:
    return [status for method, path, status in registry.requests_since(mark)
            if method == "PUT" and "/manifests/" in path]


def _after_refusal(proxy: FaultProxy, manifest: str) -> list[tuple[str, str, int]]:
    """(method, path from /manifests/ or /blobs/, status) of the requests answered after
    the first refusal (400) of the manifest PUT to a path ending in ``manifest``."""
    answered = [(m, p[p.rfind("/", 0, p.rfind("/")):], status)
                for m, p, status in proxy.requests]
    first = answered.index(("PUT", manifest, 400))
    return answered[first + 1:]


def test_push_survives_a_commit_racing_its_manifest(cli, registry: Any, proxy: FaultProxy,
                                                    source: tuple[str, str]) -> None:
    repo = repo_name("racing-commit")
    layer = _manifest_of(_layout_root(source[0]))["layers"][1]["digest"]
    rule = proxy.add(Rule("around", method="PUT", path=r"/manifests/",
                          around=lambda: _link_rewritten(registry, repo, layer)))
    mark = registry.log_mark()
    code, _, err = cli("copy", source[0], f"{proxy.host}/{repo}:t")
    assert rule.fired == 1
    survived(code, err)
    assert _manifest_puts(registry, mark) == [400, 201]
    log = registry.log_since(mark)
    assert 'err.code="digest invalid"' in log and 'err.code="manifest blob unknown"' in log
    registry_has_image(registry, repo, "t", source[1])


def test_manifest_refused_for_a_present_blob_is_put_again_a_bounded_number_of_times(
        cli, registry: Any, proxy: FaultProxy, source: tuple[str, str]) -> None:
    repo = repo_name("racing-forever")
    layer = _manifest_of(_layout_root(source[0]))["layers"][0]["digest"]
    rule = proxy.add(Rule("around", method="PUT", path=r"/manifests/", times=100,
                          around=lambda: _link_rewritten(registry, repo, layer)))
    mark = registry.log_mark()
    code, out, err = cli("copy", source[0], f"{proxy.host}/{repo}:t")
    failed_cleanly(code, out, err, mentions=("DIGEST_INVALID",))
    assert rule.fired == 3
    assert _manifest_puts(registry, mark) == [400, 400, 400]


def test_index_refused_for_a_present_child_is_put_again(cli, registry: Any, proxy: FaultProxy,
                                                        tmp_path: Path) -> None:
    """The children of an index are checked with a HEAD each (not as blobs)."""
    from image_factory import make_index

    from ociforge.stores.layout import Layout

    index = make_index(tmp_path / "src")
    Layout(tmp_path / "layout").put(index, "m")
    child = str(index.children[0][1].digest)
    repo = repo_name("racing-child")
    rule = proxy.add(Rule("around", method="PUT", path=r"/manifests/m$",
                          around=lambda: _link_rewritten(registry, repo, child,
                                                         "_manifests/revisions")))
    mark = registry.log_mark()
    code, _, err = cli("copy", f"oci:{tmp_path / 'layout'}:m", f"{proxy.host}/{repo}:m",
                       "--platform", "all")
    assert rule.fired == 1
    survived(code, err)
    assert _manifest_puts(registry, mark) == [201, 201, 400, 201]
    assert ("HEAD", f"/manifests/{child}", 200) in _after_refusal(proxy, "/manifests/m")
    resp = requests.get(f"http://{registry.host}/v2/{repo}/manifests/m",
                        headers={"Accept": OCI_ACCEPT}, timeout=30)
    assert resp.status_code == 200
    assert "sha256:" + hashlib.sha256(resp.content).hexdigest() == str(index.digest)


def test_manifest_refused_for_a_missing_blob_fails_with_the_registrys_code(
        cli, registry: Any, proxy: FaultProxy, source: tuple[str, str]) -> None:
    """MANIFEST_BLOB_UNKNOWN for a blob that is really gone: the check finds it missing,
    the manifest is not sent again, and the registry's code is what the user reads."""
    repo = repo_name("blob-gone")
    layer = _manifest_of(_layout_root(source[0]))["layers"][0]["digest"]

    @contextlib.contextmanager
    def link_removed() -> Iterator[None]:
        _link(registry, repo, layer).unlink()
        yield

    rule = proxy.add(Rule("around", method="PUT", path=r"/manifests/", times=100,
                          around=link_removed))
    mark = registry.log_mark()
    code, out, err = cli("copy", source[0], f"{proxy.host}/{repo}:t")
    failed_cleanly(code, out, err, mentions=("MANIFEST_BLOB_UNKNOWN",))
    assert rule.fired == 1
    assert _manifest_puts(registry, mark) == [400]
    assert ("HEAD", f"/blobs/{layer}", 404) in _after_refusal(proxy, "/manifests/t")


def test_corrupt_base_layer_stops_append_and_export(cli, tmp_path: Path) -> None:
    """A base image's blobs are checked as they are used: no output names a bad blob."""
    base, _ = layout_with_image(tmp_path / "base", (5000, 3000))
    digest = _manifest_of(tmp_path / "base")["layers"][0]["digest"]
    _flip(tmp_path / "base" / "blobs" / "sha256" / digest.split(":")[1], 100)
    app = tmp_path / "app"
    (app / "bin").mkdir(parents=True)
    (app / "bin" / "x").write_text("hi\n")
    (app / "ociforge.toml").write_text(
        f'[app]\nname = "a"\nbase = "{base}"\nplatform = "linux/amd64"\n'
        '[[layers]]\nsrc = "bin"\ndest = "/bin"\n')
    extra = tmp_path / "extra.txt"
    extra.write_text("x\n")
    for argv in (["export", str(app), "-o", str(tmp_path / "app.tar")],
                 ["export", str(app), "-o", f"oci:{tmp_path / 'app-layout'}:t"],
                 ["append", base, "--layer", str(extra), "-o", f"oci:{tmp_path / 'out'}:t"],
                 ["append", base, "--layer", str(extra), "-o", str(tmp_path / "out.tar")]):
        code, out, err = cli(*argv)
        failed_cleanly(code, out, err, mentions=(digest[:19],))
    assert not (tmp_path / "app.tar").exists() and not (tmp_path / "out.tar").exists()
    layout_is_sound(tmp_path / "app-layout", None)
    layout_is_sound(tmp_path / "out", None)


# -- registries that lie ------------------------------------------------------------------------

def test_registry_claiming_blobs_it_lacks_fails_cleanly(cli, proxy: FaultProxy,
                                                        source: tuple[str, str]) -> None:
    """HEAD says every blob is there (it is not): the manifest PUT is refused by the
    registry and the push stops with one line, not a false success."""
    proxy.add(Rule("status", method="HEAD", path=r"/blobs/sha256:", status=200, times=1000))
    code, out, err = cli("copy", source[0], f"{proxy.host}/{repo_name('lying-head')}:t")
    failed_cleanly(code, out, err, mentions=("MANIFEST_BLOB_UNKNOWN|blob unknown",))


def test_registry_reporting_another_manifest_digest_fails_cleanly(
        cli, proxy: FaultProxy, source: tuple[str, str]) -> None:
    fake = "sha256:" + "e" * 64
    proxy.add(Rule("rewrite", method="PUT", path=r"/manifests/", times=1,
                   headers={source[1]: fake}))
    code, out, err = cli("copy", source[0], f"{proxy.host}/{repo_name('lying-put')}:t")
    failed_cleanly(code, out, err, mentions=(fake[:19],))
