"""verify's rules, unit by unit, and cross-checked with oci-image-tool on broken layouts."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from image_factory import make_image, make_index, make_layer
from tools import require_tool, run

from ociforge.errors import DigestMismatchError, OciforgeError, ValidationError
from ociforge.model import mediatypes as mt
from ociforge.model import mutate
from ociforge.model.descriptor import Descriptor
from ociforge.model.digest import Digest
from ociforge.model.image import Image
from ociforge.model.jsonutil import canonical
from ociforge.model.layer import Layer
from ociforge.model.platform import Platform
from ociforge.stores.layout import Layout
from ociforge.stores.validate import (
    check_config_document,
    check_descriptor,
    check_index_document,
    check_manifest_document,
    raise_for,
    verify_artifact,
)

Edit = Callable[[dict[str, Any]], object]


def _image(tmp_path: Path) -> Image:
    return make_image(tmp_path / "src")


def test_a_good_image_and_index_verify(tmp_path: Path) -> None:
    report = verify_artifact(_image(tmp_path))
    assert report.ok, report.problems
    assert (report.manifests, report.blobs) == (1, 3)
    index_report = verify_artifact(make_index(tmp_path / "idx"))
    assert index_report.ok and index_report.manifests == 3


def test_docker_and_zstd_images_verify(tmp_path: Path) -> None:
    assert verify_artifact(make_image(tmp_path / "d", docker=True)).ok
    assert verify_artifact(make_image(tmp_path / "z", compression="zstd")).ok
    assert verify_artifact(make_image(tmp_path / "n", compression="none")).ok


@pytest.mark.parametrize("obj,fragment", [
    ({"mediaType": "a/b", "digest": "sha256:" + "A" * 64, "size": 1}, "lowercase hex"),
    ({"mediaType": "a/b", "digest": "sha256:abc", "size": 1}, "lowercase hex"),
    ({"mediaType": "a/b", "digest": "md5:" + "a" * 32, "size": 1}, "unsupported algorithm"),
    ({"mediaType": "a/b", "digest": "sha256:" + "a" * 64, "size": -1}, "size"),
    ({"mediaType": "a/b", "digest": "sha256:" + "a" * 64, "size": "1"}, "size"),
    ({"mediaType": "nope", "digest": "sha256:" + "a" * 64, "size": 1}, "mediaType"),
    ({"digest": "sha256:" + "a" * 64, "size": 1}, "mediaType"),
    ({"mediaType": "a/b", "digest": "sha256:" + "a" * 64, "size": 1, "annotations": {"k": 1}},
     "annotations"),
])
def test_descriptor_rules(obj: dict[str, Any], fragment: str) -> None:
    problems = check_descriptor(obj, "layer 0")
    assert problems and any(fragment in p.message for p in problems), problems


def _manifest_problems(tmp_path: Path, edit: Edit) -> list[str]:
    manifest = copy.deepcopy(_image(tmp_path).manifest)
    edit(manifest)
    return [p.message for p in check_manifest_document(canonical(manifest), "m", None)]


@pytest.mark.parametrize("edit,fragment", [
    (lambda m: m.__setitem__("schemaVersion", 1), "schemaVersion"),
    (lambda m: m.pop("config"), "descriptor is not a JSON object"),
    (lambda m: m.pop("layers"), "layers is missing"),
    (lambda m: m.__setitem__("mediaType", "application/json"), "not an image manifest type"),
    (lambda m: m["layers"][0].__setitem__("mediaType", mt.DOCKER_LAYER_GZIP), "Docker layer"),
    (lambda m: m["config"].__setitem__("mediaType", mt.DOCKER_CONFIG), "Docker config"),
    (lambda m: m.__setitem__("annotations", {"a": 1}), "annotations"),
])
def test_manifest_rules(tmp_path: Path, edit: Edit, fragment: str) -> None:
    problems = _manifest_problems(tmp_path, edit)
    assert any(fragment in p for p in problems), problems


def test_docker_manifest_family_rules(tmp_path: Path) -> None:
    manifest = copy.deepcopy(make_image(tmp_path / "d", docker=True).manifest)
    manifest["layers"][0]["mediaType"] = mt.OCI_LAYER_GZIP
    manifest["annotations"] = {"a": "b"}
    problems = [p.message for p in check_manifest_document(canonical(manifest), "m", None)]
    assert any("Docker manifest with layer type" in p for p in problems)
    assert any("no annotations" in p for p in problems)
    mismatch = check_manifest_document(canonical(manifest), "m", mt.OCI_MANIFEST)
    assert any("differs from its descriptor" in p.message for p in mismatch)


def _config_problems(tmp_path: Path, edit: Edit, layers: int = 2) -> list[str]:
    config = copy.deepcopy(_image(tmp_path).config)
    edit(config)
    return [p.message for p in check_config_document(canonical(config), "c", layers)]


@pytest.mark.parametrize("edit,fragment", [
    (lambda c: c.pop("os"), "os is missing"),
    (lambda c: c.__setitem__("architecture", ""), "architecture is missing"),
    (lambda c: c.pop("rootfs"), "rootfs is missing"),
    (lambda c: c["rootfs"].__setitem__("type", "foo"), "rootfs.type"),
    (lambda c: c["rootfs"]["diff_ids"].pop(), "1 diff_id but the manifest has 2 layers"),
    (lambda c: c["rootfs"]["diff_ids"].__setitem__(0, "sha256:XYZ"), "diff_ids[0]"),
    (lambda c: c["history"].append({"created_by": "x"}), "non-empty entries"),
    (lambda c: c.__setitem__("created", "yesterday"), "RFC 3339"),
    (lambda c: c["config"].__setitem__("Env", "A=1"), "Env must be an array"),
    (lambda c: c["config"].__setitem__("Env", ["NOEQUALS"]), "KEY=VALUE"),
    (lambda c: c["config"].__setitem__("Labels", {"a": 1}), "Labels values"),
    (lambda c: c["config"].__setitem__("ExposedPorts", ["80/tcp"]), "ExposedPorts"),
])
def test_config_rules(tmp_path: Path, edit: Edit, fragment: str) -> None:
    problems = _config_problems(tmp_path, edit)
    assert any(fragment in p for p in problems), problems


def test_index_rules(tmp_path: Path) -> None:
    index = make_index(tmp_path / "i")
    doc = copy.deepcopy(index.manifest)
    doc["schemaVersion"] = 3
    doc["manifests"][0]["platform"] = {"os": "linux"}
    doc["manifests"][1]["digest"] = "sha256:short"
    problems = [str(p) for p in check_index_document(canonical(doc), "index x", None)]
    assert any("schemaVersion" in p for p in problems)
    assert any("manifests[0]" in p and "architecture" in p for p in problems)
    assert any("manifests[1]" in p and "lowercase hex" in p for p in problems)
    docker = {"schemaVersion": 2, "mediaType": mt.DOCKER_LIST,
              "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "a" * 64,
                             "size": 1}]}
    problems = [p.message for p in check_index_document(canonical(docker), "l", None)]
    assert any("names OCI" in p for p in problems)
    assert any("without platform" in p for p in problems)


def test_corrupt_layer_and_wrong_diff_id_are_named(tmp_path: Path) -> None:
    image = _image(tmp_path)
    layer = image.layers[1]
    assert layer.path is not None
    data = bytearray(layer.path.read_bytes())
    data[-1] ^= 0xFF
    layer.path.write_bytes(bytes(data))
    report = verify_artifact(image)
    assert not report.ok
    assert any(str(layer.digest) in p.where and p.corrupt for p in report.problems)
    with pytest.raises(DigestMismatchError, match=str(layer.digest)):
        raise_for(report)

    # a layer whose blob is intact but whose diff_id in the config is wrong
    good = make_layer(tmp_path / "g", {"x": b"x"})
    wrong = Layer(good.descriptor, Digest.of_bytes(b"not the tar"), good.opener, good.path)
    base = mutate.scratch(Platform.parse("linux/amd64"))
    bad_image = mutate.append_layers(base, [wrong])
    report = verify_artifact(bad_image)
    assert any("diff_id" in p.message and str(good.digest) in p.where for p in report.problems)
    assert verify_artifact(bad_image, deep=False).ok  # documents alone are fine


def test_config_bytes_not_matching_descriptor(tmp_path: Path) -> None:
    image = _image(tmp_path)
    tampered = Image(image.manifest_bytes, image.config_bytes + b" ", image.layers)
    report = verify_artifact(tampered)
    assert any(p.corrupt and p.where.startswith("config") for p in report.problems)
    with pytest.raises(OciforgeError):
        raise_for(report)


# -- cross-check with oci-image-tool --------------------------------------------------


def _write_variant(tmp_path: Path, name: str, image: Image, manifest_edit: Edit | None = None,
                   config_edit: Edit | None = None) -> Layout:
    """A layout whose manifest/config are edited but whose digests are all consistent."""
    manifest = copy.deepcopy(image.manifest)
    config = copy.deepcopy(image.config)
    if config_edit:
        config_edit(config)
    config_bytes = canonical(config)
    config_desc = Descriptor(image.config_descriptor.media_type, Digest.of_bytes(config_bytes),
                             len(config_bytes))
    if "config" in manifest:
        manifest["config"].update({"digest": str(config_desc.digest), "size": len(config_bytes)})
    if manifest_edit:
        manifest_edit(manifest)
    blobs = [(config_desc, lambda: io.BytesIO(config_bytes))]
    blobs += [(layer.descriptor, layer.opener) for layer in image.layers]
    layout = Layout(tmp_path / name)
    media_type = manifest.get("mediaType")
    layout.put_manifest(canonical(manifest), media_type if isinstance(media_type, str)
                        else mt.OCI_MANIFEST, blobs, "t")
    return layout


def _ours_fail(layout: Layout) -> bool:
    try:
        artifact = layout.read("t")
    except OciforgeError:
        return True
    return not verify_artifact(artifact).ok


def _tool_fails(tool: str, layout: Layout) -> bool:
    proc = run([tool, "validate", "--type", "image", str(layout.root)], check=False)
    return proc.returncode != 0


CROSS_CASES: list[tuple[str, Edit | None, Edit | None]] = [
    ("valid", None, None),
    ("schema-version", lambda m: m.__setitem__("schemaVersion", 1), None),
    ("no-config", lambda m: m.pop("config"), None),
    ("no-layers", lambda m: m.pop("layers"), None),
    ("docker-layer-in-oci", lambda m: m["layers"][0].__setitem__("mediaType", mt.DOCKER_LAYER_GZIP),
     None),
    ("docker-config-in-oci",
     lambda m: m["config"].__setitem__("mediaType", mt.DOCKER_CONFIG), None),
    ("unknown-manifest-type", lambda m: m.__setitem__("mediaType", "application/json"), None),
    ("layer-size", lambda m: m["layers"][0].__setitem__("size", m["layers"][0]["size"] + 1), None),
    ("layer-digest-uppercase",
     lambda m: m["layers"][0].__setitem__("digest", m["layers"][0]["digest"].upper()
                                          .replace("SHA256", "sha256")), None),
]


@pytest.mark.parametrize("name,manifest_edit,config_edit", CROSS_CASES,
                         ids=[c[0] for c in CROSS_CASES])
def test_agrees_with_oci_image_tool(tmp_path: Path, name: str, manifest_edit: Edit | None,
                                    config_edit: Edit | None) -> None:
    tool = require_tool("oci-image-tool")
    layout = _write_variant(tmp_path, name, _image(tmp_path), manifest_edit, config_edit)
    expected_failure = name != "valid"
    assert _tool_fails(tool, layout) is expected_failure
    assert _ours_fail(layout) is expected_failure


@pytest.mark.parametrize("config_edit", [
    lambda c: c.pop("os"),
    lambda c: c["rootfs"]["diff_ids"].pop(),
    lambda c: c["history"].append({"created_by": "x"}),
])
def test_stricter_than_oci_image_tool_on_configs(tmp_path: Path, config_edit: Edit) -> None:
    """Rules oci-image-tool 1.0.0-rc1 does not check (it skips configs); we still do."""
    layout = _write_variant(tmp_path, "cfg", _image(tmp_path), None, config_edit)
    assert _ours_fail(layout)
    artifact = layout.read("t")
    with pytest.raises(ValidationError):
        raise_for(verify_artifact(artifact))


def test_manifest_json_is_canonical_here(tmp_path: Path) -> None:
    """Sanity for the helper: an unedited variant is byte-identical to the original."""
    image = _image(tmp_path)
    layout = _write_variant(tmp_path, "same", image)
    assert layout.find("t").digest == image.digest
    assert json.loads(layout.read_document(layout.find("t"))) == image.manifest


def test_signature_artifacts_verify(tmp_path: Path, cli: Any) -> None:
    """A cosign signature manifest (unknown layer type, empty os/arch) is valid content."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a").write_text("a\n")
    layout = f"oci:{tmp_path / 'lay'}"
    assert cli("append", "scratch", "--layer", f"{tree}:/t", "-o", f"{layout}:v1")[0] == 0
    assert cli("keygen", str(tmp_path / "k"), "--no-password")[0] == 0
    assert cli("sign", f"{layout}:v1", "--key", str(tmp_path / "k.key"))[0] == 0
    tags = Layout(tmp_path / "lay").tags()
    sig_tag = next(t for t in tags if t.endswith(".sig"))
    code, _out, err = cli("verify", f"{layout}:{sig_tag}")
    assert code == 0, err
    # but an image whose config lacks os/architecture is still refused
    problems = check_config_document(canonical({"rootfs": {"type": "layers", "diff_ids": []}}),
                                     "c", 0)
    assert any("architecture" in p.message for p in problems)
