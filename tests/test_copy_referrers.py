"""``ociforge copy --with-referrers``: an image handed over with its signatures and reports.

Registry to registry, registry to layout and layout to registry, against the real
registry (no referrers API: the sha256-<hex> fallback index is kept at each
destination); then ``verify-signature`` and ``referrers`` at the destination, and
skopeo, which knows nothing of ociforge, sees the same signature manifest and
referrers index there.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from registry_fixtures import make_image
from tools import require_module, require_tool, run

from ociforge.stores.layout import Layout
from ociforge.trust.referrers import attach_artifact

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello"
SBOM_TYPE = "application/spdx+json"


@pytest.fixture
def signed(cli, registry, tmp_path: Path) -> dict[str, Any]:
    """An export pushed to the registry, signed, with its report and an SBOM attached,
    and the SBOM signed too."""
    key = tmp_path / "cosign"
    assert cli("keygen", key, "--no-password")[0] == 0
    repo = f"{registry.host}/handover/src-{secrets.token_hex(3)}"
    code, out, err = cli("export", HELLO, "-o", f"{repo}:1.0", "--sign", f"{key}.key",
                         "--attach-report", "--json")
    assert code == 0, err
    result = json.loads(out)
    sbom = attach_artifact(f"{repo}:1.0", b'{"spdxVersion": "SPDX-2.3"}', SBOM_TYPE)
    code, _, err = cli("sign", f"{repo}@{sbom.descriptor.digest}", "--key", f"{key}.key")
    assert code == 0, err
    return {"repo": repo, "ref": f"{repo}:1.0", "digest": result["digest"], "key": key,
            "report": result["attached_reports"][0]["digest"],
            "sbom": str(sbom.descriptor.digest)}


def _check_destination(cli, where: str, signed: dict[str, Any]) -> None:
    code, out, err = cli("verify-signature", where, "--key", f"{signed['key']}.pub", "--json")
    assert code == 0, err
    assert json.loads(out)["digest"] == signed["digest"]
    code, out, err = cli("referrers", where, "--json")
    assert code == 0, err
    listed = {r["digest"]: r.get("artifactType") for r in json.loads(out)["referrers"]}
    assert listed == {signed["report"]: "application/vnd.ociforge.export-report.v1+json",
                      signed["sbom"]: SBOM_TYPE}
    code, out, err = cli("referrers", where, "--fetch", signed["report"])
    assert code == 0, err
    assert json.loads(out)["image"]["digest"] == signed["digest"]
    # the SBOM's own signature came along and verifies
    code, _, err = cli("verify-signature", where, "--digest", signed["sbom"], "--key",
                       f"{signed['key']}.pub")
    assert code == 0, err


def test_registry_to_registry(cli, registry, signed) -> None:
    dest = f"{registry.host}/handover/dst-{secrets.token_hex(3)}:1.0"
    code, out, err = cli("copy", signed["ref"], dest, "--with-referrers", "--json")
    assert code == 0, err
    result = json.loads(out)
    tags = {a["tag"] for a in result["attachments"]}
    hex_part = signed["digest"].split(":")[1]
    assert f"sha256-{hex_part}.sig" in tags
    assert {a["digest"] for a in result["attachments"] if a["tag"] is None} == {
        signed["report"], signed["sbom"]}
    _check_destination(cli, dest, signed)

    # skopeo sees the same signature manifest and referrers index at the destination
    skopeo = require_tool("skopeo")
    repo = dest.rsplit(":", 1)[0]
    listed = json.loads(run([skopeo, "list-tags", "--tls-verify=false",
                             f"docker://{repo}"]).stdout)["Tags"]
    assert set(listed) >= {"1.0", f"sha256-{hex_part}.sig", f"sha256-{hex_part}"}
    for tag in (f"sha256-{hex_part}.sig", f"sha256-{hex_part}"):
        there = run([skopeo, "inspect", "--raw", "--tls-verify=false",
                     f"docker://{repo}:{tag}"]).stdout
        here = run([skopeo, "inspect", "--raw", "--tls-verify=false",
                    f"docker://{signed['repo']}:{tag}"]).stdout
        assert there == here

    # the oras SDK finds the referrers index and the report in it, and the report's bytes
    provider = require_module("oras.provider")
    oras = provider.Registry(hostname=registry.host, insecure=True)
    container = dest.split("/", 1)[1].rsplit(":", 1)[0]
    assert f"sha256-{hex_part}" in oras.get_tags(container)
    index = oras.get_manifest(f"{container}:sha256-{hex_part}",
                              allowed_media_type=["application/vnd.oci.image.index.v1+json"])
    assert {m["digest"] for m in index["manifests"]} == {signed["report"], signed["sbom"]}
    report = oras.get_manifest(f"{container}@{signed['report']}")
    blob = oras.get_blob(container, report["layers"][0]["digest"])
    assert json.loads(blob.content)["image"]["digest"] == signed["digest"]

    # without --with-referrers nothing is attached at the destination
    bare = f"{registry.host}/handover/bare-{secrets.token_hex(3)}:1.0"
    assert cli("copy", signed["ref"], bare)[0] == 0
    code, _, err = cli("verify-signature", bare, "--key", f"{signed['key']}.pub")
    assert code == 1 and "no signatures found" in err


def test_registry_to_layout_and_back(cli, registry, signed, tmp_path: Path) -> None:
    layout = f"oci:{tmp_path / 'handover'}:1.0"
    code, _out, err = cli("copy", signed["ref"], layout, "--with-referrers")
    assert code == 0, err
    _check_destination(cli, layout, signed)
    skopeo = require_tool("skopeo")
    hex_part = signed["digest"].split(":")[1]
    raw = run([skopeo, "inspect", "--raw",
               f"oci:{tmp_path / 'handover'}:sha256-{hex_part}.sig"]).stdout
    assert json.loads(raw)["layers"][0]["mediaType"] == (
        "application/vnd.dev.cosign.simplesigning.v1+json")

    back = f"{registry.host}/handover/back-{secrets.token_hex(3)}:1.0"
    code, _, err = cli("copy", layout, back, "--with-referrers")
    assert code == 0, err
    _check_destination(cli, back, signed)


def test_signatures_made_at_the_destination_are_kept(cli, registry, signed,
                                                     tmp_path: Path) -> None:
    dest = f"{registry.host}/handover/merge-{secrets.token_hex(3)}:1.0"
    assert cli("copy", signed["ref"], dest)[0] == 0
    other = tmp_path / "other"
    assert cli("keygen", other, "--no-password")[0] == 0
    assert cli("sign", dest, "--key", f"{other}.key")[0] == 0
    code, out, err = cli("copy", signed["ref"], dest, "--with-referrers", "--json")
    assert code == 0, err
    assert any(a["merged"] for a in json.loads(out)["attachments"])
    for key in (signed["key"], other):
        code, _, err = cli("verify-signature", dest, "--key", f"{key}.pub")
        assert code == 0, err
    # copying again changes nothing
    code, out, err = cli("copy", signed["ref"], dest, "--with-referrers", "--json")
    assert code == 0, err
    code, out, _ = cli("sign", dest, "--key", f"{other}.key", "--json")
    assert json.loads(out)["signatures"] == 2 and json.loads(out)["added"] is False


def test_an_index_with_its_referrers(cli, registry, tmp_path: Path) -> None:
    """An index copied whole (copy's default) takes the referrers of the index and of
    each child along; narrowed to one platform, that image's."""
    from ociforge.model.index import build_index

    amd, arm = make_image(tmp_path), make_image(tmp_path, platform="linux/arm64")
    index = build_index([(amd, None), (arm, None)])
    src = tmp_path / "multi"
    Layout(src).put(index, "1")
    key = tmp_path / "k"
    assert cli("keygen", key, "--no-password")[0] == 0
    for digest in (index.digest, arm.digest):
        assert cli("sign", f"oci:{src}:1", "--digest", str(digest), "--key", f"{key}.key")[0] == 0
    attach_artifact(f"oci:{src}:1", b'{"index": true}', SBOM_TYPE)
    dest = f"{registry.host}/handover/multi-{secrets.token_hex(3)}:1"
    code, out, err = cli("copy", f"oci:{src}:1", dest, "--with-referrers", "--json")
    assert code == 0, err
    subjects = {a["subject"] for a in json.loads(out)["attachments"]}
    assert subjects == {str(index.digest), str(arm.digest)}
    for digest in (index.digest, arm.digest):
        code, _, err = cli("verify-signature", dest, "--digest", str(digest), "--key",
                           f"{key}.pub")
        assert code == 0, err
    code, out, _ = cli("referrers", dest, "--json")
    assert [r["artifactType"] for r in json.loads(out)["referrers"]] == [SBOM_TYPE]
    # narrowed to one platform: that image's attachments, not the index's
    one = f"{registry.host}/handover/one-{secrets.token_hex(3)}:1"
    code, out, err = cli("copy", f"oci:{src}:1", one, "--platform", "linux/arm64",
                         "--with-referrers", "--json")
    assert code == 0, err
    assert {a["subject"] for a in json.loads(out)["attachments"]} == {str(arm.digest)}
    code, _, err = cli("verify-signature", one, "--key", f"{key}.pub")
    assert code == 0, err


def test_with_referrers_needs_places_that_hold_them(cli, signed, tmp_path: Path) -> None:
    code, _out, err = cli("copy", signed["ref"], str(tmp_path / "x.tar"), "--with-referrers",
                         "--json")
    assert code == 2 and "cannot hold signatures" in err
    assert not (tmp_path / "x.tar").exists()
    Layout(tmp_path / "l").put(make_image(tmp_path), "t")
    assert cli("copy", f"oci:{tmp_path / 'l'}:t", str(tmp_path / "a.tar"))[0] == 0
    code, _, err = cli("copy", str(tmp_path / "a.tar"), f"oci:{tmp_path / 'o'}",
                       "--with-referrers")
    assert code == 2 and "cannot hold signatures" in err
    assert not (tmp_path / "o").exists()
