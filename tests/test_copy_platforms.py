"""Copy and append keep what they are given: an index stays whole unless --platform
narrows it, to one image or to a new index of exactly the children named (their
digests unchanged); append with a list adds its layers to exactly those platforms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from image_factory import make_image

from ociforge.model.image import Image
from ociforge.model.index import Index, build_index
from ociforge.model.mutate import scratch
from ociforge.model.platform import Platform
from ociforge.options import Options
from ociforge.stores.layout import Layout
from ociforge.stores.locations import parse_location

PLATFORMS = ("linux/amd64", "linux/arm64", "linux/s390x")
ATTESTATION = {"vnd.docker.reference.type": "attestation-manifest"}


def three(tmp: Path) -> Index:
    """An index of three platforms, each with an attestation manifest (as buildx writes)."""
    images = [make_image(tmp / "blobs", f"img-{i}", 1, platform=p)
              for i, p in enumerate(PLATFORMS)]
    attestations = [scratch(Platform("unknown", "unknown")) for _ in images]
    return build_index([(image, None) for image in images] + [
        (att, {**ATTESTATION, "vnd.docker.reference.digest": str(image.digest)})
        for att, image in zip(attestations, images, strict=True)])


def test_copy_keeps_a_whole_index_by_default(cli: Any, tmp_path: Path) -> None:
    index = three(tmp_path)
    Layout(tmp_path / "src").put(index, "m")
    code, stdout, stderr = cli("copy", f"oci:{tmp_path}/src:m", f"oci:{tmp_path}/dst:m",
                               "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["digest"] == str(index.digest)
    copied = Layout(tmp_path / "dst").read("m")
    assert isinstance(copied, Index) and copied.index_bytes == index.index_bytes
    assert cli("verify", f"oci:{tmp_path}/dst:m")[0] == 0


def test_copy_with_a_list_writes_an_index_of_exactly_those(cli: Any, tmp_path: Path) -> None:
    index = three(tmp_path)
    Layout(tmp_path / "src").put(index, "m")
    code, stdout, stderr = cli("copy", f"oci:{tmp_path}/src:m", f"oci:{tmp_path}/two:m",
                               "--platform", "linux/s390x,linux/amd64", "--json")
    assert code == 0, stderr
    two = Layout(tmp_path / "two").read("m")
    assert isinstance(two, Index) and json.loads(stdout)["digest"] == str(two.digest)
    assert two.digest != index.digest
    entries = index.manifest["manifests"]
    assert isinstance(entries, list)
    # the source's order and its entries as they are (attestations of the kept ones too)
    assert two.manifest["manifests"] == [entries[0], entries[2], entries[3], entries[5]]
    assert {k: v for k, v in two.manifest.items() if k != "manifests"} == \
        {k: v for k, v in index.manifest.items() if k != "manifests"}
    assert cli("verify", f"oci:{tmp_path}/two:m")[0] == 0
    code, out, _ = cli("inspect", f"oci:{tmp_path}/two:m")
    assert json.loads(out)["platforms"] == ["linux/amd64", "linux/s390x"]
    # naming every platform keeps the index as it is
    code, stdout, _ = cli("copy", f"oci:{tmp_path}/src:m", f"oci:{tmp_path}/all:m",
                          "--platform", ",".join(PLATFORMS), "--json")
    assert code == 0 and json.loads(stdout)["digest"] == str(index.digest)
    # one platform: that image, its digest unchanged
    code, stdout, _ = cli("copy", f"oci:{tmp_path}/src:m", f"oci:{tmp_path}/one:m",
                          "--platform", "linux/arm64", "--json")
    assert code == 0 and json.loads(stdout)["digest"] == str(index.children[1][0].digest)
    # one it lacks: exit 2 naming what it has
    code, _, stderr = cli("copy", f"oci:{tmp_path}/src:m", f"oci:{tmp_path}/none",
                          "--platform", "linux/amd64,linux/riscv64")
    assert code == 2 and "available: linux/amd64, linux/arm64, linux/s390x" in stderr, stderr
    assert not (tmp_path / "none").exists()


def test_copy_of_an_index_from_a_registry_with_a_list(cli: Any, registry: Any,
                                                      tmp_path: Path) -> None:
    index = three(tmp_path)
    Layout(tmp_path / "src").put(index, "m")
    remote = f"{registry.host}/platforms/three:1"
    code, stdout, stderr = cli("copy", f"oci:{tmp_path}/src:m", remote, "--json")
    assert code == 0 and json.loads(stdout)["digest"] == str(index.digest), stderr
    code, stdout, stderr = cli("copy", remote, f"oci:{tmp_path}/back:m", "--platform",
                               "linux/arm64,linux/s390x", "--json")
    assert code == 0, stderr
    back = Layout(tmp_path / "back").read("m")
    assert isinstance(back, Index)
    assert [str(d.digest) for d, _ in back.children][:2] == [
        str(index.children[1][0].digest), str(index.children[2][0].digest)]
    assert cli("verify", f"oci:{tmp_path}/back:m")[0] == 0
    # verify of a registry index checks the whole index, as of a layout
    code, stdout, stderr = cli("verify", remote, "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["digest"] == str(index.digest)
    # the index, three images, and the attestation manifest (the three are one blob here)
    assert json.loads(stdout)["manifests"] == 5


def test_copy_of_an_index_into_a_docker_archive_names_the_alternatives(
        cli: Any, tmp_path: Path) -> None:
    Layout(tmp_path / "src").put(three(tmp_path), "m")
    code, _, stderr = cli("copy", f"oci:{tmp_path}/src:m", f"oci:{tmp_path}/ok",
                          f"{tmp_path}/x.tar")
    assert code == 2 and "--platform" in stderr and "oci-archive:" in stderr, stderr
    assert not (tmp_path / "x.tar").exists() and not (tmp_path / "ok").exists()


def test_append_with_a_list_adds_to_exactly_those_platforms(cli: Any, tmp_path: Path) -> None:
    index = three(tmp_path)
    Layout(tmp_path / "src").put(index, "m")
    (tmp_path / "add").mkdir()
    (tmp_path / "add" / "note").write_text("added\n")
    code, _, stderr = cli("append", f"oci:{tmp_path}/src:m", "--platform",
                          "linux/amd64,linux/s390x", "--layer", f"{tmp_path}/add:/add",
                          "-o", f"oci:{tmp_path}/out:m")
    assert code == 0, stderr
    out = Layout(tmp_path / "out").read("m")
    assert isinstance(out, Index)
    assert [str(d.platform) for d, _ in out.children] == ["linux/amd64", "linux/s390x"]
    for (_, new), position in zip(out.children, (0, 2), strict=True):
        old = index.children[position][1]
        assert isinstance(new, Image) and isinstance(old, Image)
        assert [layer.digest for layer in new.layers[:-1]] == [layer.digest
                                                               for layer in old.layers]
        assert new.manifest["annotations"]["org.opencontainers.image.base.digest"] == str(
            old.digest)
    amd, s390x = (child for _, child in out.children)
    assert isinstance(amd, Image) and isinstance(s390x, Image)
    assert amd.layers[-1].digest == s390x.layers[-1].digest   # built once


def test_append_on_scratch_with_a_list_builds_each_platform(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "add").mkdir()
    (tmp_path / "add" / "note").write_text("added\n")
    code, stdout, stderr = cli("append", "scratch", "--platform", "linux/arm64,linux/amd64",
                               "--layer", f"{tmp_path}/add:/add", "-o", f"oci:{tmp_path}/o",
                               "--json")
    assert code == 0, stderr
    out = parse_location(f"oci:{tmp_path}/o").read(Options(all_platforms=True))
    assert isinstance(out, Index) and json.loads(stdout)["digest"] == str(out.digest)
    assert [str(d.platform) for d, _ in out.children] == ["linux/arm64", "linux/amd64"]
    assert all(isinstance(c, Image) and c.config["architecture"] == str(d.platform).split("/")[1]
               for d, c in out.children)
    code, _, stderr = cli("append", "scratch", "--platform", "all", "-o", f"oci:{tmp_path}/n")
    assert code == 2 and "linux/amd64,linux/arm64" in stderr, stderr
