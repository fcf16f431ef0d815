"""Interrupted pushes resume (issue 6 item 2).

A push is slowed down by the fault proxy (one upload stalls), killed with
SIGKILL while it waits, and run again: the second run uploads only the blobs
the registry does not have yet (counted at the proxy) and ends with the same
manifest digest.  A blob whose upload is cut in the middle (monolithic or
chunked) is uploaded again from the start and verifies.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from faultproxy import FaultProxy, Rule
from imagegen import layout_with_image
from progresslines import messages
from tools import ociforge_env

SIZES = (300 << 10, 200 << 10, 700 << 10, 100 << 10, 400 << 10)
OCI_ACCEPT = "application/vnd.oci.image.manifest.v1+json"
# A stall longer than any test waits, with --timeout longer still: only the signal can end
# the run, and the stall rule's ``released`` count shows whether the run waited for it.
STALL_FOREVER = 120.0


def _blob_digests(layout_root: Path) -> list[str]:
    index = json.loads((layout_root / "index.json").read_text())
    manifest = json.loads((layout_root / "blobs" / "sha256" /
                           index["manifests"][0]["digest"].split(":")[1]).read_bytes())
    return [manifest["config"]["digest"], *(d["digest"] for d in manifest["layers"])]


def _present(registry: Any, repo: str, digests: list[str]) -> set[str]:
    return {d for d in digests
            if requests.head(f"http://{registry.host}/v2/{repo}/blobs/{d}", timeout=5)
            .status_code == 200}


def _uploaded(proxy: FaultProxy) -> list[str]:
    """Digests of finished uploads (the closing PUT ...?digest= that got 201)."""
    return [p.split("digest=")[1].split("&")[0].replace("%3A", ":")
            for m, p, status in proxy.requests
            if m == "PUT" and "digest=" in p and status == 201]


def _wait_for(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the push to reach the stall")
        time.sleep(0.05)


def _manifest_digest(registry: Any, repo: str) -> str:
    resp = requests.get(f"http://{registry.host}/v2/{repo}/manifests/t",
                        headers={"Accept": OCI_ACCEPT}, timeout=5)
    assert resp.status_code == 200
    return "sha256:" + hashlib.sha256(resp.content).hexdigest()


def _verify_blobs(registry: Any, repo: str, digests: list[str]) -> None:
    for digest in digests:
        body = requests.get(f"http://{registry.host}/v2/{repo}/blobs/{digest}", timeout=5).content
        assert "sha256:" + hashlib.sha256(body).hexdigest() == digest


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_killed_push_resumes_skipping_blobs_already_there(
        chunked: bool, tmp_path: Path, registry: Any) -> None:
    src, image = layout_with_image(tmp_path / "src", SIZES)
    digests = _blob_digests(tmp_path / "src")
    repo = f"resume/{'chunked' if chunked else 'mono'}-{uuid.uuid4().hex[:6]}"
    extra = ["--chunk-size", "128K"] if chunked else []
    with FaultProxy(registry.host) as proxy:
        # let two blobs through, then hang the third upload's request
        method = "PATCH" if chunked else "PUT"
        stall = proxy.add(Rule("stall", method=method, path=r"/blobs/uploads/",
                               skip=2 if not chunked else 7, times=1, delay=60))
        cmd = [sys.executable, "-m", "ociforge", "copy", src, f"{proxy.host}/{repo}:t",
               "--jobs", "1", *extra]
        proc = subprocess.Popen(cmd, env=ociforge_env(), cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            _wait_for(lambda: stall.fired == 1 or proc.poll() is not None)
            assert proc.poll() is None, proc.communicate()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        done_before = _present(registry, repo, digests)
        assert 0 < len(done_before) < len(digests), "the kill came in the middle of the push"

        proxy.clear()
        proxy.requests.clear()
        second = subprocess.run(cmd, env=ociforge_env(), cwd=tmp_path, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        uploaded = _uploaded(proxy)
        assert not set(uploaded) & done_before, "blobs already there are not uploaded again"
        assert set(uploaded) == set(digests) - done_before
        heads = proxy.count("HEAD", r"/blobs/sha256:")
        assert heads >= len(digests), "every blob is checked before it is uploaded"
    assert _manifest_digest(registry, repo) == str(image.digest)
    _verify_blobs(registry, repo, digests)


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_upload_cut_mid_blob_restarts_that_blob(chunked: bool, tmp_path: Path,
                                                registry: Any, cli,  # type: ignore[no-untyped-def]
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    src, image = layout_with_image(tmp_path / "src", (1536 << 10,))
    digests = _blob_digests(tmp_path / "src")
    repo = f"resume/cut-{uuid.uuid4().hex[:6]}"
    extra = ["--chunk-size", "256K"] if chunked else []
    monkeypatch.setenv("OCIFORGE_RETRY_BASE", "0")
    with FaultProxy(registry.host) as proxy:
        method = "PATCH" if chunked else "PUT"
        cut = proxy.add(Rule("reset", method=method, path=r"/blobs/uploads/",
                             skip=2 if chunked else 0, times=1))
        code, _, err = cli("copy", src, f"{proxy.host}/{repo}:t", "--jobs", "1", *extra)
        assert code == 0, err
        assert cut.fired == 1
    assert _manifest_digest(registry, repo) == str(image.digest)
    _verify_blobs(registry, repo, digests)


# -- interrupted writes leave nothing half-written (issue 6 item 3) ----------------------------

DESTINATIONS = {
    "docker-archive": lambda root: f"docker-archive:{root / 'out.tar'}",
    "oci-archive": lambda root: f"oci-archive:{root / 'out.tar'}",
    "oci": lambda root: f"oci:{root / 'layout'}:t",
}


def _layout_consistent(root: Path) -> None:
    """index.json (if any) names only manifests whose blobs are all present and sound."""
    blobs = root / "blobs" / "sha256"
    if blobs.is_dir():
        for blob in blobs.iterdir():
            if not blob.name.startswith("."):
                assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    if not (root / "index.json").exists():
        return
    for desc in json.loads((root / "index.json").read_text())["manifests"]:
        manifest = json.loads((blobs / desc["digest"].split(":")[1]).read_bytes())
        for child in [manifest["config"], *manifest["layers"]]:
            assert (blobs / child["digest"].split(":")[1]).exists(), child


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
@pytest.mark.parametrize("dest", sorted(DESTINATIONS))
def test_interrupted_write_leaves_no_partial_output(dest: str, sig: int, tmp_path: Path,
                                                   registry: Any) -> None:
    src, image = layout_with_image(tmp_path / "src", (200 << 10, 300 << 10, 100 << 10))
    repo = f"resume/interrupt-{uuid.uuid4().hex[:6]}"
    push = subprocess.run([sys.executable, "-m", "ociforge", "copy", src,
                           f"{registry.host}/{repo}:t"], env=ociforge_env(), capture_output=True,
                          text=True, timeout=60)
    assert push.returncode == 0, push.stderr
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = DESTINATIONS[dest](out_dir)
    with FaultProxy(registry.host) as proxy:
        stall = proxy.add(Rule("stall", method="GET", path=r"/blobs/sha256:", skip=2, times=1,
                               delay=STALL_FOREVER))
        proc = subprocess.Popen(
            [sys.executable, "-m", "ociforge", "copy", f"{proxy.host}/{repo}:t", target,
             "--jobs", "1", "--timeout", "600"], env=ociforge_env(), cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(lambda: stall.fired == 1 or proc.poll() is not None)
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
            os.kill(proc.pid, sig)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        assert messages(err) == ["ociforge: interrupted"]
        assert stall.released == 0, "Ctrl-C took effect while the stalled answer was pending"
    else:
        assert proc.returncode == -signal.SIGKILL
    if dest == "oci":
        _layout_consistent(out_dir / "layout")
        if sig == signal.SIGINT:
            leftovers = [p for p in (out_dir / "layout").rglob("*")
                         if p.name.endswith(".tmp") or p.name.startswith(".tmp")]
            assert not leftovers, leftovers
    else:
        assert not (out_dir / "out.tar").exists(), "no partial archive under the final name"
        if sig == signal.SIGINT:
            assert list(out_dir.iterdir()) == [], "the temporary file is removed on Ctrl-C"
    # and the same command, run again without the fault, completes
    again = subprocess.run([sys.executable, "-m", "ociforge", "copy",
                            f"{registry.host}/{repo}:t", target], env=ociforge_env(), cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    if dest == "oci":
        _layout_consistent(out_dir / "layout")
        index = json.loads((out_dir / "layout" / "index.json").read_text())
        assert [m["digest"] for m in index["manifests"]] == [str(image.digest)]


@pytest.mark.parametrize("direction", ["push", "pull"])
def test_ctrl_c_stops_parallel_transfers_promptly(direction: str, tmp_path: Path,
                                                  registry: Any) -> None:
    """With --jobs 4 a stalled worker must not hold Ctrl-C hostage until its timeout."""
    src, _ = layout_with_image(tmp_path / "src", (100 << 10, 200 << 10, 300 << 10))
    repo = f"resume/ctrl-c-{uuid.uuid4().hex[:6]}"
    if direction == "pull":
        pushed = subprocess.run([sys.executable, "-m", "ociforge", "copy", src,
                                 f"{registry.host}/{repo}:t"], env=ociforge_env(),
                                capture_output=True, text=True, timeout=60)
        assert pushed.returncode == 0, pushed.stderr
    with FaultProxy(registry.host) as proxy:
        if direction == "push":
            stall = proxy.add(Rule("stall", method="PUT", path=r"/blobs/uploads/", times=1,
                                   delay=STALL_FOREVER))
            argv = ["copy", src, f"{proxy.host}/{repo}:t"]
        else:
            stall = proxy.add(Rule("stall", method="GET", path=r"/blobs/sha256:", times=1,
                                   skip=1, delay=STALL_FOREVER))
            argv = ["copy", f"{proxy.host}/{repo}:t", f"oci:{tmp_path / 'out'}:t"]
        proc = subprocess.Popen([sys.executable, "-m", "ociforge", *argv, "--jobs", "4",
                                 "--timeout", "600"],
                                env=ociforge_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            _wait_for(lambda: stall.fired == 1 or proc.poll() is not None)
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, err
    assert messages(err) == ["ociforge: interrupted"]
    assert stall.released == 0, "Ctrl-C did not wait for the stalled worker"
    if direction == "pull":
        _layout_consistent(tmp_path / "out")
        leftovers = [p.name for p in (tmp_path / "out").rglob("*") if p.name.endswith(".tmp")]
        assert not leftovers, leftovers


@pytest.mark.parametrize("dest", sorted(DESTINATIONS))
def test_disk_full_while_writing_leaves_nothing_and_names_the_output(dest: str,
                                                                     tmp_path: Path) -> None:
    """A write that fails (here: the file-size limit, like a full disk or quota) is exit 1,
    one line naming the output, and no file or temporary file is left."""
    import resource

    src, _ = layout_with_image(tmp_path / "src", (3 << 20,))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = DESTINATIONS[dest](out_dir)

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    proc = subprocess.run([sys.executable, "-m", "ociforge", "copy", src, target],
                          env=ociforge_env(), capture_output=True, text=True, timeout=60,
                          preexec_fn=small_files)
    assert proc.returncode == 1, proc.stderr
    lines = messages(proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(out_dir) in lines[0], lines[0]
    assert not [p for p in out_dir.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert not (out_dir / "out.tar").exists()
    _layout_consistent(out_dir / "layout")
