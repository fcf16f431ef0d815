"""Attached artifacts (export reports) and the sha256-<hex> referrers fallback index.

OCI layouts here; the real registry (no referrers API, so the fallback tag) in
test_sign_registry.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from registry_fixtures import push_scratch

from ociforge.errors import InvalidInputError, OperationError
from ociforge.model import mediatypes as mt
from ociforge.model.digest import Digest
from ociforge.model.mutate import scratch
from ociforge.model.platform import Platform
from ociforge.stores.layout import Layout
from ociforge.trust.referrers import (
    EMPTY_DESCRIPTOR,
    REPORT_ARTIFACT_TYPE,
    add_to_referrers_index,
    attach_artifact,
    attach_report,
    fallback_tag,
    list_referrers,
    read_artifact_blob,
    referrer_entry,
)

REPORT = json.dumps({"app": "hello", "image": "sha256:" + "1" * 64}, sort_keys=True).encode()


def make_layout(root: Path, tag: str = "v1") -> str:
    image = scratch(Platform.parse("linux/amd64"))
    Layout(root).put(image, tag)
    return str(image.digest)


def test_empty_descriptor_is_the_specs() -> None:
    assert EMPTY_DESCRIPTOR.to_dict() == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "size": 2,
        "data": "e30=",
    }


def test_attach_report_to_layout_and_find_it_again(cli, tmp_path: Path) -> None:
    root = tmp_path / "lay"
    image_digest = make_layout(root)
    desc = attach_report(f"oci:{root}:v1", REPORT)
    assert desc.artifact_type == REPORT_ARTIFACT_TYPE and desc.media_type == mt.OCI_MANIFEST

    layout = Layout(root)
    manifest = json.loads(layout.read_document(desc))
    assert manifest["artifactType"] == REPORT_ARTIFACT_TYPE
    assert manifest["config"] == EMPTY_DESCRIPTOR.to_dict()
    assert manifest["subject"] == {"mediaType": mt.OCI_MANIFEST, "digest": image_digest,
                                   "size": layout.find("v1").size}
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == REPORT_ARTIFACT_TYPE
    assert layer["digest"] == str(Digest.of_bytes(REPORT))
    assert layer["annotations"]["org.opencontainers.image.title"] == "export-report.json"

    # the fallback index is tagged sha256-<hex> in index.json and lists the artifact
    tag = fallback_tag(image_digest)
    assert tag == "sha256-" + Digest.parse(image_digest).hex
    index_desc = layout.find(tag)
    assert index_desc.media_type == mt.OCI_INDEX
    index = json.loads(layout.read_document(index_desc))
    assert index["mediaType"] == mt.OCI_INDEX and index["schemaVersion"] == 2
    assert index["manifests"] == [{"mediaType": mt.OCI_MANIFEST, "digest": str(desc.digest),
                                   "size": desc.size, "artifactType": REPORT_ARTIFACT_TYPE}]

    code, out, err = cli("referrers", f"oci:{root}:v1", "--json")
    assert code == 0, err
    listing = json.loads(out)
    assert listing["subject"] == image_digest
    assert [m["digest"] for m in listing["referrers"]] == [str(desc.digest)]

    code, out, err = cli("referrers", f"oci:{root}:v1", "--fetch", str(desc.digest))
    assert code == 0, err
    assert out.encode() == REPORT
    assert read_artifact_blob(f"oci:{root}:v1", str(desc.digest))[1] == REPORT


def test_second_referrer_updates_the_fallback_index(tmp_path: Path) -> None:
    root = tmp_path / "lay"
    image_digest = make_layout(root)
    first = attach_report(f"oci:{root}:v1", REPORT)
    sbom = attach_artifact(f"oci:{root}:v1", b'{"spdxVersion":"SPDX-2.3"}',
                           "application/spdx+json", annotations={"org.example/kind": "sbom"})
    again = attach_report(f"oci:{root}:v1", REPORT)  # identical: same digest, not listed twice
    assert again.digest == first.digest

    _, found = list_referrers(f"oci:{root}:v1")
    digests = [m["digest"] for m in found]
    assert sorted(digests) == digests and len(digests) == 2
    assert set(digests) == {str(first.digest), str(sbom.descriptor.digest)}
    by_type = {m["artifactType"]: m for m in found}
    assert by_type["application/spdx+json"]["annotations"] == {"org.example/kind": "sbom"}

    _, reports = list_referrers(f"oci:{root}:v1", artifact_type=REPORT_ARTIFACT_TYPE)
    assert [m["digest"] for m in reports] == [str(first.digest)]
    assert list_referrers(f"oci:{root}:v1", artifact_type="text/nothing")[1] == []

    # one index.json entry for the fallback tag, pointing at the newest index
    tags = Layout(root).tags()
    assert tags.count(fallback_tag(image_digest)) == 1


def test_concurrent_attachments_all_land_in_the_index(tmp_path: Path) -> None:
    root = tmp_path / "lay"
    make_layout(root)
    errors: list[BaseException] = []

    def attach(i: int) -> None:
        try:
            attach_artifact(f"oci:{root}:v1", json.dumps({"n": i}).encode(), "application/json")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=attach, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(list_referrers(f"oci:{root}:v1")[1]) == 6


def test_no_referrers_listed(cli, tmp_path: Path) -> None:
    root = tmp_path / "lay"
    digest = make_layout(root)
    code, out, _ = cli("referrers", f"oci:{root}:v1")
    assert code == 0 and f"no referrers for {digest}" in out


def test_report_must_be_json_and_attachment_needs_a_layout_or_registry(tmp_path: Path) -> None:
    root = tmp_path / "lay"
    make_layout(root)
    with pytest.raises(InvalidInputError):
        attach_report(f"oci:{root}:v1", b"not json")
    with pytest.raises(InvalidInputError, match="OCI layout"):
        attach_report(f"docker-archive:{tmp_path / 'a.tar'}", REPORT)
    assert fallback_tag(Layout(root).find("v1").digest) not in Layout(root).tags()


def test_referrers_index_rules() -> None:
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.example.config+json", "digest":
                   str(Digest.of_bytes(b"{}")), "size": 2},
        "layers": [], "annotations": {"a": "b"}}).encode()
    entry = referrer_entry(manifest)
    # no artifactType: the config media type stands in (distribution-spec)
    assert entry["artifactType"] == "application/vnd.example.config+json"
    assert entry["annotations"] == {"a": "b"}
    first = add_to_referrers_index(None, entry)
    assert first is not None
    assert add_to_referrers_index(first, entry) is None
    with pytest.raises(OperationError):
        add_to_referrers_index(b'{"schemaVersion":2}', entry)


# --- against the real registry (docker-registry 2.8: no referrers API) --------------------


def test_registry_report_attached_via_fallback_tag_and_found_again(cli, registry) -> None:
    from ociforge.remote.client import RegistryClient

    repo = "refs/app"
    ref = f"{registry.host}/{repo}:v1"
    image_digest = push_scratch(registry.host, repo, "v1")
    client = RegistryClient(registry.host)
    assert client.get_referrers(repo, image_digest) is None  # 2.8 has no referrers API

    first = attach_artifact(ref, REPORT, REPORT_ARTIFACT_TYPE,
                            blob_media_type=REPORT_ARTIFACT_TYPE, title="export-report.json")
    assert first.via == "fallback-tag"
    tag = fallback_tag(image_digest)
    data, media_type, _ = client.get_manifest(repo, tag)
    assert media_type == mt.OCI_INDEX
    index = json.loads(data)
    assert [m["digest"] for m in index["manifests"]] == [str(first.descriptor.digest)]
    assert index["manifests"][0]["artifactType"] == REPORT_ARTIFACT_TYPE
    artifact = json.loads(client.get_manifest(repo, str(first.descriptor.digest))[0])
    assert artifact["subject"]["digest"] == image_digest
    assert artifact["config"] == EMPTY_DESCRIPTOR.to_dict()

    # a second referrer: the fallback index is updated, sorted, both listed
    second = attach_report(ref, json.dumps({"run": 2}).encode())
    index = json.loads(client.get_manifest(repo, tag)[0])
    digests = [m["digest"] for m in index["manifests"]]
    assert set(digests) == {str(first.descriptor.digest), str(second.digest)}
    assert digests == sorted(digests)

    code, out, err = cli("referrers", ref, "--json", "--artifact-type", REPORT_ARTIFACT_TYPE)
    assert code == 0, err
    listing = json.loads(out)
    assert listing["subject"] == image_digest
    assert sorted(m["digest"] for m in listing["referrers"]) == sorted(digests)
    code, out, err = cli("referrers", ref, "--fetch", str(first.descriptor.digest))
    assert code == 0, err
    assert out.encode() == REPORT
    client.close()


def test_registry_referrers_tag_holding_a_non_index_is_refused(registry) -> None:
    repo = "refs/odd"
    image_digest = push_scratch(registry.host, repo, "v1")
    # someone put an image (not an index) under the referrers tag
    push_scratch(registry.host, repo, fallback_tag(image_digest), "arm64")
    with pytest.raises(OperationError, match="not an image index"):
        attach_report(f"{registry.host}/{repo}:v1", REPORT)


def test_registry_acknowledging_the_subject_gets_no_fallback_tag(registry) -> None:
    """A registry with the referrers API answers the PUT with OCI-Subject: no tag written.

    docker-registry 2.8 cannot say it, so a proxy in front of it adds the header.
    """
    from faultproxy import FaultProxy, Rule

    from ociforge.remote.client import RegistryClient

    repo = "refs/api"
    image_digest = push_scratch(registry.host, repo, "v1")
    with FaultProxy(registry.host) as proxy:
        proxy.add(Rule("add_headers", method="PUT", path=rf"/v2/{repo}/manifests/sha256:",
                       times=1, headers={"OCI-Subject": image_digest}))
        attached = attach_report(f"{proxy.host}/{repo}:v1", REPORT)
        assert proxy.injected["add_headers"] == 1
        assert proxy.count("PUT", rf"/manifests/{fallback_tag(image_digest)}$") == 0
    client = RegistryClient(registry.host)
    assert fallback_tag(image_digest) not in client.list_tags(repo)
    artifact = json.loads(client.get_manifest(repo, str(attached.digest))[0])
    assert artifact["subject"]["digest"] == image_digest
    client.close()


def test_check_attachable_refuses_archives_before_anything_is_written(tmp_path: Path) -> None:
    from ociforge.stores.layoutlocation import LayoutLocation
    from ociforge.stores.locations import parse_location
    from ociforge.trust.sign import check_signable

    check_signable(f"oci:{tmp_path / 'not-yet'}")
    check_signable(LayoutLocation(tmp_path / "not-yet", "t"))
    check_signable("registry.example/team/app:1")
    check_signable(parse_location("registry.example/team/app:1"))
    for bad in (f"oci-archive:{tmp_path / 'a.tar'}", str(tmp_path / "b.tar"),
                parse_location(str(tmp_path / "c.tar"))):
        with pytest.raises(InvalidInputError, match="tar archive"):
            check_signable(bad)
    with pytest.raises(InvalidInputError):
        check_signable("Not A Reference!")
    assert not (tmp_path / "not-yet").exists()


def test_library_calls_accept_location_objects(registry, tmp_path: Path) -> None:
    """What export passes: the Location it wrote to, its Options and the digest it wrote."""
    from ociforge.options import Options
    from ociforge.stores.layoutlocation import LayoutLocation
    from ociforge.stores.registry import RegistryLocation
    from ociforge.trust.keys import write_key_pair
    from ociforge.trust.sign import sign_location, verify_location

    keys = write_key_pair(tmp_path / "k")
    options = Options()
    root = tmp_path / "lay"
    digest = make_layout(root, "1.0")
    layout_loc = LayoutLocation(root, "1.0")
    assert sign_location(layout_loc, keys.private, None, options, digest=digest).added
    report = attach_report(layout_loc, REPORT, options, digest=digest)
    assert list_referrers(layout_loc, options)[1][0]["digest"] == str(report.digest)

    remote_digest = push_scratch(registry.host, "refs/objects", "1.0")
    remote = RegistryLocation.parse(f"{registry.host}/refs/objects:1.0")
    sign_location(remote, keys.private, None, options, digest=remote_digest)
    assert verify_location(remote, keys.public, options)[0].manifest_digest == remote_digest
    desc = attach_report(remote, REPORT, options, digest=remote_digest)
    assert [m["digest"] for m in list_referrers(remote, options)[1]] == [str(desc.digest)]
