"""One export, several platforms (in-process CLI and library, offline).

An export for two platforms is an OCI index with one image per platform.  A
``[[layers]]`` entry without placeholders is built once and is the same blob in
both images; ``src = "runtime/{arch}"`` is built per platform.  A multi-platform
base gives each platform its own base image, and its layers go through the
file rules on every platform.  The report is one report with a ``platforms``
list.  Outputs: an index where an index fits, refused (nothing written) where
it does not.  Signing and attaching go to the index.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pkgmeta
import pytest
from image_factory import make_layer
from tools import require_module

import ociforge.cache.layers
from ociforge.app.report import verify_report
from ociforge.model.image import Image
from ociforge.model.index import Index, build_index
from ociforge.model.mutate import ConfigChanges, append_layers, configure, scratch
from ociforge.model.platform import Platform
from ociforge.options import Options
from ociforge.stores.layout import Layout
from ociforge.stores.locations import parse_location

AMD, ARM = "linux/amd64", "linux/arm64"
ANN = "org.opencontainers.image."
REPORT_LABEL = "org.ociforge.export-report.digest"
SITE = "lib/python3.11/site-packages"


def make_app(root: Path, platform: str | None = '["linux/amd64", "linux/arm64"]',
             base: str = "scratch", extra: str = "") -> Path:
    """An app with a runtime folder per architecture and code shared by all."""
    app = root / "app"
    for arch in ("amd64", "arm64"):
        tool = app / "runtime" / arch / "bin" / "tool"
        tool.parent.mkdir(parents=True)
        tool.write_text(f"#!/bin/sh\necho {arch}\n")
        tool.chmod(0o755)
    (app / "code").mkdir()
    (app / "code" / "main.py").write_text("print('hello')\n")
    (app / "code" / "site.lic").write_text("FEATURE solver vendor 1.0 permanent\n")
    line = f"platform = {platform}\n" if platform else ""
    (app / "ociforge.toml").write_text(
        f'[app]\nname = "acme/multi"\nbase = "{base}"\n{line}'
        '[config]\ncmd = ["/opt/runtime/bin/tool"]\n'
        '[[layers]]\nsrc = "runtime/{arch}"\ndest = "/opt/runtime"\n'
        '[[layers]]\nsrc = "code"\ndest = "/app"\n' + extra)
    return app


def files_in(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


def read(location: str) -> Any:
    return parse_location(location).read(Options(all_platforms=True))


def test_two_platforms_make_an_index_whose_images_share_the_unchanged_layer(
        cli: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    report_path = tmp_path / "report.json"
    code, stdout, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'out'}:1", "--json",
                               "--report", report_path)
    assert code == 0, stderr
    result = json.loads(stdout)
    index = Layout(tmp_path / "out").read("1")
    assert isinstance(index, Index) and result["digest"] == str(index.digest)
    assert result["mediaType"] == "application/vnd.oci.image.index.v1+json"
    children = [child for _, child in index.children]
    assert [str(desc.platform) for desc, _ in index.children] == [AMD, ARM]
    assert result["platforms"] == [{"platform": str(desc.platform), "digest": str(desc.digest)}
                                   for desc, _ in index.children]
    amd, arm = children
    assert isinstance(amd, Image) and isinstance(arm, Image)
    assert amd.config["architecture"] == "amd64" and arm.config["architecture"] == "arm64"
    # runtime/{arch}: one layer each; code: one blob in both manifests
    assert amd.layers[0].digest != arm.layers[0].digest
    assert amd.layers[1].digest == arm.layers[1].digest
    assert [h["created_by"] for h in arm.config["history"]][:2] == [
        "ociforge export: runtime runtime/arm64", "ociforge export: runtime code"]

    report = json.loads(report_path.read_text())
    assert verify_report(report)
    assert "layers" not in report and "platform" not in report
    assert [p["platform"] for p in report["platforms"]] == [AMD, ARM]
    for entry, child in zip(report["platforms"], children, strict=True):
        assert isinstance(child, Image)
        assert [layer["digest"] for layer in entry["layers"]] == [
            str(layer.digest) for layer in child.layers]
        assert [layer["shared"] for layer in entry["layers"]] == [False, True]
        assert entry["base"] == {"digest": None} and entry["inventory"]["packages"] == 0
        assert child.config["config"]["Labels"][REPORT_LABEL] == report["report_digest"]
    assert index.manifest["annotations"][REPORT_LABEL] == report["report_digest"]
    assert report["image"]["digest"] == str(index.digest)
    assert report["image"]["manifests"] == result["platforms"]
    # the shared layer's left-out file holds for both platforms: listed once
    assert report["left_out_files"] == [{"path": "/app/site.lic", "rule": "license-key-file",
                                         "layer": "runtime"}]
    assert "platform linux/arm64" in stderr and "shared" in stderr
    assert f"index    {index.digest}" in stderr
    assert cli("verify", f"oci:{tmp_path / 'out'}:1")[0] == 0
    code, stdout, _ = cli("export", app, "-o", f"oci:{tmp_path / 'again'}")
    assert code == 0 and stdout.strip() == str(index.digest)   # stdout: the index digest


def test_an_entry_without_placeholders_is_built_once(cli: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(tmp_path)
    built: list[str] = []
    real = ociforge.cache.layers.build_layer

    def counting(sources: Any, *args: Any, **kwargs: Any) -> Any:
        built.append(os.path.relpath(sources[0].src, app))
        return real(sources, *args, **kwargs)

    monkeypatch.setattr(ociforge.cache.layers, "build_layer", counting)
    for extra in ("--no-cache", None):
        built.clear()
        code, _, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'o'}",
                              *([extra] if extra else []))
        assert code == 0, stderr
        assert sorted(built) == ["code", "runtime/amd64", "runtime/arm64"], built
    # the cache key holds no platform: a one-platform export reuses the shared layer
    built.clear()
    assert cli("export", app, "--platform", "linux/arm64", "-o", f"oci:{tmp_path / 'a'}")[0] == 0
    assert built == []


def test_the_same_app_gives_the_same_index_twice(cli: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    digests = []
    for i, extra in enumerate(([], ["--no-cache"], [])):
        code, stdout, stderr = cli("export", app, "-o", f"oci:{tmp_path / f'o{i}'}", *extra)
        assert code == 0, stderr
        digests.append(stdout.strip())
    assert digests[0].startswith("sha256:") and len(set(digests)) == 1


def test_one_platform_is_still_one_image(cli: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path, platform='"linux/arm64"')
    code, stdout, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'o'}", "--json")
    assert code == 0, stderr
    image = Layout(tmp_path / "o").read("latest")
    assert isinstance(image, Image) and str(image.platform) == ARM
    assert json.loads(stdout)["platforms"] == [{"platform": ARM, "digest": str(image.digest)}]
    assert image.config["history"][0]["created_by"] == "ociforge export: runtime runtime/arm64"
    # --platform wins over [app] platform; a list with one platform is one platform
    for flag in ("linux/amd64", "linux/amd64,linux/amd64"):
        code, _, stderr = cli("export", app, "--platform", flag, "-o", f"oci:{tmp_path / 'p'}")
        assert code == 0, stderr
        one = Layout(tmp_path / "p").read("latest")
        assert isinstance(one, Image) and str(one.platform) == AMD


def test_platform_lists_from_the_flag_and_the_toml_agree(cli: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path, platform=None)
    code, flag_out, stderr = cli("export", app, "--platform", "linux/amd64,linux/arm64/v8",
                                 "-o", f"oci:{tmp_path / 'a'}")
    assert code == 0, stderr
    toml = app / "ociforge.toml"
    toml.write_text(toml.read_text().replace(
        'base = "scratch"\n', 'base = "scratch"\nplatform = ["linux/amd64", "linux/arm64"]\n'))
    code, toml_out, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'b'}")
    assert code == 0, stderr
    assert flag_out == toml_out
    # the order given is the order of the index
    code, reversed_out, _ = cli("export", app, "--platform", "linux/arm64,linux/amd64",
                                "-o", f"oci:{tmp_path / 'c'}")
    index = Layout(tmp_path / "c").read("latest")
    assert isinstance(index, Index) and [str(d.platform) for d, _ in index.children] == [ARM, AMD]
    assert reversed_out != toml_out


@pytest.mark.parametrize(("platform", "flag", "needle"), [
    ('"all"', None, "scratch has none"),
    (None, "all", "scratch has none"),
    ("[]", None, "non-empty array"),
    ('["linux/amd64", 3]', None, "array of platforms"),
    ('["linux/amd64,linux/arm64"]', None, "array of platforms"),
    ("7", None, "not an integer"),
    ('"linux/amd64,,linux/arm64"', None, "empty platform"),
    (None, "linux/amd64,all", "'all' cannot be combined"),
    (None, "linux/arm64/..", "malformed platform"),
])
def test_bad_platforms_are_exit_2_and_nothing_is_written(
        cli: Any, tmp_path: Path, platform: str | None, flag: str | None, needle: str) -> None:
    app = make_app(tmp_path, platform=platform)
    code, _, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'out'}",
                          *(["--platform", flag] if flag else []))
    assert code == 2, stderr
    assert needle in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "out").exists()


def test_a_missing_folder_for_one_platform_is_exit_2_naming_it(cli: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    (app / "runtime" / "arm64" / "bin" / "tool").unlink()
    (app / "runtime" / "arm64" / "bin").rmdir()
    (app / "runtime" / "arm64").rmdir()
    code, _, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'out'}")
    assert code == 2
    assert f"{app / 'ociforge.toml'}:8: layers[0].src: 'runtime/{{arch}}' is 'runtime/arm64' " \
           "for linux/arm64, which does not exist in the application folder" in stderr, stderr
    assert not (tmp_path / "out").exists()
    # only the platforms asked for need their folder
    assert cli("export", app, "--platform", "linux/amd64", "-o", f"oci:{tmp_path / 'o'}")[0] == 0


def test_variant_is_empty_when_the_platform_has_none(cli: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path, platform=None)
    for name in ("armv7", "amd64"):
        (app / "extra" / name).mkdir(parents=True)
        (app / "extra" / name / "which").write_text(name)
    toml = app / "ociforge.toml"
    toml.write_text(toml.read_text().replace('src = "runtime/{arch}"',
                                             'src = "extra/{arch}{variant}"'))
    code, _, stderr = cli("export", app, "--platform", "linux/amd64,linux/arm/v7",
                          "-o", f"oci:{tmp_path / 'o'}", "--report", tmp_path / "r.json")
    assert code == 0, stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert [p["layers"][0]["source"] for p in report["platforms"]] == ["extra/amd64",
                                                                       "extra/armv7"]


def test_a_docker_archive_cannot_hold_several_platforms(cli: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    for dest in (str(tmp_path / "x.tar"), f"docker-archive:{tmp_path / 'y.tar'}"):
        code, _, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'ok'}", "-o", dest)
        assert code == 2, stderr
        assert "holds one platform" in stderr and "oci-archive:" in stderr \
            and "--platform" in stderr, stderr
    assert files_in(tmp_path / "ok") == []
    assert not (tmp_path / "x.tar").exists() and not (tmp_path / "y.tar").exists()


def test_without_o_several_platforms_go_to_an_oci_archive(cli: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, stdout, stderr = cli("export", app)
    assert code == 0, stderr
    assert "wrote    oci-archive:./multi.tar" in stderr
    index = parse_location(f"oci-archive:{work / 'multi.tar'}").read(Options(all_platforms=True))
    assert isinstance(index, Index) and stdout.strip() == str(index.digest)
    # one platform: the docker archive it always was
    code, _, stderr = cli("export", app, "--platform", "linux/amd64")
    assert code == 0, stderr
    assert "wrote    multi.tar" in stderr


def _base_index(tmp: Path) -> Index:
    """A two-platform base: a layer both platforms share (with a .netrc) and one of each
    (a license key file on amd64, an ssh key on arm64)."""
    shared = make_layer(tmp / "blobs", {"root/.netrc": b"machine x login u password p\n",
                                        "etc/os-release": b"ID=test\n"})
    amd = make_layer(tmp / "blobs", {"opt/vendor/site.lic": b"key\n", "bin/tool": b"amd\n"})
    arm = make_layer(tmp / "blobs", {"root/.ssh/id_rsa": b"-----BEGIN\n", "bin/tool": b"arm\n"})
    images = []
    for platform, layer in ((AMD, amd), (ARM, arm)):
        image = append_layers(scratch(Platform.parse(platform)), [shared, layer])
        images.append((configure(image, ConfigChanges(env={"PATH": "/bin"})), None))
    return build_index(images)


def test_a_multi_platform_base_gives_each_platform_its_own_base(cli: Any,
                                                                tmp_path: Path) -> None:
    base = _base_index(tmp_path)
    Layout(tmp_path / "base").put(base, "1")
    app = make_app(tmp_path, platform='"all"', base=f"oci:{tmp_path / 'base'}:1")
    report_path = tmp_path / "report.json"
    code, _, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'out'}", "--report",
                          report_path)
    assert code == 0, stderr
    index = Layout(tmp_path / "out").read("latest")
    assert isinstance(index, Index)
    assert [str(d.platform) for d, _ in index.children] == [AMD, ARM]
    assert index.manifest["annotations"][ANN + "base.digest"] == str(base.digest)
    report = json.loads(report_path.read_text())
    assert report["base"]["digest"] == str(base.digest)
    for (_, child), (_, base_child), entry in zip(index.children, base.children,
                                                  report["platforms"], strict=True):
        assert isinstance(child, Image) and isinstance(base_child, Image)
        assert child.manifest["annotations"][ANN + "base.digest"] == str(base_child.digest)
        assert entry["base"]["digest"] == str(base_child.digest)
        assert [layer["role"] for layer in entry["layers"]] == ["base", "base", "runtime",
                                                               "runtime"]
        # every base layer went through the rules: all of them rewritten here
        assert all(layer["rewritten"] for layer in entry["layers"][:2])
    amd, arm = (child for _, child in index.children)
    assert isinstance(amd, Image) and isinstance(arm, Image)
    assert amd.layers[0].digest == arm.layers[0].digest        # the shared base layer: once
    assert report["platforms"][0]["layers"][0]["shared"] is True
    assert report["platforms"][0]["layers"][1]["shared"] is False
    left_out = {(item["path"], tuple(item.get("platforms", ()))) for item in
                report["left_out_files"]}
    assert left_out == {("/root/.netrc", ()), ("/opt/vendor/site.lic", (AMD,)),
                        ("/root/.ssh/id_rsa", (ARM,)), ("/app/site.lic", ())}
    # one of the platforms only: explicit lists pick from the base too
    code, _, stderr = cli("export", app, "--platform", "linux/arm64", "-o",
                          f"oci:{tmp_path / 'arm'}")
    assert code == 0, stderr
    one = Layout(tmp_path / "arm").read("latest")
    assert isinstance(one, Image) and one.manifest["annotations"][ANN + "base.digest"] == str(
        base.children[1][0].digest)


def test_a_platform_the_base_lacks_is_exit_2_naming_what_it_has(cli: Any,
                                                                tmp_path: Path) -> None:
    Layout(tmp_path / "base").put(_base_index(tmp_path), "1")
    app = make_app(tmp_path, base=f"oci:{tmp_path / 'base'}:1")
    (app / "runtime" / "s390x").mkdir()
    code, _, stderr = cli("export", app, "--platform", "linux/amd64,linux/s390x",
                          "-o", f"oci:{tmp_path / 'out'}")
    assert code == 2
    assert "linux/s390x" in stderr and "available: linux/amd64, linux/arm64" in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_licensed_software_in_one_platform_refuses_the_export(cli: Any,
                                                              tmp_path: Path) -> None:
    app = make_app(tmp_path)
    pkgmeta.gurobipy(app / "runtime" / "arm64" / SITE)
    code, _, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'out'}")
    assert code == 2
    assert "linux/arm64: gurobipy 11.0.3" in stderr and "linux/amd64:" not in stderr, stderr
    assert not (tmp_path / "out").exists()
    code, _, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'out'}", "--include-licensed",
                          "--report", tmp_path / "r.json")
    assert code == 0, stderr
    report = json.loads((tmp_path / "r.json").read_text())
    amd, arm = report["platforms"]
    assert "licensed_components" not in amd and amd["inventory"]["packages"] == 0
    assert [c["name"] for c in arm["licensed_components"]] == ["gurobipy"]
    assert report["licensed"] == {"app": False, "exported_with": "--include-licensed",
                                  "components": 1}
    assert "licensed linux/arm64: gurobipy 11.0.3" in stderr


def test_sign_attach_and_sbom_go_to_the_index(cli: Any, tmp_path: Path) -> None:
    require_module("spdx_tools")
    from ociforge.trust.keys import write_key_pair
    from ociforge.trust.referrers import REPORT_ARTIFACT_TYPE, SBOM_ARTIFACT_TYPE, list_referrers
    from ociforge.trust.sign import verify_location

    app = make_app(tmp_path)
    keys = write_key_pair(tmp_path / "signer")
    layout = f"oci:{tmp_path / 'out'}:1"
    code, stdout, stderr = cli("export", app, "-o", layout, "--json", "--sign", keys.private,
                               "--attach-report", "--sbom", tmp_path / "sbom.json",
                               "--attach-sbom")
    assert code == 0, stderr
    result = json.loads(stdout)
    index_digest = result["digest"]
    children = [entry["digest"] for entry in result["platforms"]]
    assert [s["digest"] for s in result["signatures"]] == [index_digest, *children]
    code, out, err = cli("verify-signature", layout, "--key", keys.public, "--json")
    assert code == 0, err
    assert json.loads(out)["digest"] == index_digest
    for child in children:   # as cosign sign --recursive: each platform image is signed too
        assert verify_location(layout, keys.public, digest=child)
    for kind in (REPORT_ARTIFACT_TYPE, SBOM_ARTIFACT_TYPE):
        subject, found = list_referrers(layout, artifact_type=kind)
        assert str(subject.digest) == index_digest and len(found) == 1
    sbom = json.loads((tmp_path / "sbom.json").read_text())
    names = {p["SPDXID"]: p for p in sbom["packages"]}
    assert names["SPDXRef-Image"]["versionInfo"] == index_digest
    assert [names[f"SPDXRef-Image-linux-{arch}"]["versionInfo"] for arch in ("amd64", "arm64")
            ] == children


def test_all_names_the_bases_platforms_as_a_list_would(cli: Any, tmp_path: Path) -> None:
    """A base that spells arm64 as arm64/v8 (as Docker Hub's images do): 'all' gives the
    platform linux/arm64, so {variant} is empty as for --platform linux/arm64."""
    layer = make_layer(tmp_path / "blobs", {"etc/os-release": b"ID=test\n"})
    base = build_index([(append_layers(scratch(Platform("linux", arch, variant)), [layer]), None)
                        for arch, variant in (("amd64", None), ("arm64", "v8"))])
    Layout(tmp_path / "base").put(base, "1")
    app = make_app(tmp_path, platform='"all"', base=f"oci:{tmp_path / 'base'}:1")
    toml = app / "ociforge.toml"
    toml.write_text(toml.read_text().replace('"runtime/{arch}"', '"runtime/{arch}{variant}"'))
    code, stdout, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'out'}", "--json")
    assert code == 0, stderr
    assert [p["platform"] for p in json.loads(stdout)["platforms"]] == [AMD, ARM]
    index = Layout(tmp_path / "out").read("latest")
    assert isinstance(index, Index)
    arm = index.children[1][1]
    assert isinstance(arm, Image) and arm.config["variant"] == "v8"   # the base's own config
    assert arm.config["history"][1]["created_by"] == "ociforge export: runtime runtime/arm64"


def test_files_src_per_architecture_gives_each_platform_its_own_files_layer(
        cli: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path, extra='[files]\nsrc = "proj/{arch}"\n')
    for arch in ("amd64", "arm64"):
        (app / "proj" / arch).mkdir(parents=True)
        (app / "proj" / arch / "data.csv").write_text(f"arch,{arch}\n")
    code, _, stderr = cli("export", app, "--with-files", "-o", f"oci:{tmp_path / 'out'}:1",
                          "--report", tmp_path / "r.json")
    assert code == 0, stderr
    index = Layout(tmp_path / "out").read("1")
    assert isinstance(index, Index)
    amd, arm = (child for _, child in index.children)
    assert isinstance(amd, Image) and isinstance(arm, Image)
    assert len(amd.layers) == len(arm.layers) == 3   # runtime, code, files
    assert amd.layers[-1].digest != arm.layers[-1].digest
    assert amd.layers[1].digest == arm.layers[1].digest
    report = json.loads((tmp_path / "r.json").read_text())
    assert [[layer["shared"] for layer in p["layers"]] for p in report["platforms"]] == [
        [False, True, False]] * 2
    for child, arch in ((amd, "amd64"), (arm, "arm64")):
        with child.layers[-1].open() as blob, tarfile.open(fileobj=blob, mode="r|*") as tar:
            found = {info.name: tar.extractfile(info).read()  # type: ignore[union-attr]
                     for info in tar if info.isfile()}
        assert {name.rsplit("/", 1)[-1]: data for name, data in found.items()} == {
            "data.csv": f"arch,{arch}\n".encode()}
    # one platform's folder missing: exit 2 naming it, nothing written
    (app / "proj" / "arm64" / "data.csv").unlink()
    (app / "proj" / "arm64").rmdir()
    code, _, stderr = cli("export", app, "--with-files", "-o", f"oci:{tmp_path / 'none'}")
    assert code == 2, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "files.src: 'proj/{arch}' is 'proj/arm64' for linux/arm64, which does not " \
           "exist in the application folder" in stderr, stderr
    assert not (tmp_path / "none").exists()
    # without --with-files the workspace is not read, so its folders are not needed
    assert cli("export", app, "-o", f"oci:{tmp_path / 'app-only'}")[0] == 0
