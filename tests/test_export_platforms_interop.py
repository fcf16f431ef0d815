"""A two-platform export read by tools nobody here wrote.

The app ships a root filesystem per architecture (``src = "rootfs/{arch}"``):
for the host's, Debian's static busybox (base_fixtures.py), so that image runs;
for the other, a plain file tree (it is never run here).  Its code layer has no
placeholder and is shared by both images.

* pushed to the real registry: ``skopeo inspect --raw`` gives the index (its
  bytes hash to the digest ociforge printed), ``skopeo inspect --override-arch
  arm64 --override-variant v8`` picks the arm64 image; every blob is uploaded
  once and the children are PUT before the index;
* a real Docker Engine pulls the tag, picks the host's image and runs it;
* umoci unpacks the host's image (narrowed with ``ociforge copy --platform``)
  and runc runs it;
* the same app exported again, with the cache or without, gives the same index.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from base_fixtures import ociforge
from docker_fixtures import DockerEngine
from tools import require_root, require_tool, run, run_bundle

from ociforge.model.platform import Platform

HOST = Platform.host()
OTHER = Platform.parse("linux/amd64" if HOST.architecture == "arm64" else "linux/arm64")


@pytest.fixture
def app(busybox_rootfs: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    host_root = folder / "rootfs" / HOST.architecture
    shutil.copytree(busybox_rootfs, host_root, symlinks=True)
    other_root = folder / "rootfs" / OTHER.architecture
    (other_root / "bin").mkdir(parents=True)
    (other_root / "bin" / "README").write_text("an image for another machine\n")
    for root, arch in ((host_root, HOST.architecture), (other_root, OTHER.architecture)):
        (root / "etc").mkdir(exist_ok=True)
        (root / "etc" / "arch").write_text(arch + "\n")
    (folder / "code").mkdir()
    script = folder / "code" / "hello.sh"
    script.write_text('#!/bin/sh\necho "hello from $(cat /etc/arch)"\n')
    script.chmod(0o755)
    (folder / "ociforge.toml").write_text(
        f'[app]\nname = "acme/hello-multi"\nplatform = ["{HOST}", "{OTHER}"]\n'
        '[config]\nentrypoint = ["/bin/sh", "/app/hello.sh"]\n'
        '[config.env]\nPATH = "/bin"\n'
        '[[layers]]\nsrc = "rootfs/{arch}"\ndest = "/"\n'
        '[[layers]]\nsrc = "code"\ndest = "/app"\n')
    return folder


def export(app: Path, *args: object) -> dict[str, Any]:
    result = json.loads(ociforge("export", app, "--compression", "gzip", "--json",
                                 *args).stdout)
    assert result["mediaType"] == "application/vnd.oci.image.index.v1+json", result
    return result


def child(result: dict[str, Any], platform: Platform) -> str:
    return next(entry["digest"] for entry in result["platforms"]
                if Platform.parse(entry["platform"]).matches(platform))


def skopeo(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([require_tool("skopeo"), "inspect", "--tls-verify=false", *args],
                          capture_output=True, check=True, timeout=120)


def test_registry_holds_the_index_as_skopeo_reads_it(app: Path, registry: Any) -> None:
    ref = f"{registry.host}/platforms/hello:1"
    mark = registry.log_mark()
    result = export(app, "-o", ref, "--no-cache")
    index_digest = result["digest"]
    requests = registry.requests_since(mark)

    # every blob uploaded once (the shared code layer too); children PUT before the index
    uploaded = [m.group(1) for method, path, _ in requests if method == "PUT"
                for m in [re.search(r"[?&]digest=(sha256(?::|%3A)[0-9a-f]{64})", path)] if m]
    assert len(uploaded) == len(set(uploaded)) == 5, requests   # 3 layers, 2 configs
    manifests = [path.rsplit("/", 1)[-1] for method, path, _ in requests
                 if method == "PUT" and "/manifests/" in path]
    assert manifests == [*(entry["digest"] for entry in result["platforms"]), "1"], manifests

    raw = skopeo("--raw", f"docker://{ref}").stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == index_digest
    listed = json.loads(raw)["manifests"]
    assert [(m["platform"]["architecture"], m["digest"]) for m in listed] == [
        (HOST.architecture, child(result, HOST)), (OTHER.architecture, child(result, OTHER))]

    arm = json.loads(skopeo("--override-arch", "arm64", "--override-variant", "v8",
                            f"docker://{ref}").stdout)
    assert arm["Architecture"] == "arm64" and arm["Os"] == "linux"
    arm_manifest = json.loads(skopeo("--raw", f"docker://{ref.rsplit(':', 1)[0]}@"
                                              f"{child(result, Platform.parse('linux/arm64'))}"
                                     ).stdout)
    assert arm["Layers"] == [layer["digest"] for layer in arm_manifest["layers"]]

    # reproducible: again through the cache, again without it, to a layout
    assert export(app, "-o", f"{registry.host}/platforms/hello:2")["digest"] == index_digest
    assert export(app, "-o", f"oci:{app.parent / 'layout'}", "--no-cache")["digest"] == \
        index_digest


def test_docker_pulls_the_index_and_runs_the_hosts_image(app: Path, registry: Any,
                                                         docker_engine: DockerEngine) -> None:
    ref = f"{registry.host}/platforms/hello:{uuid.uuid4().hex[:8]}"
    result = export(app, "-o", ref)
    try:
        pulled = docker_engine.docker("pull", ref).stdout
        assert f"Digest: {result['digest']}" in pulled, pulled
        arch = docker_engine.docker("image", "inspect", "--format", "{{.Architecture}}",
                                    ref).stdout.strip()
        assert arch == HOST.architecture
        image_id = docker_engine.docker("image", "inspect", "--format", "{{.Id}}",
                                        ref).stdout.strip()
        host_manifest = json.loads(ociforge("inspect", f"{ref.rsplit(':', 1)[0]}@"
                                            f"{child(result, HOST)}", "--manifest").stdout)
        assert image_id == host_manifest["config"]["digest"]   # the host's image, not the other
        assert docker_engine.run_image(ref).strip() == f"hello from {HOST.architecture}"
    finally:
        docker_engine.remove(ref)


def test_umoci_unpacks_the_hosts_image_and_runc_runs_it(app: Path, tmp_path: Path) -> None:
    require_root("umoci unpack and runc run")
    umoci, runc = require_tool("umoci"), require_tool("runc")
    layout = tmp_path / "layout"
    result = export(app, "-o", f"oci:{layout}:multi")
    # umoci unpacks image manifests: name the host's child with a tag of its own
    narrowed = json.loads(ociforge("copy", f"oci:{layout}:multi", f"oci:{layout}:host",
                                   "--platform", str(HOST), "--json").stdout)
    assert narrowed["digest"] == child(result, HOST)
    bundle = tmp_path / "bundle"
    run([umoci, "unpack", "--image", f"{layout}:host", str(bundle)], timeout=120)
    assert (bundle / "rootfs" / "etc" / "arch").read_text() == f"{HOST.architecture}\n"
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["/bin/sh", "/app/hello.sh"]
    proc = run_bundle(runc, bundle, "ociforge-platforms")
    assert proc.stdout.strip() == f"hello from {HOST.architecture}"
