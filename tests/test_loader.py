"""One index loader and one platform selection for layouts, archives and registries.

The same document tree is read from an OCI layout, an oci-archive of it and a
real registry; the same rules must hold for each: nesting depth, schema 1
refused, and which image a platform picks.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from imagegen import layout_with_image
from progresslines import messages

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _layout_put(root: Path) -> Callable[[bytes], str]:
    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (root / "blobs" / "sha256" / digest).write_bytes(data)
        return f"sha256:{digest}"

    return put


def _registry_put(host: str, repo: str) -> Callable[[bytes], str]:
    def put(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        media_type = json.loads(data).get("mediaType", MANIFEST)
        resp = requests.put(f"http://{host}/v2/{repo}/manifests/{digest}", data=data,
                            headers={"Content-Type": media_type}, timeout=10)
        assert resp.status_code == 201, resp.text
        return digest

    return put


def _chain(child: dict[str, Any], put: Callable[[bytes], str], levels: int) -> dict[str, Any]:
    """``levels`` indexes, each naming the one below; the lowest names ``child``."""
    level = dict(child)
    for _ in range(levels):
        data = json.dumps({"schemaVersion": 2, "mediaType": INDEX,
                           "manifests": [level]}).encode()
        level = {"mediaType": INDEX, "digest": put(data), "size": len(data)}
    return level


def _tag_in_layout(root: Path, tag: str, desc: dict[str, Any]) -> None:
    index = json.loads((root / "index.json").read_text())
    index["manifests"].append({**desc, "annotations": {
        "org.opencontainers.image.ref.name": tag}})
    (root / "index.json").write_text(json.dumps(index))


def _archive(root: Path, target: Path) -> Path:
    with tarfile.open(target, "w") as tar:
        for path in sorted(root.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
    return target


def _sources(tmp: Path, registry: Any, cli: Any,
             transform: Callable[[dict[str, Any], Callable[[bytes], str]], dict[str, Any]]
             ) -> list[str]:
    """The tree ``transform`` builds over one image, as a layout, an archive and a repo."""
    src, image = layout_with_image(tmp / "lay", (100,))
    lay = tmp / "lay"
    child = {"mediaType": MANIFEST, "digest": str(image.digest), "size": image.size,
             "platform": {"os": "linux", "architecture": "amd64"}}
    _tag_in_layout(lay, "tree", transform(child, _layout_put(lay)))
    archive = _archive(lay, tmp / "lay.tar")
    repo = f"loader/tree-{uuid.uuid4().hex[:6]}"
    code, _, err = cli("copy", src, f"{registry.host}/{repo}:image")
    assert code == 0, err
    top = transform(child, _registry_put(registry.host, repo))
    data = requests.get(f"http://{registry.host}/v2/{repo}/manifests/{top['digest']}",
                        headers={"Accept": top["mediaType"]}, timeout=10).content
    resp = requests.put(f"http://{registry.host}/v2/{repo}/manifests/tree", data=data,
                        headers={"Content-Type": top["mediaType"]}, timeout=10)
    assert resp.status_code == 201, resp.text
    return [f"oci:{lay}:tree", f"oci-archive:{archive}:tree", f"{registry.host}/{repo}:tree"]


@pytest.mark.parametrize("platform", ["all", "linux/amd64"])
def test_nesting_deeper_than_eight_is_refused_by_every_source(
        platform: str, tmp_path: Path, cli, registry: Any) -> None:  # type: ignore[no-untyped-def]
    sources = _sources(tmp_path, registry, cli, lambda child, put: _chain(child, put, 9))
    for source in sources:
        code, _, err = cli("copy", source, f"oci:{tmp_path}/out:t", "--platform", platform)
        assert code == 1, (source, err)
        assert "index nesting deeper than 8" in err, (source, err)
        assert len(messages(err)) == 1
    assert not (tmp_path / "out" / "index.json").exists()


def test_nesting_of_eight_reads_from_every_source(tmp_path: Path, cli,
                                                  registry: Any) -> None:  # type: ignore[no-untyped-def]
    sources = _sources(tmp_path, registry, cli, lambda child, put: _chain(child, put, 8))
    digests = set()
    for i, source in enumerate(sources):
        code, out, err = cli("copy", source, f"oci:{tmp_path}/out{i}:t", "--platform", "all",
                             "--json")
        assert code == 0, (source, err)
        digests.add(json.loads(out)["digest"])
        code, out, err = cli("copy", source, f"oci:{tmp_path}/one{i}:t", "--platform",
                             "linux/amd64", "--json")
        assert code == 0, (source, err)
        digests.add(json.loads(out)["digest"])
    assert len(digests) == 2  # the whole tree, and the one image: the same from each source


def test_an_entry_without_a_platform_is_chosen_by_its_config_everywhere(
        tmp_path: Path, cli, registry: Any) -> None:  # type: ignore[no-untyped-def]
    """The one selection rule: no platform on the descriptor means the config's counts."""

    def no_platform(child: dict[str, Any], put: Callable[[bytes], str]) -> dict[str, Any]:
        bare = {k: v for k, v in child.items() if k != "platform"}
        data = json.dumps({"schemaVersion": 2, "mediaType": INDEX,
                           "manifests": [bare]}).encode()
        return {"mediaType": INDEX, "digest": put(data), "size": len(data)}

    sources = _sources(tmp_path, registry, cli, no_platform)
    for i, source in enumerate(sources):
        code, out, err = cli("copy", source, f"oci:{tmp_path}/out{i}:t", "--platform",
                             "linux/amd64", "--json")
        assert code == 0, (source, err)
        assert json.loads(out)["mediaType"] == MANIFEST
        code, _, err = cli("copy", source, f"oci:{tmp_path}/arm{i}:t", "--platform",
                           "linux/arm64")
        assert code == 2 and "no image for platform linux/arm64" in err, (source, err)


def test_schema1_is_refused_in_a_layout_as_in_a_registry(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    lay = tmp_path / "lay"
    layout_with_image(lay, (100,))
    data = json.dumps({"schemaVersion": 1, "name": "old/image", "fsLayers": []}).encode()
    digest = _layout_put(lay)(data)
    _tag_in_layout(lay, "old", {"mediaType": MANIFEST, "digest": digest, "size": len(data)})
    code, _, err = cli("copy", f"oci:{lay}:old", f"oci:{tmp_path}/out:t")
    assert code == 1
    assert "schema 1" in err
