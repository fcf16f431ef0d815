"""Copy and append keep what they are given: an index stays whole unless --platform
narrows it, to one image or to a new index of exactly the children named (their
digests unchanged); append with --platform adds its layers to the platforms named and
keeps every other entry of an index exactly as the source lists it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, cast

from image_factory import make_image
from tools import require_tool, run

from ociforge.model.image import Image
from ociforge.model.index import Artifact, Index, build_index
from ociforge.model.jsonutil import canonical
from ociforge.model.mutate import scratch
from ociforge.model.platform import Platform
from ociforge.options import Options
from ociforge.stores.layout import Layout
from ociforge.stores.locations import parse_location

PLATFORMS = ("linux/amd64", "linux/arm64", "linux/s390x")
ATTESTATION = {"vnd.docker.reference.type": "attestation-manifest"}


NOTES = {"org.example.note": "kept as listed"}
INDEX_NOTES = {"org.opencontainers.image.ref.name": "three"}


def three(tmp: Path) -> Index:
    """An index of three platforms, each with an attestation manifest (as buildx writes);
    the s390x entry and the index itself carry annotations."""
    images = [make_image(tmp / "blobs", f"img-{i}", 1, platform=p)
              for i, p in enumerate(PLATFORMS)]
    attestations = [scratch(Platform("unknown", "unknown")) for _ in images]
    return build_index([(image, NOTES if p == "linux/s390x" else None)
                        for image, p in zip(images, PLATFORMS, strict=True)] + [
        (att, {**ATTESTATION, "vnd.docker.reference.digest": str(image.digest)})
        for att, image in zip(attestations, images, strict=True)], annotations=INDEX_NOTES)


def _copy(cli: Any, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """ociforge copy from the source index (oci:<tmp>/src:m) to ``args``."""
    return cast(tuple[int, str, str], cli("copy", f"oci:{tmp_path}/src:m", *args))


def test_copy_keeps_a_whole_index_by_default(cli: Any, tmp_path: Path) -> None:
    index = three(tmp_path)
    Layout(tmp_path / "src").put(index, "m")
    code, stdout, stderr = _copy(cli, tmp_path, f"oci:{tmp_path}/dst:m", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["digest"] == str(index.digest)
    copied = Layout(tmp_path / "dst").read("m")
    assert isinstance(copied, Index) and copied.index_bytes == index.index_bytes
    assert cli("verify", f"oci:{tmp_path}/dst:m")[0] == 0


def test_copy_with_a_list_writes_an_index_of_exactly_those(cli: Any, tmp_path: Path) -> None:
    index = three(tmp_path)
    Layout(tmp_path / "src").put(index, "m")
    code, stdout, stderr = _copy(cli, tmp_path, f"oci:{tmp_path}/two:m",
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
    code, stdout, _ = _copy(cli, tmp_path, f"oci:{tmp_path}/all:m",
                            "--platform", ",".join(PLATFORMS), "--json")
    assert code == 0 and json.loads(stdout)["digest"] == str(index.digest)
    # one platform: that image, its digest unchanged
    code, stdout, _ = _copy(cli, tmp_path, f"oci:{tmp_path}/one:m",
                            "--platform", "linux/arm64", "--json")
    assert code == 0 and json.loads(stdout)["digest"] == str(index.children[1][0].digest)
    # one it lacks: exit 2 naming what it has
    code, _, stderr = _copy(cli, tmp_path, f"oci:{tmp_path}/none",
                            "--platform", "linux/amd64,linux/riscv64")
    assert code == 2 and "available: linux/amd64, linux/arm64, linux/s390x" in stderr, stderr
    assert not (tmp_path / "none").exists()


def test_copy_of_an_index_from_a_registry_with_a_list(cli: Any, registry: Any,
                                                      tmp_path: Path) -> None:
    index = three(tmp_path)
    Layout(tmp_path / "src").put(index, "m")
    remote = f"{registry.host}/platforms/three:1"
    code, stdout, stderr = _copy(cli, tmp_path, remote, "--json")
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
    code, _, stderr = _copy(cli, tmp_path, f"oci:{tmp_path}/ok", f"{tmp_path}/x.tar")
    assert code == 2 and "--platform" in stderr and "oci-archive:" in stderr, stderr
    assert not (tmp_path / "x.tar").exists() and not (tmp_path / "ok").exists()


def _append(cli: Any, tmp_path: Path, platform: str, *dests: str,
            extra: tuple[str, ...] = ()) -> tuple[int, str, str]:
    (tmp_path / "add").mkdir(exist_ok=True)
    (tmp_path / "add" / "note").write_text("added\n")
    outputs = [arg for dest in dests for arg in ("-o", dest)]
    return cast(tuple[int, str, str], cli(
        "append", f"oci:{tmp_path}/src:m", "--platform", platform, "--layer",
        f"{tmp_path}/add:/add", *extra, *outputs, "--json"))


def _check_appended(new: Artifact, old: Artifact) -> None:
    """``new`` is ``old`` with one layer more, that records ``old`` as its base."""
    assert isinstance(new, Image) and isinstance(old, Image)
    assert [layer.digest for layer in new.layers[:-1]] == [layer.digest for layer in old.layers]
    assert len(new.layers) == len(old.layers) + 1
    assert new.manifest["annotations"]["org.opencontainers.image.base.digest"] == str(old.digest)


def _skopeo_copies_all(layout: Path, ref: str, index: Index) -> None:
    """skopeo reads the index, every child and every blob (checking each digest) and
    copies it unchanged: ``--raw`` gives our bytes, ``copy --all`` the same digest."""
    skopeo = require_tool("skopeo")
    raw = run([skopeo, "inspect", "--raw", f"oci:{layout}:{ref}"]).stdout
    assert raw.encode() == index.index_bytes
    copy = layout.parent / (layout.name + "-skopeo")
    run([skopeo, "--insecure-policy", "copy", "--all", "--preserve-digests",
         f"oci:{layout}:{ref}", f"oci:{copy}:{ref}"], timeout=120)
    again = Layout(copy).read(ref)
    assert again.digest == index.digest


def test_append_with_a_list_changes_those_platforms_and_keeps_the_rest(
        cli: Any, tmp_path: Path) -> None:
    index = three(tmp_path)
    Layout(tmp_path / "src").put(index, "m")
    code, stdout, stderr = _append(cli, tmp_path, "linux/amd64,linux/s390x",
                                   f"oci:{tmp_path}/out:m")
    assert code == 0, stderr
    out = Layout(tmp_path / "out").read("m")
    assert isinstance(out, Index) and json.loads(stdout)["digest"] == str(out.digest)
    entries = index.manifest["manifests"]
    got = out.manifest["manifests"]
    assert isinstance(entries, list) and isinstance(got, list)
    # arm64 and its attestation exactly as the source lists them, in the source's order;
    # the attestations of the two changed images are gone (they attest the old ones)
    assert len(got) == 4 and got[1] == entries[1] and got[3] == entries[4]
    for position, entry in ((0, got[0]), (2, got[2])):
        assert {k: v for k, v in entry.items() if k not in ("digest", "size")} == \
            {k: v for k, v in entries[position].items() if k not in ("digest", "size")}
        assert entry["digest"] != entries[position]["digest"]
    assert got[2]["annotations"] == NOTES
    assert {k: v for k, v in out.manifest.items() if k != "manifests"} == \
        {k: v for k, v in index.manifest.items() if k != "manifests"}
    assert out.manifest["annotations"] == INDEX_NOTES
    for position in (0, 2):
        _check_appended(out.children[position][1], index.children[position][1])
    assert out.children[1][1] is not None and out.children[1][0] == index.children[1][0]
    amd, s390x = out.children[0][1], out.children[2][1]
    assert isinstance(amd, Image) and isinstance(s390x, Image)
    assert amd.layers[-1].digest == s390x.layers[-1].digest   # built once
    assert cli("verify", f"oci:{tmp_path}/out:m")[0] == 0
    _skopeo_copies_all(tmp_path / "out", "m", out)


def test_append_with_one_platform_on_an_index_changes_that_platform_only(
        cli: Any, tmp_path: Path) -> None:
    index = three(tmp_path)
    Layout(tmp_path / "src").put(index, "m")
    code, stdout, stderr = _append(cli, tmp_path, "linux/arm64", f"oci:{tmp_path}/out:m")
    assert code == 0, stderr
    out = Layout(tmp_path / "out").read("m")
    assert isinstance(out, Index) and json.loads(stdout)["digest"] == str(out.digest)
    entries, got = index.manifest["manifests"], out.manifest["manifests"]
    assert isinstance(entries, list) and isinstance(got, list)
    assert got[0] == entries[0] and got[2:] == [entries[2], entries[3], entries[5]]
    assert got[1]["platform"] == entries[1]["platform"]
    _check_appended(out.children[1][1], index.children[1][1])
    _skopeo_copies_all(tmp_path / "out", "m", out)
    # a docker archive holds one image: that platform's, and so does every other
    # destination of the run (one result, one digest)
    code, stdout, stderr = _append(cli, tmp_path, "linux/arm64", f"{tmp_path}/one.tar",
                                   f"oci:{tmp_path}/also:m")
    assert code == 0, stderr
    one = Layout(tmp_path / "also").read("m")
    assert isinstance(one, Image) and one.digest == out.children[1][1].digest
    assert {r["digest"] for r in json.loads(stdout)["destinations"]} == {str(one.digest)}


def test_append_with_all_changes_every_platform_and_keeps_the_index_fields(
        cli: Any, tmp_path: Path) -> None:
    index = three(tmp_path)
    Layout(tmp_path / "src").put(index, "m")
    code, _, stderr = _append(cli, tmp_path, "all", f"oci:{tmp_path}/out:m")
    assert code == 0, stderr
    out = Layout(tmp_path / "out").read("m")
    assert isinstance(out, Index) and out.manifest["annotations"] == INDEX_NOTES
    assert [str(d.platform) for d, _ in out.children] == list(PLATFORMS)
    for position in range(3):
        _check_appended(out.children[position][1], index.children[position][1])
    assert out.children[2][0].annotations == NOTES


def test_append_format_on_part_of_an_index_is_refused(cli: Any, tmp_path: Path) -> None:
    Layout(tmp_path / "src").put(three(tmp_path), "m")
    code, _, stderr = _append(cli, tmp_path, "linux/amd64", f"oci:{tmp_path}/out:m",
                              extra=("--format", "docker"))
    assert code == 2, stderr
    assert "--format docker converts the images appended to" in stderr
    assert "(linux/arm64)" in stderr and "--platform all" in stderr
    assert not (tmp_path / "out").exists()


def test_append_with_a_list_to_a_registry_reads_back_with_skopeo(
        cli: Any, registry: Any, tmp_path: Path) -> None:
    index = three(tmp_path)
    Layout(tmp_path / "src").put(index, "m")
    remote = f"{registry.host}/platforms/appended:1"
    code, stdout, stderr = _append(cli, tmp_path, "linux/arm64,linux/s390x", remote)
    assert code == 0, stderr
    skopeo = require_tool("skopeo")
    raw = json.loads(run([skopeo, "inspect", "--tls-verify=false", "--raw",
                          f"docker://{remote}"]).stdout)
    assert json.loads(stdout)["digest"] == "sha256:" + hashlib.sha256(
        canonical(raw)).hexdigest()
    entries = index.manifest["manifests"]
    assert isinstance(entries, list)
    assert raw["manifests"][0] == entries[0] and raw["manifests"][3] == entries[3]
    assert raw["annotations"] == INDEX_NOTES and len(raw["manifests"]) == 4
    kept, changed = (json.loads(run([skopeo, "inspect", "--tls-verify=false",
                                     "--override-arch", arch, f"docker://{remote}"]).stdout)
                     for arch in ("amd64", "s390x"))
    amd, s390x = index.children[0][1], index.children[2][1]
    assert isinstance(amd, Image) and isinstance(s390x, Image)
    assert kept["Layers"] == [str(layer.digest) for layer in amd.layers]
    assert changed["Layers"][:1] == [str(layer.digest) for layer in s390x.layers]
    assert len(changed["Layers"]) == 2
    assert raw["manifests"][2]["digest"] != entries[2]["digest"]
    assert cli("verify", remote)[0] == 0


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


def windows_versions() -> tuple[Index, list[Image]]:
    """An index of two windows/amd64 images that differ only in os.version (as Windows
    base images list each Windows release) and one linux/amd64."""
    images = [scratch(Platform("windows", "amd64", os_version=version))
              for version in ("10.0.17763.1", "10.0.20348.2")]
    images.append(scratch(Platform("linux", "amd64")))
    return build_index([(image, None) for image in images]), images


def test_append_changes_every_image_of_a_platform_not_only_the_first(
        cli: Any, tmp_path: Path) -> None:
    index, images = windows_versions()
    assert len({image.digest for image in images}) == 3
    Layout(tmp_path / "src").put(index, "m")
    for wanted, changed in (("all", (0, 1, 2)), ("windows/amd64", (0, 1))):
        out_dir = tmp_path / f"out-{wanted.replace('/', '-')}"
        code, _, stderr = _append(cli, tmp_path, wanted, f"oci:{out_dir}:m")
        assert code == 0, stderr
        out = Layout(out_dir).read("m")
        assert isinstance(out, Index) and len(out.children) == 3
        for position in range(3):
            if position in changed:
                _check_appended(out.children[position][1], index.children[position][1])
            else:
                assert out.children[position][0] == index.children[position][0]
        assert [d.platform for d, _ in out.children] == \
            [d.platform for d, _ in index.children]


def test_copy_of_one_platform_keeps_every_image_of_it_not_only_the_first(
        cli: Any, tmp_path: Path) -> None:
    index, images = windows_versions()
    Layout(tmp_path / "src").put(index, "m")
    entries = index.manifest["manifests"]
    assert isinstance(entries, list)
    code, stdout, stderr = _copy(cli, tmp_path, f"oci:{tmp_path}/win:m",
                                 "--platform", "windows/amd64", "--json")
    assert code == 0, stderr
    win = Layout(tmp_path / "win").read("m")
    assert isinstance(win, Index) and json.loads(stdout)["digest"] == str(win.digest)
    # both releases, each entry (os.version included) as the source lists it
    assert win.manifest["manifests"] == entries[:2]
    assert [child.digest for _, child in win.children] == [i.digest for i in images[:2]]
    assert {k: v for k, v in win.manifest.items() if k != "manifests"} == \
        {k: v for k, v in index.manifest.items() if k != "manifests"}
    _skopeo_copies_all(tmp_path / "win", "m", win)
    assert cli("verify", f"oci:{tmp_path}/win:m")[0] == 0
    # exactly one image for the platform: that image, its digest unchanged
    code, stdout, stderr = _copy(cli, tmp_path, f"oci:{tmp_path}/lin:m",
                                 "--platform", "linux/amd64", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["digest"] == str(images[2].digest)
    assert Layout(tmp_path / "lin").read("m").digest == images[2].digest
    # a list: every image of each platform named (here all of them: the index itself)
    code, stdout, stderr = _copy(cli, tmp_path, f"oci:{tmp_path}/both:m",
                                 "--platform", "linux/amd64,windows/amd64", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["digest"] == str(index.digest)
    assert Layout(tmp_path / "both").read("m").digest == index.digest


def _with_features(image: Image, features: tuple[str, ...]) -> Image:
    """``image`` with ``os.features`` in its config (scratch records none)."""
    if not features:
        return image
    config = canonical({**image.config, "os.features": list(features)})
    manifest = dict(image.manifest)
    manifest["config"] = {**image.manifest["config"], "size": len(config),  # type: ignore[dict-item]
                          "digest": "sha256:" + hashlib.sha256(config).hexdigest()}
    return Image(canonical(manifest), config, image.layers, None)


def test_copy_of_one_platform_keeps_images_differing_only_in_os_features(
        cli: Any, tmp_path: Path) -> None:
    images = [_with_features(scratch(Platform("linux", "amd64")), features)
              for features in ((), ("org.example.gpu",))]
    images.append(scratch(Platform("linux", "arm64")))
    assert images[1].platform is not None and images[1].platform.os_features
    index = build_index([(image, None) for image in images])
    Layout(tmp_path / "src").put(index, "m")
    code, stdout, stderr = _copy(cli, tmp_path, f"oci:{tmp_path}/amd:m",
                                 "--platform", "linux/amd64", "--json")
    assert code == 0, stderr
    amd = Layout(tmp_path / "amd").read("m")
    assert isinstance(amd, Index) and json.loads(stdout)["digest"] == str(amd.digest)
    assert amd.manifest["manifests"] == index.manifest["manifests"][:2]  # type: ignore[index]
    code, _, stderr = _copy(cli, tmp_path, f"{tmp_path}/x.tar", "--platform", "linux/amd64")
    assert code == 2 and "+org.example.gpu" in stderr, stderr
    assert not (tmp_path / "x.tar").exists()


def test_one_platform_of_several_releases_from_a_registry(cli: Any, registry: Any,
                                                          tmp_path: Path) -> None:
    index, images = windows_versions()
    Layout(tmp_path / "src").put(index, "m")
    remote = f"{registry.host}/platforms/windows:1"
    code, _, stderr = _copy(cli, tmp_path, remote)
    assert code == 0, stderr
    code, stdout, stderr = cli("copy", remote, f"oci:{tmp_path}/win:m", "--platform",
                               "windows/amd64", "--json")
    assert code == 0, stderr
    win = Layout(tmp_path / "win").read("m")
    assert isinstance(win, Index) and json.loads(stdout)["digest"] == str(win.digest)
    assert win.manifest["manifests"] == index.manifest["manifests"][:2]  # type: ignore[index]
    # the single-image paths choose one: the first the index lists, from any source
    for source in (remote, f"oci:{tmp_path}/src:m"):
        code, stdout, stderr = cli("inspect", source, "--platform", "windows/amd64")
        assert code == 0, stderr
        assert json.loads(stdout)["digest"] == str(images[0].digest)
    code, stdout, stderr = cli("copy", remote, f"oci:{tmp_path}/lin:m", "--platform",
                               "linux/amd64", "--json")
    assert code == 0 and json.loads(stdout)["digest"] == str(images[2].digest), stderr


def test_copy_of_one_platform_with_several_releases_into_a_docker_archive_names_them(
        cli: Any, tmp_path: Path) -> None:
    index, images = windows_versions()
    Layout(tmp_path / "src").put(index, "m")
    code, _, stderr = _copy(cli, tmp_path, f"oci:{tmp_path}/ok:m",
                            f"{tmp_path}/x.tar", "--platform", "windows/amd64")
    assert code == 2, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    for image, version in zip(images[:2], ("10.0.17763.1", "10.0.20348.2"), strict=True):
        assert f"{version} ({image.digest})" in stderr, stderr
    assert "@sha256:" in stderr and "oci-archive:" in stderr, stderr
    assert not (tmp_path / "x.tar").exists() and not (tmp_path / "ok").exists()
    # the platform with one image goes into the archive as before
    code, stdout, stderr = _copy(cli, tmp_path, f"{tmp_path}/x.tar",
                                 "--platform", "linux/amd64", "--json")
    assert code == 0 and json.loads(stdout)["digest"] == str(images[2].digest), stderr


def nested(tmp: Path) -> Index:
    """An index listing linux/amd64 directly and linux/arm64 through a nested index."""
    amd = make_image(tmp / "blobs", "amd", 1, platform="linux/amd64")
    arm = make_image(tmp / "blobs", "arm", 1, platform="linux/arm64")
    return build_index([(amd, None), (build_index([(arm, None)]), None)])


def test_append_to_an_image_behind_a_nested_index_is_refused(
        cli: Any, tmp_path: Path) -> None:
    index = nested(tmp_path)
    inner = index.children[1][1]
    Layout(tmp_path / "src").put(index, "m")
    for wanted in ("linux/arm64", "all", "linux/amd64,linux/arm64"):
        code, _, stderr = _append(cli, tmp_path, wanted, f"oci:{tmp_path}/out:m")
        assert code == 2, stderr
        assert f"nested index {inner.digest.short}" in stderr
        assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
        assert not (tmp_path / "out").exists()
    # a platform the index lists directly: that image changes, the nested index stays
    code, _, stderr = _append(cli, tmp_path, "linux/amd64", f"oci:{tmp_path}/out:m")
    assert code == 0, stderr
    out = Layout(tmp_path / "out").read("m")
    assert isinstance(out, Index)
    _check_appended(out.children[0][1], index.children[0][1])
    assert out.manifest["manifests"][1] == index.manifest["manifests"][1]
