"""Re-push against the real registry: one manifest HEAD when the tag already has the digest.

Requests are counted from the registry's own access log ("response completed"
lines carry method, URI, status and the client's address:port).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry_fixtures import RegistryServer, make_image, make_layer
from tools import require_tool

from ociforge.model.image import Image
from ociforge.model.index import build_index
from ociforge.model.mutate import append_layers
from ociforge.model.platform import Platform
from ociforge.model.reference import Reference
from ociforge.options import Options, RegistryOptions
from ociforge.remote.client import RegistryClient
from ociforge.remote.push import push

AMD64 = Options(platform=Platform.parse("linux/amd64"))
_LINE = re.compile(r'msg="response completed(?: with error)?".*?http\.request\.method=(\w+) '
                   r'http\.request\.remoteaddr="([^"]+)" http\.request\.uri=("[^"]+"|\S+)')


@dataclass(frozen=True)
class Hit:
    method: str
    uri: str
    peer: str


def _hits(registry: RegistryServer, mark: int, repo: str | None = None) -> list[Hit]:
    """The requests the registry answered since ``mark`` (for ``repo`` and /v2/ when given)."""
    hits = [Hit(m, uri.strip('"'), peer)
            for m, peer, uri in _LINE.findall(registry.quiet_log_since(mark))]
    if repo is None:
        return hits
    return [h for h in hits if h.uri.startswith(f"/v2/{repo}/")]


def _api(hits: list[Hit]) -> list[tuple[str, str]]:
    """(method, URI) of every request but the API check (a new client's GET /v2/)."""
    return [(h.method, h.uri) for h in hits if h.uri != "/v2/"]


def _client(registry: RegistryServer, jobs: int = 4) -> RegistryClient:
    return RegistryClient(registry.host, RegistryOptions(jobs=jobs))


def _skopeo_digest(ref: str) -> str:
    skopeo = require_tool("skopeo")
    proc = subprocess.run([skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return "sha256:" + hashlib.sha256(proc.stdout).hexdigest()


def test_repush_of_same_digest_is_one_manifest_head(registry: RegistryServer, cli: Any,
                                                    tmp_path: Path) -> None:
    """CLI re-push of a 10-layer image without the cache: GET /v2/, the push-access check
    (an upload started and deleted again) and one HEAD of the tag; no blob is looked at.
    (With the cache it is the one HEAD alone: tests/test_cache_registry.py.)"""
    for i in range(10):
        (tmp_path / f"t{i}").mkdir()
        (tmp_path / f"t{i}" / "f").write_bytes(bytes([i]) * (1000 + i))
    layers = [a for i in range(10) for a in ("--layer", f"{tmp_path / f't{i}'}:/d{i}")]
    code, out, err = cli("append", "scratch", *layers, "-o", f"oci:{tmp_path / 'src'}:t")
    assert code == 0, err
    digest = out.split()[0]
    dest = f"{registry.host}/repush/ten:1"
    code, out, err = cli("copy", f"oci:{tmp_path / 'src'}:t", dest)
    assert code == 0, err
    mark = registry.log_mark()
    code, out, err = cli("copy", f"oci:{tmp_path / 'src'}:t", dest, "--no-cache")
    assert code == 0, err
    assert out.split()[0] == digest
    api = _api(_hits(registry, mark))
    assert [(m, u.split("?")[0].rsplit("/", 1)[0]) for m, u in api[:2]] == [
        ("POST", "/v2/repush/ten/blobs/uploads"), ("DELETE", "/v2/repush/ten/blobs/uploads")]
    assert api[2:] == [("HEAD", "/v2/repush/ten/manifests/1")]
    assert _skopeo_digest(dest) == digest


def test_repush_result_reports_every_blob_present(registry: RegistryServer, tmp_path: Path) -> None:
    image = make_image(tmp_path / "blobs", tuple(2000 + i for i in range(10)))
    ref = Reference.parse(f"{registry.host}/repush/api:1")
    first = push(_client(registry), ref, image, AMD64)
    assert not first.unchanged and first.count("uploaded") == 11
    mark = registry.log_mark()
    again = push(_client(registry, jobs=8), ref, image, AMD64)
    assert again.unchanged and again.put is None
    assert again.digest == image.digest
    assert again.count("exists") == 11 and again.count("uploaded") == 0
    assert _api(_hits(registry, mark)) == [("HEAD", "/v2/repush/api/manifests/1")]


def test_tag_pointing_elsewhere_gets_the_full_push(registry: RegistryServer,
                                                   tmp_path: Path) -> None:
    """Same tag, another digest: every blob checked, new ones uploaded, the manifest PUT."""
    old = make_image(tmp_path / "blobs", (3000, 3100))
    ref = Reference.parse(f"{registry.host}/repush/moved:1")
    push(_client(registry), ref, old, AMD64)
    new = append_layers(old, [make_layer(tmp_path / "blobs", 3200, "new.bin")], epoch=0)
    mark = registry.log_mark()
    result = push(_client(registry), ref, new, AMD64)
    assert not result.unchanged and result.put is not None
    assert result.count("exists") == 2 and result.count("uploaded") == 2   # new layer + config
    hits = _hits(registry, mark, "repush/moved")
    blob_heads = [h for h in hits if h.method == "HEAD" and "/blobs/" in h.uri]
    assert len(blob_heads) == 4
    assert [h.uri for h in hits if h.method == "PUT" and "/manifests/" in h.uri] == [
        "/v2/repush/moved/manifests/1"]
    assert _skopeo_digest(str(ref)) == str(new.digest)


def test_same_digest_under_a_new_tag_is_tagged(registry: RegistryServer, tmp_path: Path) -> None:
    """The blobs are all there but the tag is new: HEADs only for blobs, one manifest PUT."""
    image = make_image(tmp_path / "blobs", (4000,))
    push(_client(registry), Reference.parse(f"{registry.host}/repush/tags:a"), image, AMD64)
    mark = registry.log_mark()
    result = push(_client(registry), Reference.parse(f"{registry.host}/repush/tags:b"), image,
                  AMD64)
    assert not result.unchanged and result.count("exists") == 2
    hits = _hits(registry, mark, "repush/tags")
    assert not [h for h in hits if h.method in ("POST", "PATCH") or
                (h.method == "PUT" and "/blobs/" in h.uri)]
    assert [h.uri for h in hits if h.method == "PUT"] == ["/v2/repush/tags/manifests/b"]
    assert _skopeo_digest(f"{registry.host}/repush/tags:b") == str(image.digest)


def test_parallel_heads_share_pooled_connections(registry: RegistryServer, tmp_path: Path) -> None:
    """Eleven blob HEADs with --jobs 4 go over at most jobs + 1 connections, and a second
    push through the same client reuses them.

    How many connections one push opens depends on how many workers happened to be
    in a request at the same moment, so the second push may need one the first did
    not; what the pool guarantees is the bound (idle connections are taken before a
    new one is opened) and reuse, not the exact set.
    """
    jobs = 4
    image = make_image(tmp_path / "blobs", tuple(1500 + i for i in range(10)))
    push(_client(registry), Reference.parse(f"{registry.host}/repush/pool:a"), image, AMD64)
    mark = registry.log_mark()
    client = _client(registry, jobs=jobs)
    push(client, Reference.parse(f"{registry.host}/repush/pool:b"), image, AMD64)
    hits = _hits(registry, mark, "repush/pool")
    heads = [h for h in hits if h.method == "HEAD" and "/blobs/" in h.uri]
    assert len(heads) == 11
    first = {h.peer for h in hits}
    assert len(first) <= jobs + 1, first   # the workers, and the main thread's requests
    mark = registry.log_mark()
    push(client, Reference.parse(f"{registry.host}/repush/pool:c"), image, AMD64)
    second = {h.peer for h in _hits(registry, mark, "repush/pool")}
    assert second & first, (first, second)             # pooled connections are reused
    assert len(first | second) <= jobs + 1, (first, second)


def test_index_repush_and_changed_child(registry: RegistryServer, tmp_path: Path) -> None:
    amd = make_image(tmp_path / "blobs", (1000,), platform="linux/amd64")
    arm = make_image(tmp_path / "blobs", (1100,), platform="linux/arm64")
    index = build_index([(amd, None), (arm, None)])
    ref = Reference.parse(f"{registry.host}/repush/multi:1")
    push(_client(registry), ref, index, AMD64)
    assert _skopeo_digest(str(ref)) == str(index.digest)

    # the same index again: one HEAD of the tag, nothing else
    mark = registry.log_mark()
    again = push(_client(registry), ref, index, AMD64)
    assert again.unchanged and again.count("exists") == 4
    assert _api(_hits(registry, mark)) == [("HEAD", "/v2/repush/multi/manifests/1")]

    # one child changed: the unchanged child is neither re-PUT nor are its blobs checked
    arm2 = make_image(tmp_path / "blobs", (1200,), platform="linux/arm64")
    index2 = build_index([(amd, None), (arm2, None)])
    mark = registry.log_mark()
    result = push(_client(registry), ref, index2, AMD64)
    assert not result.unchanged and result.digest == index2.digest
    hits = _hits(registry, mark, "repush/multi")
    uris = [h.uri for h in hits]
    for blob in [amd.config_layer(), *amd.layers]:
        assert f"/v2/repush/multi/blobs/{blob.digest}" not in uris
    puts = [h.uri for h in hits if h.method == "PUT" and "/manifests/" in h.uri]
    assert puts == [f"/v2/repush/multi/manifests/{arm2.digest}", "/v2/repush/multi/manifests/1"]
    assert result.blobs[str(amd.layers[0].digest)] == "exists"
    assert result.blobs[str(arm2.layers[0].digest)] == "uploaded"
    assert _skopeo_digest(str(ref)) == str(index2.digest)
    assert _skopeo_digest(f"{registry.host}/repush/multi@{arm2.digest}") == str(arm2.digest)
    assert isinstance(index2.children[0][1], Image)


def test_push_by_digest_when_present_is_one_head(registry: RegistryServer, tmp_path: Path) -> None:
    image = make_image(tmp_path / "blobs", (1300,))
    push(_client(registry), Reference.parse(f"{registry.host}/repush/bydigest:1"), image, AMD64)
    mark = registry.log_mark()
    ref = Reference.parse(f"{registry.host}/repush/bydigest@{image.digest}")
    result = push(_client(registry), ref, image, AMD64)
    assert result.unchanged
    assert _api(_hits(registry, mark)) == [
        ("HEAD", f"/v2/repush/bydigest/manifests/{image.digest}")]
