"""Keys, cosign-compatible signatures and their verification, offline (OCI layouts).

Registry round trips are in the ``registry`` tests at the end (real docker-registry).
"""

from __future__ import annotations

import base64
import io
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry_fixtures import docker_login, push_scratch

from ociforge.errors import InvalidInputError
from ociforge.model import mediatypes as mt
from ociforge.model.digest import Digest
from ociforge.model.mutate import scratch
from ociforge.model.platform import Platform
from ociforge.stores.layout import Layout
from ociforge.trust.keys import load_private_key, load_public_key, public_pem_of, write_key_pair
from ociforge.trust.sign import (
    COSIGN_TYPE,
    SIGNATURE_ANNOTATION,
    SIMPLESIGNING_TYPE,
    SignatureLayer,
    SignatureVerificationError,
    docker_reference,
    parse_signature_manifest,
    sign_location,
    sign_payload,
    signature_documents,
    signature_tag,
    signature_verifies,
    simple_signing_payload,
    verify_layers,
    verify_location,
)

FIXTURE_DIGEST = "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b"


@pytest.fixture
def cosign_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "cosign"


def make_layout(root: Path, tag: str = "v1", arch: str = "amd64") -> str:
    """An image in an OCI layout; returns its manifest digest."""
    image = scratch(Platform.parse(f"linux/{arch}"))
    Layout(root).put(image, tag)
    return str(image.digest)


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[Path, Path]:
    paths = write_key_pair(tmp_path / "signer")
    return paths.private, paths.public


# --- keys --------------------------------------------------------------------------------


def test_keygen_writes_pkcs8_private_0600_and_spki_public(cli, tmp_path: Path) -> None:
    code, out, err = cli("keygen", tmp_path / "k", "--no-password")
    assert code == 0, err
    private, public = tmp_path / "k.key", tmp_path / "k.pub"
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = load_private_key(private)
    assert key.curve.name == "secp256r1"
    assert public_pem_of(key) == public.read_bytes()
    assert "k.key" in out


