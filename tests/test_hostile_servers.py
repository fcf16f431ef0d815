"""Hostile servers end cleanly: deep JSON, endless and trickling answers, stalled blobs.

Every JSON document from the network is read with bounded size and depth
(jsonutil.loads), ``--timeout`` bounds a whole manifest, token or error answer,
and a blob transfer that makes no real progress (less than watchdog.MIN_RATE
bytes per second over ``--timeout`` seconds of waiting) is given up.  Each case
is a real server on loopback (tests/hostileregistry.py); each must end with one
line and exit 1 or 2, never a traceback and never a hang.  The pytest timeout
on each test is the only clock: it catches "never ends", nothing finer.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from hostileregistry import (
    PASSWORD,
    Answer,
    HostileRegistry,
    docker_config,
    endless,
    nested,
    trickled,
)
from imagegen import layout_with_image
from progresslines import messages

from ociforge.errors import InvalidInputError
from ociforge.model import mediatypes as mt
from ociforge.options import RegistryOptions
from ociforge.remote.auth import Credentials
from ociforge.remote.client import RegistryClient

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("fast_retries")]

# 3 s: a hostile answer is given up that soon, while every honest exchange of the same
# run (the API check, a token) has room on a loaded 2-core machine
FAST = ("--retries", "0", "--timeout", "3")


def _one_line(code: int, err: str, codes: tuple[int, ...] = (1, 2)) -> None:
    assert code in codes, err
    assert len(messages(err)) == 1, err
    assert "Traceback" not in err and "RecursionError" not in err
    assert PASSWORD not in err


def _pull(registry: HostileRegistry, tmp_path: Path, cli, *extra: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    docker_config(Path(os.environ["DOCKER_CONFIG"]), registry.host)
    out = tmp_path / "out"
    code, _, err = cli("copy", f"{registry.host}/app:t", f"oci:{out}:t", *extra)
    if code != 0:
        assert not (out / "index.json").exists()
    return code, err


def _manifest_naming_config(registry: HostileRegistry, config: bytes) -> bytes:
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    registry.blobs[digest] = config
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                       "config": {"mediaType": mt.OCI_CONFIG, "digest": digest,
                                  "size": len(config)},
                       "layers": []}).encode()


# -- deep JSON, every document kind --------------------------------------------------------

@pytest.mark.parametrize("kind", ["manifest", "index", "config", "error body", "token answer"])
def test_deeply_nested_json_ends_in_one_line(kind: str, src: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    with HostileRegistry(src, bearer=kind == "token answer") as registry:
        deep = nested(100_000)
        if kind == "manifest":
            registry.tricks["manifest"] = Answer(200, {"Content-Type": mt.OCI_MANIFEST}, deep)
        elif kind == "index":
            body = b'{"schemaVersion":2,"mediaType":"%s","manifests":%s}' % (
                mt.OCI_INDEX.encode(), deep)
            registry.tricks["manifest"] = Answer(200, {"Content-Type": mt.OCI_INDEX}, body)
        elif kind == "config":
            registry.tricks["manifest"] = Answer(200, {"Content-Type": mt.OCI_MANIFEST},
                                                 _manifest_naming_config(registry, deep))
        elif kind == "error body":
            registry.tricks["manifest"] = Answer(404, {"Content-Type": "application/json"},
                                                 deep)
        else:
            registry.tricks["token"] = Answer(200, {"Content-Type": "application/json"}, deep)
        code, err = _pull(registry, tmp_path, cli, *FAST)
    _one_line(code, err)
    if kind != "error body":
        assert "nested deeper than 100 levels" in err, err
    if kind in ("manifest", "index", "token answer"):
        assert registry.host in err


def test_deeply_nested_tag_list_is_bad_input() -> None:
    with HostileRegistry() as registry:
        registry.tricks["tags"] = Answer(200, {"Content-Type": "application/json"},
                                         nested(100_000))
        client = RegistryClient(registry.host, RegistryOptions(retries=0, timeout=5),
                                Credentials("mallory-victim", PASSWORD))
        with pytest.raises(InvalidInputError, match="nested deeper than 100") as info:
            client.list_tags("app")
    assert registry.host in str(info.value)


# -- endless and trickling answers ---------------------------------------------------------

@pytest.mark.parametrize("kind", ["manifest", "token answer", "error body"])
@pytest.mark.parametrize("pace", ["fast", "trickle"])
def test_endless_answer_ends_cleanly(kind: str, pace: str, src: Path, tmp_path: Path,
                                     cli) -> None:  # type: ignore[no-untyped-def]
    body = endless(b"[" * 65536) if pace == "fast" else endless(b" ", 0.02)
    with HostileRegistry(src, bearer=kind == "token answer") as registry:
        answer = Answer(404 if kind == "error body" else 200,
                        {"Content-Type": "application/json"}, body)
        registry.tricks["token" if kind == "token answer" else "manifest"] = answer
        code, err = _pull(registry, tmp_path, cli, *FAST)
    _one_line(code, err)
    assert registry.host in err
    if kind == "error body":
        assert code == 1 and "manifest app:t" in err, err
    elif pace == "fast":
        assert "byte limit" in err, err
    else:
        assert code == 1 and "no complete answer within 3s (--timeout)" in err, err


def test_trickled_headers_hit_the_deadline(src: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    with HostileRegistry(src) as registry:
        registry.tricks["manifest"] = Answer(
            200, {"Content-Type": mt.OCI_MANIFEST, **{f"X-Pad-{i}": "x" * 50 for i in range(50)}},
            b"{}", trickle_headers=0.02)
        code, err = _pull(registry, tmp_path, cli, *FAST)
    _one_line(code, err, (1,))
    assert registry.host in err and "no complete answer within 3s" in err, err


def test_redirect_with_an_endless_body_is_followed_without_reading_it(
        src: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    with HostileRegistry(src) as registry:
        registry.tricks["blob"] = lambda path: None if "hop=1" in path else Answer(
            307, {"Location": path + "?hop=1"}, endless(b"x" * 65536))
        code, err = _pull(registry, tmp_path, cli, "--retries", "0", "--timeout", "5")
    assert code == 0, err
    assert all("hop=1" in p for _, p, _ in registry.requests_of("blob")[1::2])


# -- blob transfers ------------------------------------------------------------------------

def _blob_digests(src: Path) -> list[str]:
    return [f"sha256:{p.name}" for p in (src / "blobs" / "sha256").iterdir()]


def test_trickling_blob_download_is_aborted(src: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    with HostileRegistry(src) as registry:
        layer = max(_blob_digests(src), key=lambda d: len(registry.blobs[d]))
        data = registry.blobs[layer]
        registry.tricks["blob"] = lambda path: Answer(
            200, {"Content-Length": str(len(data))}, trickled(data, 0.05)
        ) if path.endswith(layer) else None
        code, err = _pull(registry, tmp_path, cli, "--timeout", "1")
    _one_line(code, err, (1,))
    assert registry.host in err and "stalled" in err and "--timeout" in err, err
    # the stall was resumed (bounded), then given up
    assert 2 <= len([p for _, p, _ in registry.requests_of("blob") if p.endswith(layer)]) <= 4


def test_slow_but_real_download_completes(src: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """8 KiB/s is real progress: the blob takes longer than --timeout and still arrives."""
    layout_with_image(tmp_path / "big", (24 << 10,))
    with HostileRegistry(tmp_path / "big") as registry:
        layer = max(_blob_digests(tmp_path / "big"), key=lambda d: len(registry.blobs[d]))
        data = registry.blobs[layer]
        registry.tricks["blob"] = lambda path: Answer(
            200, {"Content-Length": str(len(data))}, trickled(data, 0.25, 2048)
        ) if path.endswith(layer) else None
        code, err = _pull(registry, tmp_path, cli, "--timeout", "1")
    assert code == 0, err
    assert len([p for _, p, _ in registry.requests_of("blob") if p.endswith(layer)]) == 1


def test_stalled_blob_upload_is_aborted(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    layout_with_image(tmp_path / "big", (8 << 20,))
    with HostileRegistry(recv_buffer=4096) as registry:
        registry.tricks["upload-put"] = (1, 0.05)
        docker_config(Path(os.environ["DOCKER_CONFIG"]), registry.host)
        code, _, err = cli("copy", f"oci:{tmp_path / 'big'}:t", f"{registry.host}/app:1",
                           "--timeout", "1", "--jobs", "1", "--retries", "1")
    _one_line(code, err, (1,))
    assert registry.host in err, err
    assert "stalled" in err or "no complete answer within 1s" in err, err
    assert "1" not in registry.manifests
    # retried within --retries, never restarted on top of that
    assert len(registry.requests_of("upload-put")) <= 2


def test_slow_but_real_upload_completes(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """320 KiB/s is real progress: the upload takes longer than --timeout and completes."""
    layout_with_image(tmp_path / "big", (1 << 20,))
    with HostileRegistry(recv_buffer=4096) as registry:
        registry.tricks["upload-put"] = (32 << 10, 0.1)
        docker_config(Path(os.environ["DOCKER_CONFIG"]), registry.host)
        code, _, err = cli("copy", f"oci:{tmp_path / 'big'}:t", f"{registry.host}/app:1",
                           "--timeout", "1", "--jobs", "1")
    assert code == 0, err
    assert "1" in registry.manifests


def test_a_slow_consumer_is_not_a_stalled_server(tmp_path: Path) -> None:
    """Only time spent waiting on the network counts: pausing between reads for longer
    than --timeout (a slow disk, a decompressor) does not end the download."""
    import time

    layout_with_image(tmp_path / "big", (4 << 20,))
    with HostileRegistry(tmp_path / "big") as registry:
        layer = max(_blob_digests(tmp_path / "big"), key=lambda d: len(registry.blobs[d]))
        # --timeout 2: also the API check's limit (its HTTPS attempt at this plain-HTTP
        # server must be answered in time on a loaded machine); the pause is longer still
        client = RegistryClient(registry.host, RegistryOptions(retries=0, timeout=2.0),
                                Credentials("mallory-victim", PASSWORD))
        with client.get_blob("app", layer, len(registry.blobs[layer])) as blob:
            first = blob.read(1 << 16)
            time.sleep(3.0)
            rest = blob.read()
        assert first + rest == registry.blobs[layer]
    assert len(registry.requests_of("blob")) == 1
