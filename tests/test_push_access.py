"""Check before writing: push access to every registry destination is proven first.

Real registries: a token-auth registry whose token server grants one user
(``reader``) only ``pull`` whatever is asked (as Docker Hub does for a
repository you may only read), the htpasswd registry with a wrong password,
and the anonymous plain registry.  A refusal exits 1 and nothing is written to
any destination of the run, the file destinations included.  When a run fails
part-way, stderr and --json name the destinations completed and not completed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from faultproxy import FaultProxy, Rule
from progresslines import messages
from registry_fixtures import RegistryServer, docker_login, start_token_registry
from tokenserver import TokenServer
from tools import ociforge_env

from ociforge.errors import AuthError
from ociforge.options import RegistryOptions
from ociforge.remote.auth import Credentials
from ociforge.remote.client import RegistryClient
from ociforge.stores.layout import LOCK_NAME, WRITERS_LOCK_NAME

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello"


@dataclass
class PullOnlyTokens(TokenServer):
    """A token server that grants the users in ``readers`` pull only, whatever they ask."""

    readers: set[str] = field(default_factory=set)

    def mint(self, user: str | None, scopes: list[str], expires_in: int | None = None) -> str:
        if user in self.readers:
            scopes = [s.rsplit(":", 1)[0] + ":pull" if s.startswith("repository:") else s
                      for s in scopes]
        return super().mint(user, scopes, expires_in)


@pytest.fixture(scope="module")
def readonly_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """Token auth; ``writer`` may push, ``reader`` is granted pull only."""
    root = tmp_path_factory.mktemp("readonly-registry")
    passwords = {"writer": "w-" + secrets.token_hex(6), "reader": "r-" + secrets.token_hex(6)}
    server = start_token_registry(root, PullOnlyTokens(users=dict(passwords),
                                                       readers={"reader"}))
    server.extra["passwords"] = passwords
    yield server
    server.stop()


def _repositories(server: RegistryServer) -> set[str]:
    """Repositories the registry's storage holds (any trace of a write)."""
    top = server.data_dir / "docker" / "registry" / "v2" / "repositories"
    if not top.exists():
        return set()
    return {str(p.parent.relative_to(top)) for p in top.rglob("_uploads")} | \
        {str(p.parent.relative_to(top)) for p in top.rglob("_layers")}


def _posts(server: RegistryServer, mark: int) -> int:
    return server.log_since(mark).count('"POST /v2/')


# -- a refusal writes nothing anywhere ------------------------------------------------

def test_pull_only_user_is_refused_before_anything_is_written(
        readonly_registry: RegistryServer, cli: Any, tmp_path: Path) -> None:
    host = readonly_registry.host
    docker_login(host, "reader", readonly_registry.extra["passwords"]["reader"])
    repo = f"team/app-{uuid.uuid4().hex[:6]}"
    layout, archive, report = tmp_path / "lay", tmp_path / "app.tar", tmp_path / "report.json"
    mark = readonly_registry.log_mark()
    code, out, err = cli("export", HELLO, "-o", f"oci:{layout}", "-o", archive,
                         "-o", f"{host}/{repo}:1", "--report", report, "--json")
    assert code == 1, err
    assert len(messages(err)) == 1
    assert f"no push access to {repo} for user 'reader'" in err and "granted pull" in err
    assert json.loads(out) == {"error": messages(err)[0].removeprefix("ociforge: error: "),
                               "exit_code": 1}
    assert not layout.exists() and not archive.exists() and not report.exists()
    assert list(tmp_path.iterdir()) == []
    assert _posts(readonly_registry, mark) == 0, "the token said enough: no upload started"
    assert repo not in _repositories(readonly_registry)