def test_keygen_encrypts_with_password_from_stdin(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-pass\n"))
    code, out, err = cli("keygen", tmp_path / "k", "--password-stdin")
    assert code == 0, err
    data = (tmp_path / "k.key").read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert "s3cret-pass" not in out + err
    assert load_private_key(tmp_path / "k.key", b"s3cret-pass").curve.name == "secp256r1"
    with pytest.raises(InvalidInputError, match="encrypted"):
        load_private_key(tmp_path / "k.key")
    with pytest.raises(InvalidInputError, match="wrong password"):
        load_private_key(tmp_path / "k.key", b"not-it")


def test_keygen_password_from_environment(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OCIFORGE_KEY_PASSWORD", "env-pass")
    code, _, err = cli("keygen", tmp_path / "k")
    assert code == 0, err
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "k.key").read_bytes()
    assert load_private_key(tmp_path / "k.key", b"env-pass")


def test_keygen_refuses_to_overwrite(cli, tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_text("keep me")
    code, _, err = cli("keygen", tmp_path / "k", "--no-password")
    assert code == 2
    assert "already exists" in err and "Traceback" not in err
    assert (tmp_path / "k.pub").read_text() == "keep me"
    assert not (tmp_path / "k.key").exists()


def test_keygen_makes_missing_folders_but_not_through_a_file(cli, tmp_path: Path) -> None:
    code, _, err = cli("keygen", tmp_path / "nope" / "k", "--no-password")
    assert code == 0 and (tmp_path / "nope" / "k.key").is_file(), err
    (tmp_path / "file").write_text("x")
    code, _, err = cli("keygen", tmp_path / "file" / "k", "--no-password")
    assert code == 2 and "is not a directory" in err


def test_keygen_into_unwritable_directory_is_bad_input(cli, tmp_path: Path) -> None:
    """Root ignores permission bits, so root tries /sys, where nobody may create files."""
    folder = Path("/sys") if os.geteuid() == 0 else tmp_path / "ro"
    if folder != Path("/sys"):
        folder.mkdir()
        folder.chmod(0o555)
    try:
        code, out, err = cli("keygen", folder / "k", "--no-password")
    finally:
        if folder != Path("/sys"):
            folder.chmod(0o755)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert str(folder / "k.key") in err and "not writable" in err and ".tmp" not in err
    assert not (folder / "k.key").exists() and not (folder / "k.pub").exists()


def test_public_key_must_be_p256(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP384R1()).public_key()
    path = tmp_path / "p384.pub"
    path.write_bytes(other.public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(InvalidInputError, match="P-256"):
        load_public_key(path)
    (tmp_path / "junk.pub").write_text("not a key")
    with pytest.raises(InvalidInputError, match="cannot load public key"):
        load_public_key(tmp_path / "junk.pub")


# --- the byte layout, checked against fixtures from the cosign specification ---------------


def test_payload_bytes_match_a_real_cosign_payload(cosign_dir: Path) -> None:
    expected = (cosign_dir / "sigstore-rs-busybox.payload.json").read_bytes()
    assert simple_signing_payload("registry-testing.svc.lan/busybox", FIXTURE_DIGEST) == expected
    doc = json.loads(expected)
    assert doc["critical"]["type"] == COSIGN_TYPE == "cosign container image signature"
    assert doc["optional"] is None


def test_real_cosign_signature_verifies_and_wrong_key_does_not(
    cosign_dir: Path, keypair: tuple[Path, Path]
) -> None:
    payload = (cosign_dir / "sigstore-rs-busybox.payload.json").read_bytes()
    sig = (cosign_dir / "sigstore-rs-busybox.sig").read_text().strip()
    key = load_public_key(cosign_dir / "sigstore-rs-busybox.pub")
    assert signature_verifies(key, payload, sig)
    # cosign (Go's base64 in encoding/json) tolerates wrapped base64
    assert signature_verifies(key, payload, sig[:40] + "\n" + sig[40:] + "\n")
    assert not signature_verifies(key, payload.replace(b"busybox", b"busyb0x"), sig)
    assert not signature_verifies(load_public_key(keypair[1]), payload, sig)
    assert not signature_verifies(key, payload, "!!not base64!!")


def test_fixture_signature_manifest_verifies_with_our_verifier(cosign_dir: Path) -> None:
    manifest = (cosign_dir / "signature-manifest.json").read_bytes()
    payload = (cosign_dir / "sigstore-rs-busybox.payload.json").read_bytes()

    def read_blob(desc, limit):  # type: ignore[no-untyped-def]
        assert desc.digest == Digest.of_bytes(payload)
        return payload

    layers = parse_signature_manifest(manifest, read_blob)
    assert len(layers) == 1
    key = load_public_key(cosign_dir / "sigstore-rs-busybox.pub")
    outcome = verify_layers(layers, key, FIXTURE_DIGEST)
    assert [v.identity for v in outcome.verified] == ["registry-testing.svc.lan/busybox"]
    other = "sha256:" + "0" * 64
    wrong = verify_layers(layers, key, other)
    assert not wrong.verified
    assert "names another digest" in wrong.failure(other)


def test_our_signature_image_has_cosigns_structure(
    cosign_dir: Path, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    fixture_manifest = json.loads((cosign_dir / "signature-manifest.json").read_bytes())
    fixture_config = json.loads((cosign_dir / "signature-config.json").read_bytes())
    payload = (cosign_dir / "sigstore-rs-busybox.payload.json").read_bytes()
    sig = (cosign_dir / "sigstore-rs-busybox.sig").read_text().strip()
    layer = SignatureLayer(payload, {
        "mediaType": SIMPLESIGNING_TYPE, "digest": str(Digest.of_bytes(payload)),
        "size": len(payload), "annotations": {SIGNATURE_ANNOTATION: sig}})
    manifest_bytes, config_bytes = signature_documents([layer])
    manifest, config = json.loads(manifest_bytes), json.loads(config_bytes)
    assert config == fixture_config
    assert manifest["layers"] == fixture_manifest["layers"]
    assert set(manifest) == set(fixture_manifest)
    assert manifest["mediaType"] == fixture_manifest["mediaType"] == mt.OCI_MANIFEST
    assert manifest["config"]["mediaType"] == fixture_manifest["config"]["mediaType"]
    assert manifest["config"]["digest"] == str(Digest.of_bytes(config_bytes))

    # and what `ociforge sign` stores in a layout is that same shape
    digest = make_layout(tmp_path / "lay")
    sign_location(f"oci:{tmp_path / 'lay'}:v1", keypair[0])
    layout = Layout(tmp_path / "lay")
    tag = signature_tag(digest)
    assert tag == f"sha256-{Digest.parse(digest).hex}.sig"
    desc = layout.find(tag)
    stored = json.loads(layout.read_document(desc))
    assert set(stored) == set(fixture_manifest)
    assert stored["config"]["mediaType"] == mt.OCI_CONFIG
    (only,) = stored["layers"]
    assert only["mediaType"] == SIMPLESIGNING_TYPE
    assert set(only["annotations"]) == {SIGNATURE_ANNOTATION}
    base64.b64decode(only["annotations"][SIGNATURE_ANNOTATION], validate=True)
    payload_doc = json.loads(layout.read_document(_desc(only)))
    assert payload_doc["critical"]["image"]["docker-manifest-digest"] == digest
    stored_config = json.loads(layout.read_document(_desc(stored["config"])))
    assert stored_config["rootfs"]["diff_ids"] == [only["digest"]]
    assert stored_config["history"] == fixture_config["history"]


def _desc(obj: dict):  # type: ignore[no-untyped-def]
    from ociforge.model.descriptor import Descriptor

    return Descriptor.from_dict(obj)


def test_docker_reference_is_ggcr_style() -> None:
    assert docker_reference("docker.io", "library/alpine") == "index.docker.io/library/alpine"
    assert docker_reference("127.0.0.1:5000", "team/app") == "127.0.0.1:5000/team/app"
    with pytest.raises(InvalidInputError):
        signature_tag("sha256:xyz")


def test_signatures_from_our_key_verify_offline(keypair: tuple[Path, Path]) -> None:
    digest = "sha256:" + "ab" * 32
    payload = simple_signing_payload("example.com/app", digest)
    key = load_private_key(keypair[0])
    sig = sign_payload(key, payload)
    der = base64.b64decode(sig, validate=True)
    assert der[0] == 0x30  # ASN.1 SEQUENCE: DER, not raw r||s
    assert signature_verifies(load_public_key(keypair[1]), payload, sig)


# --- sign and verify on OCI layouts --------------------------------------------------------


def test_sign_and_verify_layout_cli(cli, tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    digest = make_layout(tmp_path / "lay")
    ref = f"oci:{tmp_path / 'lay'}:v1"
    code, out, err = cli("sign", ref, "--key", keypair[0], "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["digest"] == digest and info["signatures"] == 1 and info["added"]
    assert info["signature_tag"] in Layout(tmp_path / "lay").tags()
    code, out, err = cli("verify-signature", ref, "--key", keypair[1])
    assert code == 0, err
    assert digest in out
    # the layout holds the image and its signature: the untagged form still finds the image
    code, out, err = cli("verify-signature", f"oci:{tmp_path / 'lay'}", "--key", keypair[1],
                         "--json")
    assert code == 0, err
    verified = json.loads(out)
    assert verified["ok"] is True and verified["digest"] == digest
    assert "image" not in verified and "verified" not in verified


@pytest.mark.parametrize("tag", ["main-" + "0123456789abcdef0123456789abcdef01234567",
                                 "release-" + "ab" * 32, "v1-" + "f" * 40 + ".rc"])
def test_an_image_tag_that_looks_like_a_branch_and_sha_is_an_image(
        cli, tmp_path: Path, keypair: tuple[Path, Path], tag: str) -> None:
    """Only sha256-<64 hex>[.sig|.att|...] tags hold attachments; main-<git sha> is the image
    (one attachment-tag pattern for the layout store and signing alike)."""
    digest = make_layout(tmp_path / "lay", tag)
    for ref in (f"oci:{tmp_path / 'lay'}:{tag}", f"oci:{tmp_path / 'lay'}"):
        code, out, err = cli("sign", ref, "--key", keypair[0], "--json")
        assert code == 0, err
        assert json.loads(out)["digest"] == digest
        code, out, err = cli("verify-signature", ref, "--key", keypair[1], "--json")
        assert code == 0, err
        assert json.loads(out)["digest"] == digest
    code, out, err = cli("inspect", f"oci:{tmp_path / 'lay'}")  # signature tags do not count
    assert code == 0, err
    assert json.loads(out)["digest"] == digest


def test_verify_signature_json_on_failure(cli, tmp_path: Path,
                                          keypair: tuple[Path, Path]) -> None:
    """--json prints {"ok": false, "digest", "error"} when no signature checks out; exit 1."""
    digest = make_layout(tmp_path / "lay")
    ref = f"oci:{tmp_path / 'lay'}:v1"
    code, out, err = cli("verify-signature", ref, "--key", keypair[1], "--json")
    assert code == 1
    result = json.loads(out)
    assert result["ok"] is False and result["digest"] == digest
    assert result["signatures"] == [] and "no signatures found" in result["error"]
    assert "no signatures found" in err
    other = write_key_pair(tmp_path / "other")
    assert cli("sign", ref, "--key", keypair[0])[0] == 0
    code, out, _ = cli("verify-signature", ref, "--key", other.public, "--json")
    assert code == 1
    result = json.loads(out)
    assert result["ok"] is False and result["digest"] == digest
    assert "verifies against the key" in result["error"]


def test_sign_twice_keeps_both_signatures(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    digest = make_layout(tmp_path / "lay")
    ref = f"oci:{tmp_path / 'lay'}:v1"
    other = write_key_pair(tmp_path / "second")
    first = sign_location(ref, keypair[0])
    second = sign_location(ref, other.private)
    assert (first.signatures, second.signatures) == (1, 2)
    assert first.signature_tag == second.signature_tag
    # each key verifies its own signature; the other layer is skipped, not fatal
    assert len(verify_location(ref, keypair[1])) == 1
    assert len(verify_location(ref, other.public)) == 1
    layout = Layout(tmp_path / "lay")
    stored = json.loads(layout.read_document(layout.find(second.signature_tag)))
    assert [layer["digest"] for layer in stored["layers"]] == [first.layer_digest,
                                                               second.layer_digest]
    # one index.json entry for the .sig tag, replaced rather than duplicated
    tags = layout.tags()
    assert tags.count(second.signature_tag) == 1 and "v1" in tags
    assert verify_location(ref, keypair[1])[0].manifest_digest == digest


def test_signing_again_with_the_same_key_is_idempotent(
    cli, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """RFC 6979 signatures: a re-run signed export leaves the layout byte-identical."""
    root = tmp_path / "lay"
    make_layout(root)
    first = sign_location(f"oci:{root}:v1", keypair[0])
    index_before = (root / "index.json").read_bytes()
    code, out, err = cli("sign", f"oci:{root}:v1", "--key", keypair[0], "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["added"] is False and again["signatures"] == 1
    assert again["signature_manifest"] == first.signature_manifest_digest
    assert (root / "index.json").read_bytes() == index_before


def test_verify_with_wrong_key_fails(cli, tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    make_layout(tmp_path / "lay")
    ref = f"oci:{tmp_path / 'lay'}:v1"
    assert cli("sign", ref, "--key", keypair[0])[0] == 0
    stranger = write_key_pair(tmp_path / "stranger")
    code, _, err = cli("verify-signature", ref, "--key", stranger.public)
    assert code == 1
    assert "verifies against the key" in err and "Traceback" not in err


def test_verify_unsigned_image_fails(cli, tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    make_layout(tmp_path / "lay")
    code, _, err = cli("verify-signature", f"oci:{tmp_path / 'lay'}:v1", "--key", keypair[1])
    assert code == 1 and "no signatures found" in err


def test_tampered_image_fails_verification(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    root = tmp_path / "lay"
    signed = make_layout(root, "v1", "amd64")
    ref = f"oci:{root}:v1"
    sign_location(ref, keypair[0])
    # someone replaces the image under the same tag: its digest has no signature
    changed = make_layout(root, "v1", "arm64")
    assert changed != signed
    with pytest.raises(SignatureVerificationError, match="no signatures found"):
        verify_location(ref, keypair[1])
    # copying the old signature manifest onto the new digest: the key checks out, the
    # payload names the other digest
    layout = Layout(root)
    old = layout.find(signature_tag(signed))
    layout.set_tag(old.with_annotations(None), signature_tag(changed))
    with pytest.raises(SignatureVerificationError, match="names another digest"):
        verify_location(ref, keypair[1])
    # the original digest still verifies
    assert verify_location(ref, keypair[1], digest=signed)[0].manifest_digest == signed


def test_corrupt_signature_blob_is_an_operation_error(
    cli, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    root = tmp_path / "lay"
    make_layout(root)
    info = sign_location(f"oci:{root}:v1", keypair[0])
    blob = root / "blobs" / "sha256" / Digest.parse(info.layer_digest).hex
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes().replace(b"sha256:", b"sha256;"))
    code, _, err = cli("verify-signature", f"oci:{root}:v1", "--key", keypair[1])
    assert code == 1 and "digest" in err


def test_sign_with_encrypted_key(cli, tmp_path: Path, monkeypatch) -> None:
    paths = write_key_pair(tmp_path / "enc", b"pw")
    make_layout(tmp_path / "lay")
    ref = f"oci:{tmp_path / 'lay'}:v1"
    code, _, err = cli("sign", ref, "--key", paths.private)
    assert code == 2 and "encrypted" in err
    assert signature_tag(Layout(tmp_path / "lay").find("v1").digest) not in Layout(
        tmp_path / "lay").tags()
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    code, _, err = cli("sign", ref, "--key", paths.private, "--password-stdin")
    assert code == 0, err
    assert cli("verify-signature", ref, "--key", paths.public)[0] == 0


def test_sign_identity_and_digest_options(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    root = tmp_path / "lay"
    first = make_layout(root, "a", "amd64")
    make_layout(root, "b", "arm64")
    info = sign_location(f"oci:{root}:b", keypair[0], digest=first,
                         identity="registry.example/team/app")
    assert info.image_digest == first and info.identity == "registry.example/team/app"
    (verified,) = verify_location(f"oci:{root}:a", keypair[1])
    assert verified.identity == "registry.example/team/app"


def test_bad_locations_and_missing_key_are_bad_input(
    cli, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    code, _, err = cli("sign", f"oci-archive:{tmp_path / 'x.tar'}", "--key", keypair[0])
    assert code == 2 and "OCI layout" in err
    make_layout(tmp_path / "lay")
    code, _, err = cli("sign", f"oci:{tmp_path / 'lay'}:v1", "--key", tmp_path / "missing.key")
    assert code == 2 and "does not exist" in err
    code, _, err = cli("verify-signature", f"oci:{tmp_path / 'lay'}:nope", "--key", keypair[1])
    assert code == 2 and "no tag 'nope'" in err  # a missing tag is bad input, tags listed


def test_sign_a_multi_platform_index_signs_the_index(tmp_path: Path,
                                                    keypair: tuple[Path, Path]) -> None:
    from ociforge.model.index import build_index

    index = build_index([(scratch(Platform.parse("linux/amd64")), None),
                         (scratch(Platform.parse("linux/arm64")), None)])
    Layout(tmp_path / "lay").put(index, "multi")
    info = sign_location(f"oci:{tmp_path / 'lay'}:multi", keypair[0])
    assert info.image_digest == str(index.digest)
    (verified,) = verify_location(f"oci:{tmp_path / 'lay'}:multi", keypair[1])
    assert verified.manifest_digest == str(index.digest)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["layers", "mediaType", "digest", "size", "annotations", "critical",
                         "image", "docker-manifest-digest", "type", SIGNATURE_ANNOTATION]),
        inner, max_size=5),
    max_leaves=20).map(lambda obj: json.dumps(obj).encode()))
def test_untrusted_signature_documents_raise_only_ociforge_errors(data: bytes) -> None:
    from ociforge.errors import OciforgeError
    from ociforge.trust.sign import PayloadClaims

    PayloadClaims.parse(data)
    try:
        layers = parse_signature_manifest(data, lambda desc, limit: b"{}")
    except OciforgeError:
        return
    outcome = verify_layers(layers, _STATIC_KEY, "sha256:" + "0" * 64)
    assert not outcome.verified


def _static_key():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1()).public_key()


_STATIC_KEY = _static_key()


# --- against the real registry (docker-registry 2.8) -------------------------------------


def test_registry_sign_verify_tamper_and_two_signatures(
    cli, registry, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    from ociforge.remote.client import RegistryClient

    repo = "sign/app"
    ref = f"{registry.host}/{repo}:v1"
    digest = push_scratch(registry.host, repo, "v1")
    code, out, err = cli("sign", ref, "--key", keypair[0], "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["digest"] == digest
    assert info["identity"] == f"{registry.host}/{repo}"
    tag = signature_tag(digest)
    client = RegistryClient(registry.host)
    assert tag in client.list_tags(repo)
    data, media_type, _ = client.get_manifest(repo, tag)
    stored = json.loads(data)
    assert media_type == mt.OCI_MANIFEST and stored["config"]["mediaType"] == mt.OCI_CONFIG
    (layer,) = stored["layers"]
    assert layer["mediaType"] == SIMPLESIGNING_TYPE
    payload = client.get_blob(repo, layer["digest"], layer["size"]).read()
    assert payload == simple_signing_payload(f"{registry.host}/{repo}", digest)
    assert cli("verify-signature", ref, "--key", keypair[1])[0] == 0

    # a second signer: both kept, each verifies
    other = write_key_pair(tmp_path / "other")
    assert cli("sign", ref, "--key", other.private)[0] == 0
    assert len(json.loads(client.get_manifest(repo, tag)[0])["layers"]) == 2
    for public in (keypair[1], other.public):
        code, out, err = cli("verify-signature", ref, "--key", public, "--json")
        assert code == 0, err
        assert len(json.loads(out)["signatures"]) == 1

    # wrong key
    stranger = write_key_pair(tmp_path / "stranger")
    code, _, err = cli("verify-signature", ref, "--key", stranger.public)
    assert code == 1 and "verifies against the key" in err

    # tamper: a changed manifest pushed under the same tag has no signature
    changed = push_scratch(registry.host, repo, "v1", "arm64")
    assert changed != digest
    code, _, err = cli("verify-signature", ref, "--key", keypair[1])
    assert code == 1 and "no signatures found" in err
    # ... and the old signatures copied to the new digest's tag name the old digest
    client.put_manifest(repo, signature_tag(changed), data, mt.OCI_MANIFEST)
    code, _, err = cli("verify-signature", ref, "--key", keypair[1])
    assert code == 1 and "names another digest" in err
    # pinned to the signed digest it still verifies
    code, _, err = cli("verify-signature", f"{registry.host}/{repo}@{digest}", "--key",
                       keypair[1])
    assert code == 0, err
    client.close()


def test_registry_unknown_image_is_an_operation_error(cli, registry,
                                                      keypair: tuple[Path, Path]) -> None:
    code, _, err = cli("sign", f"{registry.host}/sign/missing:v1", "--key", keypair[0])
    assert code == 1 and "Traceback" not in err


def test_offline_signed_layout_published_to_registry_still_verifies(
    registry, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    """An export signed (and given a report) in a layout, then copied tag by tag."""
    from ociforge.options import Options
    from ociforge.stores.layoutlocation import LayoutLocation
    from ociforge.stores.registry import RegistryLocation
    from ociforge.trust.referrers import (
        REPORT_ARTIFACT_TYPE,
        attach_report,
        fallback_tag,
        list_referrers,
    )

    root = tmp_path / "export"
    digest = make_layout(root, "1.0")
    sign_location(f"oci:{root}:1.0", keypair[0], identity=f"{registry.host}/pub/app")
    report = attach_report(f"oci:{root}:1.0", b'{"app":"hello"}')
    options = Options()
    for tag in ("1.0", signature_tag(digest), fallback_tag(digest)):
        artifact = LayoutLocation(root, tag).read(options)
        RegistryLocation.parse(f"{registry.host}/pub/app:{tag}").write(artifact, options)
    (verified,) = verify_location(f"{registry.host}/pub/app:1.0", keypair[1])
    assert verified.manifest_digest == digest
    assert verified.identity == f"{registry.host}/pub/app"
    _, found = list_referrers(f"{registry.host}/pub/app:1.0", artifact_type=REPORT_ARTIFACT_TYPE)
    assert [m["digest"] for m in found] == [str(report.digest)]


def test_token_auth_registry_sign_verify_and_attach(
    cli, token_registry, keypair: tuple[Path, Path]
) -> None:
    """Docker-Hub-style token auth: the signature push needs pull+push tokens."""

    from ociforge.trust.referrers import attach_report, list_referrers

    docker_login(token_registry.host, token_registry.username or "",
                 token_registry.password or "")
    repo = "library/signed"
    ref = f"{token_registry.host}/{repo}:v1"
    digest = push_scratch(token_registry.host, repo, "v1")
    code, out, err = cli("sign", ref, "--key", keypair[0], "--json")
    assert code == 0, err
    assert token_registry.password not in out + err
    assert json.loads(out)["digest"] == digest
    code, _, err = cli("verify-signature", ref, "--key", keypair[1])
    assert code == 0, err
    attached = attach_report(ref, b'{"report":true}')
    assert [m["digest"] for m in list_referrers(ref)[1]] == [str(attached.digest)]


@pytest.mark.parametrize("prefix", ["", "kdir/", "kdir", ".", "kdir/.."])
def test_keygen_refuses_an_empty_or_folder_prefix(cli, tmp_path: Path, monkeypatch,
                                                  prefix: str) -> None:
    """"" would write hidden .key/.pub files, "kdir/" would write kdir.key beside the
    folder: both are bad input, with a hint (kdir/cosign), and nothing is written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kdir").mkdir()
    code, _, err = cli("keygen", prefix, "--no-password")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert ("is empty" in err) if not prefix else ("names a folder" in err and "cosign" in err)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kdir"]


def test_keygen_with_a_prefix_inside_a_folder_writes_there(cli, tmp_path: Path) -> None:
    (tmp_path / "kdir").mkdir()
    code, _, err = cli("keygen", tmp_path / "kdir" / "cosign", "--no-password")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "kdir").iterdir()) == ["cosign.key", "cosign.pub"]


def test_keygen_never_writes_through_a_fifo_or_a_symlink(cli, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "f.key")
    (tmp_path / "l.pub").symlink_to(tmp_path / "elsewhere.pub")
    for prefix in ("f", "l"):
        code, _, err = cli("keygen", tmp_path / prefix, "--no-password")
        assert code == 2 and "already exists" in err
    assert stat.S_ISFIFO(os.lstat(tmp_path / "f.key").st_mode)
    assert not (tmp_path / "elsewhere.pub").exists() and not (tmp_path / "l.key").exists()
    assert not (tmp_path / "f.pub").exists()
