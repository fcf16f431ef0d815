"""Push and pull against the real registry (no auth), read back by skopeo."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from registry_fixtures import make_image, make_layer
from tools import require_module, require_tool, run

from ociforge.errors import InvalidPlatformError, RegistryError
from ociforge.model import mediatypes as mt
from ociforge.model.image import Image
from ociforge.model.index import Index, build_index
from ociforge.model.mutate import append_layers
from ociforge.model.platform import Platform
from ociforge.model.reference import Reference
from ociforge.options import Options, RegistryOptions
from ociforge.remote.client import RegistryClient
from ociforge.remote.pull import pull
from ociforge.remote.push import push

AMD64 = Options(platform=Platform.parse("linux/amd64"))


def _client(host: str, **kw: object) -> RegistryClient:
    return RegistryClient(host, RegistryOptions(**kw))  # type: ignore[arg-type]


def _ref(registry, name: str) -> Reference:  # type: ignore[no-untyped-def]
    return Reference.parse(f"{registry.host}/{name}")


def _skopeo_raw(ref: Reference) -> bytes:
    skopeo = require_tool("skopeo")
    proc = subprocess.run([skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


def test_push_then_skopeo_reads_same_digest(registry, tmp_path: Path) -> None:
    image = make_image(tmp_path / "blobs", (4096, 100_000))
    ref = _ref(registry, "push/basic:v1")
    client = _client(registry.host)
    result = push(client, ref, image, AMD64)
    assert result.digest == image.digest
    assert result.count("uploaded") == 3            # config + 2 layers
    raw = _skopeo_raw(ref)
    assert raw == image.manifest_bytes
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == str(image.digest)
    # skopeo copies it out to an OCI layout: every blob it wrote matches ours
    skopeo = require_tool("skopeo")
    run([skopeo, "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'out'}:x"])
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == str(image.digest)
    for layer in image.layers:
        blob = tmp_path / "out" / "blobs" / "sha256" / layer.digest.hex
        assert blob.stat().st_size == layer.size


def test_pull_back_verifies_and_remembers_source(registry, tmp_path: Path) -> None:
    image = make_image(tmp_path / "blobs", (3000,))
    ref = _ref(registry, "pull/back:1")
    client = _client(registry.host)
    push(client, ref, image, AMD64)
    back = pull(client, ref, AMD64)
    assert isinstance(back, Image)
    assert back.manifest_bytes == image.manifest_bytes
    assert back.config_bytes == image.config_bytes
    for ours, theirs in zip(image.layers, back.layers, strict=True):
        assert theirs.source == f"{registry.host}/pull/back"
        with theirs.open() as fh:
            data = fh.read()
        assert hashlib.sha256(data).hexdigest() == ours.digest.hex
    # pulled by digest too
    pinned = pull(client, ref.with_digest(image.digest), AMD64)
    assert pinned.digest == image.digest


def test_repush_skips_every_blob(registry, tmp_path: Path) -> None:
    """A re-push sends no blob and asks about each at most once (its speed is in bench/)."""
    image = make_image(tmp_path / "blobs", tuple(2000 + i for i in range(10)))
    ref = _ref(registry, "push/again:1")
    push(_client(registry.host), ref, image, AMD64)
    client = _client(registry.host, jobs=8)
    mark = registry.log_mark()
    result = push(client, ref, image, AMD64)
    assert result.count("exists") == 11
    assert result.count("uploaded") == 0
    answered = registry.requests_since(mark)
    assert not [r for r in answered if "/blobs/uploads/" in r[1]], answered
    heads = [path for method, path, _ in answered if method == "HEAD" and "/blobs/" in path]
    assert len(heads) == len(set(heads)) <= 11, answered


def test_cross_repository_mount_uploads_only_new_layers(registry, tmp_path: Path) -> None:
    base = make_image(tmp_path / "blobs", (5000, 6000))
    client = _client(registry.host)
    base_ref = _ref(registry, "mount/base:1")
    push(client, base_ref, base, AMD64)
    pulled = pull(client, base_ref, AMD64)
    assert isinstance(pulled, Image)
    app = append_layers(pulled, [make_layer(tmp_path / "blobs", 7000, "app.bin")], epoch=0)
    mark = registry.log_mark()
    result = push(client, _ref(registry, "mount/app:1"), app, AMD64)
    assert result.count("mounted") == 2
    assert result.count("uploaded") == 2            # new config and the new layer
    log = registry.log_since(mark)
    for layer in base.layers:
        assert f"mount={layer.digest}&from=mount/base" in log
        # a mounted blob is never uploaded: no PUT names its digest
        assert f"digest={layer.digest}" not in log
    assert skopeo_digest(_ref(registry, "mount/app:1")) == str(app.digest)


def skopeo_digest(ref: Reference) -> str:
    return "sha256:" + hashlib.sha256(_skopeo_raw(ref)).hexdigest()


def test_chunked_upload(registry, tmp_path: Path) -> None:
    image = make_image(tmp_path / "blobs", (300_000,))
    ref = _ref(registry, "push/chunked:1")
    client = _client(registry.host, chunk_size=64 * 1024)
    mark = registry.log_mark()
    push(client, ref, image, AMD64)
    patches = registry.log_since(mark).count('"PATCH /v2/push/chunked/blobs/uploads/')
    assert patches >= 300_000 // (64 * 1024)
    assert skopeo_digest(ref) == str(image.digest)
    back = pull(client, ref, AMD64)
    assert isinstance(back, Image)
    with back.layers[0].open() as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == image.layers[0].digest.hex


def _two_platform_index(tmp_path: Path) -> Index:
    amd = make_image(tmp_path / "blobs", (1000,), platform="linux/amd64")
    arm = make_image(tmp_path / "blobs", (1100,), platform="linux/arm64")
    return build_index([(amd, None), (arm, None)])


def test_index_push_and_pull_all_or_one(registry, tmp_path: Path) -> None:
    index = _two_platform_index(tmp_path)
    ref = _ref(registry, "multi/app:1")
    client = _client(registry.host)
    result = push(client, ref, index, AMD64)
    assert result.digest == index.digest
    assert _skopeo_raw(ref) == index.index_bytes
    whole = pull(client, ref, Options(all_platforms=True))
    assert isinstance(whole, Index)
    assert whole.index_bytes == index.index_bytes
    assert [c.digest for _, c in whole.children] == [c.digest for _, c in index.children]
    arm = pull(client, ref, Options(platform=Platform.parse("linux/arm64")))
    assert isinstance(arm, Image)
    assert arm.digest == index.children[1][1].digest
    with pytest.raises(InvalidPlatformError, match="linux/amd64, linux/arm64"):
        pull(client, ref, Options(platform=Platform.parse("linux/s390x")))


def test_registry_errors_carry_the_registry_code(registry, tmp_path: Path) -> None:
    client = _client(registry.host)
    with pytest.raises(RegistryError) as info:
        client.get_manifest("nothing/here", "latest")
    assert info.value.code in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN")
    assert registry.host in str(info.value)
    with pytest.raises(RegistryError) as bad:
        client.put_manifest("push/bad", "x", b'{"schemaVersion":2,"mediaType":"'
                            + mt.OCI_MANIFEST.encode() + b'","config":{"mediaType":"'
                            + mt.OCI_CONFIG.encode() + b'","digest":"sha256:' + b"0" * 64
                            + b'","size":2},"layers":[]}', mt.OCI_MANIFEST)
    assert bad.value.code == "MANIFEST_BLOB_UNKNOWN"
    assert client.head_manifest("nothing/here", "latest") is None
    assert client.list_tags("nothing/here") == []
    assert client.get_referrers("nothing/here", "sha256:" + "1" * 64) is None


def test_client_api_for_signing(registry, tmp_path: Path) -> None:
    client = _client(registry.host)
    image = make_image(tmp_path / "blobs", (1000,))
    push(client, _ref(registry, "api/sig:1"), image, AMD64)
    assert client.blob_exists("api/sig", image.layers[0].digest)
    digest = client.put_blob_bytes("api/sig", b"{}")
    assert client.blob_exists("api/sig", digest)
    with client.get_blob("api/sig", digest, 2) as fh:
        assert fh.read() == b"{}"
    head = client.head_manifest("api/sig", "1")
    assert head is not None and head.digest == image.digest
    data, media_type, got = client.get_manifest("api/sig", str(image.digest))
    assert (data, media_type, got) == (image.manifest_bytes, mt.OCI_MANIFEST, image.digest)
    put = client.put_manifest("api/sig", "other", image.manifest_bytes, image.media_type)
    assert put.digest == image.digest
    assert put.oci_subject is None                 # registry 2.8 has no referrers API
    assert sorted(client.list_tags("api/sig")) == ["1", "other"]


def test_cli_copy_roundtrip_through_registry(registry, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    image = make_image(tmp_path / "blobs", (2000,))
    ref = _ref(registry, "cli/app:1")
    push(_client(registry.host), ref, image, AMD64)
    code, out, err = cli("copy", str(ref), f"oci:{tmp_path / 'layout'}:t", "--json")
    assert code == 0, err
    assert str(image.digest) in out
    dest = f"docker://{registry.host}/cli/copy:2"
    code, _out, err = cli("copy", f"oci:{tmp_path / 'layout'}:t", dest, "-v")
    assert code == 0, err
    assert f"writing {dest.removeprefix('docker://')}" in err      # the progress lines
    assert f"pushed {image.layers[0].digest.short} (" in err
    assert skopeo_digest(Reference.parse(f"{registry.host}/cli/copy:2")) == str(image.digest)


def test_cli_errors(registry, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("copy", f"{registry.host}/no/such:tag", f"oci:{tmp_path / 'out'}")
    assert code == 1
    assert out == ""
    assert "MANIFEST_UNKNOWN" in err or "NAME_UNKNOWN" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()          # nothing half-written
    code, _out, err = cli("copy", "Bad/Ref:tag", f"oci:{tmp_path / 'x'}")
    assert code == 2
    assert "lowercase" in err


SMALL, BIG = 16 << 20, 144 << 20
FLAT = 48 << 20


def _peak_rss(tool: str, argv: list[str], tmp_path: Path) -> int:
    """Peak RSS in bytes of `ociforge ARGV`, measured by GNU time (a child forked from this
    process would report this process's high-water mark)."""
    out = tmp_path / "rss.txt"
    run([tool, "-f", "%M", "-o", str(out), sys.executable, "-m", "ociforge", *argv],
        timeout=300, env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    return int(out.read_text().split()[-1]) << 10


def test_big_blob_memory_stays_flat(registry, tmp_path: Path) -> None:
    """Layers stream through build, push and pull: a 144 MiB layer costs no more memory than
    a 16 MiB one, give or take 48 MiB (a client holding the blob would add all 128 MiB)."""
    tool = require_tool("time")
    peaks: dict[tuple[str, str], int] = {}
    for label, size in (("small", SMALL), ("big", BIG)):
        data = tmp_path / f"{label}.bin"
        with open(data, "wb") as fh:
            for offset in range(0, size, 1 << 20):
                fh.write(os.urandom(min(1 << 20, size - offset)))
        layout = f"oci:{tmp_path / label}:1"
        ref = f"{registry.host}/big/{label}-{os.getpid()}:1"
        back = f"oci:{tmp_path / (label + '-back')}:1"
        peaks[label, "build"] = _peak_rss(tool, ["append", "scratch", "--layer",
                                                 f"{data}:/data.bin", "-o", layout], tmp_path)
        data.unlink()
        peaks[label, "push"] = _peak_rss(tool, ["copy", layout, ref], tmp_path)
        peaks[label, "pull"] = _peak_rss(tool, ["copy", ref, back], tmp_path)
    blobs = list((tmp_path / "big-back" / "blobs" / "sha256").iterdir())
    assert max(blob.stat().st_size for blob in blobs) > BIG, "the big layer really went round"
    for step in ("build", "push", "pull"):
        grew = peaks["big", step] - peaks["small", step]
        assert grew < FLAT, f"{step}: peak RSS grew by {grew >> 20} MiB for a 128 MiB larger layer"


def test_oras_sdk_reads_what_we_pushed(registry, tmp_path: Path) -> None:
    provider = require_module("oras.provider")
    image = make_image(tmp_path / "blobs", (3000,))
    ref = _ref(registry, "oras/app:1")
    push(_client(registry.host), ref, image, AMD64)
    oras = provider.Registry(hostname=registry.host, insecure=True)
    manifest = oras.get_manifest(str(ref))
    assert manifest == json.loads(image.manifest_bytes)
    out = tmp_path / "layer"
    oras.download_blob(str(ref), str(image.layers[0].digest), str(out))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == image.layers[0].digest.hex


def test_schema1_is_refused_clearly() -> None:
    from ociforge.errors import ValidationError
    from ociforge.remote.pull import load_image

    with pytest.raises(ValidationError, match="schema 1"):
        load_image(None, Reference.parse("old/image:1"),  # type: ignore[arg-type]
                   b'{"schemaVersion":1,"name":"old/image","fsLayers":[]}')