def test_anonymous_push_to_a_token_registry_is_refused_and_says_login(
        readonly_registry: RegistryServer, cli: Any, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f").write_text("x")
    code, out, err = cli("append", "scratch", "--layer", f"{tree}:/t", "-o",
                         f"oci:{tmp_path / 'lay'}", "-o", f"{readonly_registry.host}/anon/x:1")
    assert code == 1 and out == ""
    assert "no push access to anon/x for anonymous" in err and "ociforge login" in err
    assert not (tmp_path / "lay").exists()


def test_a_push_access_check_left_for_the_cache_still_comes_before_any_write(
        readonly_registry: RegistryServer, cli: Any, tmp_path: Path) -> None:
    """The cache remembers this tag holding this very image on a registry that asked for
    no credentials (a memory that no longer holds): the check waits for the image, the
    re-push check's HEAD is refused, and push access is asked before the layout is made."""
    from ociforge.cache.location import cache_options
    from ociforge.cache.registry import remember_tag
    from ociforge.cache.repush import remember_registry
    from ociforge.cache.store import Cache
    from ociforge.model.digest import Digest

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f").write_text("deferred")
    code, out, err = cli("append", "scratch", "--layer", f"{tree}:/t", "-o",
                         f"oci:{tmp_path / 'first'}", "--no-cache")
    assert code == 0, err
    digest = Digest.parse(out.split()[0])
    host = readonly_registry.host
    cache = Cache.open(cache_options(None, False, False))
    assert cache is not None
    remember_registry(cache, host, f"http://{host}", None)
    remember_tag(cache, host, "anon/deferred", "1", digest, "pushed")
    mark = readonly_registry.log_mark()
    code, out, err = cli("append", "scratch", "--layer", f"{tree}:/t", "-o",
                         f"oci:{tmp_path / 'lay'}", "-o", f"{host}/anon/deferred:1")
    assert code == 1 and out == ""
    assert "no push access to anon/deferred for anonymous" in err, err
    assert not (tmp_path / "lay").exists()
    seen = readonly_registry.requests_since(mark)
    assert seen[0] == ("HEAD", "/v2/anon/deferred/manifests/1", 401), seen
    assert not any(method in ("PUT", "PATCH") for method, _, _ in seen), seen


def test_wrong_basic_password_is_refused_before_the_layout_is_made(
        tls_registry: RegistryServer, cli: Any, tmp_path: Path) -> None:
    docker_login(tls_registry.host, tls_registry.username or "", "not-the-password")
    repo = f"basic/app-{uuid.uuid4().hex[:6]}"
    code, _, err = cli("export", HELLO, "-o", f"oci:{tmp_path / 'lay'}",
                       "-o", f"{tls_registry.host}/{repo}:1", "--ca-cert", tls_registry.ca_path)
    assert code == 1
    assert "credentials refused" in err and "push access check" in err, err
    assert not (tmp_path / "lay").exists()
    assert repo not in _repositories(tls_registry)


def test_writer_passes_on_the_token_alone(readonly_registry: RegistryServer) -> None:
    """A JWT granting push is proof enough: no upload session is opened for the check."""
    client = RegistryClient(readonly_registry.host, RegistryOptions(),
                            Credentials("writer", readonly_registry.extra["passwords"]["writer"]))
    mark = readonly_registry.log_mark()
    client.check_push_access("team/ok")
    assert _posts(readonly_registry, mark) == 0
    reader = RegistryClient(readonly_registry.host, RegistryOptions(),
                            Credentials("reader", readonly_registry.extra["passwords"]["reader"]))
    with pytest.raises(AuthError, match="granted pull"):
        reader.check_push_access("team/ok")


def test_anonymous_registry_probe_opens_and_deletes_an_upload(
        registry: RegistryServer) -> None:
    """Without a token the registry is asked: POST answered 202, then the session deleted."""
    repo = f"probe/{uuid.uuid4().hex[:6]}"
    mark = registry.log_mark()
    RegistryClient(registry.host).check_push_access(repo)
    log = registry.log_since(mark)
    assert f'"POST /v2/{repo}/blobs/uploads/ HTTP/1.1" 202' in log
    deleted = re.search(rf'"DELETE (/v2/{repo}/blobs/uploads/[^ ]+) HTTP/1.1" 204 ', log)
    assert deleted is not None, log
    # the registry no longer knows the session (its storage keeps a folder until its purge)
    status = requests.get(f"http://{registry.host}{deleted.group(1)}", timeout=5)
    assert status.status_code == 404 and "BLOB_UPLOAD_UNKNOWN" in status.text


# -- failing part-way: which destinations were written ------------------------------

def test_failure_after_the_first_destination_names_what_was_completed(
        registry: RegistryServer, cli: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCIFORGE_RETRY_BASE", "0")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f").write_text("payload")
    layout = tmp_path / "lay"
    with FaultProxy(registry.host) as proxy:
        proxy.add(Rule("status", method="PUT", path=r"/manifests/", status=500, times=100,
                       code="UNKNOWN"))
        dest = f"{proxy.host}/partial/app:1"
        code, out, err = cli("append", "scratch", "--layer", f"{tree}:/t", "-o",
                             f"oci:{layout}:1", "-o", dest, "--retries", "1", "--json")
    assert code == 1
    lines = messages(err)
    assert len(lines) == 1
    assert f"(completed: oci:{layout}:1; not completed: {dest})" in lines[0]
    result = json.loads(out)
    assert result["exit_code"] == 1 and "UNKNOWN" in result["error"]
    assert result["completed"] == [f"oci:{layout}:1"] and result["not_completed"] == [dest]
    assert (layout / "index.json").exists()


@pytest.mark.parametrize("sig, code, word", [
    (signal.SIGTERM, 143, "terminated"),
    (signal.SIGINT, 130, "interrupted"),
], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_push_cleans_up_and_names_what_was_completed(
        registry: RegistryServer, tmp_path: Path, sig: int, code: int, word: str) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "big.bin").write_bytes(os.urandom(256 << 10))
    scratch_tmp = tmp_path / "tmp"
    scratch_tmp.mkdir()
    layout = tmp_path / "lay"
    with FaultProxy(registry.host) as proxy:
        stall = proxy.add(Rule("stall", method="PUT", path=r"/blobs/uploads/", times=1,
                               delay=60))
        dest = f"{proxy.host}/signal/app-{uuid.uuid4().hex[:6]}:1"
        proc = subprocess.Popen(
            [sys.executable, "-m", "ociforge", "append", "scratch", "--layer", f"{tree}:/t",
             "-o", f"oci:{layout}:1", "-o", dest, "--jobs", "1", "--json"],
            env=ociforge_env(TMPDIR=str(scratch_tmp)), cwd=tmp_path, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while stall.fired == 0 and proc.poll() is None:
                assert time.monotonic() < deadline, "the push never reached the stall"
                time.sleep(0.05)
            assert proc.poll() is None, proc.communicate()
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == code, err
    lines = messages(err)
    assert lines[-1] == (f"ociforge: {word} (completed: oci:{layout}:1; "
                         f"not completed: {dest})"), err
    result = json.loads(out)
    assert result == {"error": word, "exit_code": code, "completed": [f"oci:{layout}:1"],
                      "not_completed": [dest]}
    assert (layout / "index.json").exists()
    assert [p.name for p in scratch_tmp.iterdir()] == [], "blobs being built are removed"
    leftovers = [p for p in layout.rglob("*") if ".tmp" in p.name or p.name.startswith(".")]
    # the lock files stay (removing a lock file races with the next writer taking it)
    assert [p for p in leftovers if p.name not in (LOCK_NAME, WRITERS_LOCK_NAME)] == []


def test_refused_registry_leaves_no_trace_with_skopeo_either(
        readonly_registry: RegistryServer, tmp_path: Path) -> None:
    """What the registry says afterwards (asked as the writer): the tag does not exist."""
    host = readonly_registry.host
    docker_login(host, "reader", readonly_registry.extra["passwords"]["reader"])
    repo = f"team/none-{uuid.uuid4().hex[:6]}"
    proc = subprocess.run(
        [sys.executable, "-m", "ociforge", "copy", f"oci:{_small_layout(tmp_path)}:1",
         f"{host}/{repo}:1", "--json"], env=ociforge_env(), capture_output=True, text=True,
        timeout=60)
    assert proc.returncode == 1 and json.loads(proc.stdout)["exit_code"] == 1
    tokens = readonly_registry.token_server
    token = tokens.mint("writer", [f"repository:{repo}:pull"])
    resp = requests.get(f"http://{host}/v2/{repo}/tags/list",
                        headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert resp.status_code == 404, resp.text


def _small_layout(tmp_path: Path) -> Path:
    from ociforge.cli import main

    tree = tmp_path / "small"
    tree.mkdir()
    (tree / "f").write_text("x")
    layout = tmp_path / "small-layout"
    assert main(["append", "scratch", "--layer", f"{tree}:/f", "-o", f"oci:{layout}:1"]) == 0
    shutil.rmtree(tree)
    return layout
