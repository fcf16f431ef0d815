"""Cosign-compatible image signatures (the "tag" layout ``cosign verify --key`` reads).

A signature is a simple-signing payload naming the image's manifest digest,
signed with ECDSA P-256 over SHA-256 (ASN.1 DER, base64 in the layer
annotation ``dev.cosignproject.cosign/signature``).  All signatures of one
image live in one OCI image manifest tagged ``sha256-<hex>.sig`` next to the
image, one ``application/vnd.dev.cosign.simplesigning.v1+json`` layer each;
signing again appends a layer.  Sources: sigstore/sigstore
``pkg/signature/payload/payload.go``, cosign ``pkg/oci/static/signature.go``,
``pkg/oci/remote/remote.go`` and ``pkg/cosign/verifiers.go`` (see
docs/signing.md and protocol-facts.md §6).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, OperationError
from ..model import mediatypes as mt
from ..model.descriptor import Descriptor
from ..model.digest import Digest
from ..model.jsonutil import JSONObject, canonical, loads, parse_object
from ..model.reference import docker_reference
from ..stores.refnames import attachment_tag

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import (
        EllipticCurvePrivateKey,
        EllipticCurvePublicKey,
    )

    from ..options import Options
    from ..stores.locations import Location

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIMPLESIGNING_TYPE = mt.COSIGN_SIMPLESIGNING
COSIGN_TYPE = "cosign container image signature"
SIGNATURE_SUFFIX = "sig"
# ggcr's zero time.Time: what cosign's signature image config carries.
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"
MAX_PAYLOAD = 1 << 20


class SignatureVerificationError(OperationError):
    """No signature on the image both verifies against the key and names its digest."""

    def __init__(self, message: str, image_digest: str | None = None):
        super().__init__(message)
        self.image_digest = image_digest


def signature_tag(digest: Digest | str, suffix: str = SIGNATURE_SUFFIX) -> str:
    """``sha256:<hex>`` -> ``sha256-<hex>.sig`` (cosign ``normalizeWithSeparator``)."""
    return attachment_tag(digest, suffix)


def simple_signing_payload(identity: str, manifest_digest: Digest | str) -> bytes:
    """The payload bytes exactly as sigstore's ``json.Marshal(SimpleContainerImage)`` writes them.

    Go emits struct fields in declaration order (critical, optional; identity,
    image, type), which is also sorted order, so canonical JSON gives the same bytes.
    """
    digest = Digest.parse(str(manifest_digest))
    doc = {
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": str(digest)},
            "type": COSIGN_TYPE,
        },
        "optional": None,
    }
    # Go's encoder escapes <, >, &, U+2028 and U+2029 in strings; mirror it so bytes match.
    text = canonical(doc).decode()
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode()


def sign_payload(private_key: EllipticCurvePrivateKey, payload: bytes) -> str:
    """ECDSA P-256 / SHA-256 over the exact payload bytes; DER, standard base64.

    Deterministic (RFC 6979) where ``cryptography`` offers it: the same key
    signing the same image gives the same signature, so re-running a signed
    export leaves the ``.sig`` manifest byte-identical instead of growing it.
    Verifiers cannot tell the difference.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        algorithm = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    except TypeError:  # cryptography < 44
        algorithm = ec.ECDSA(hashes.SHA256())
    der = private_key.sign(payload, algorithm)
    return base64.b64encode(der).decode("ascii")


def signature_verifies(public_key: EllipticCurvePublicKey, payload: bytes,
                       signature_b64: str) -> bool:
    """True when the base64 DER signature is valid for the payload under the key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    # Go's encoding/json base64 decoding skips \r and \n, so cosign accepts wrapped values.
    cleaned = signature_b64.replace("\n", "").replace("\r", "")
    try:
        der = base64.b64decode(cleaned.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False
    try:
        public_key.verify(der, payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class SignatureLayer:
    """One signature: its payload bytes and the layer descriptor as stored (annotations kept)."""

    payload: bytes
    descriptor: dict[str, Any]

    @property
    def signature(self) -> str | None:
        ann = self.descriptor.get("annotations")
        value = ann.get(SIGNATURE_ANNOTATION) if isinstance(ann, dict) else None
        return value if isinstance(value, str) else None

    @property
    def digest(self) -> Digest:
        return Digest.parse(self.descriptor["digest"])


def new_signature_layer(payload: bytes, signature_b64: str) -> SignatureLayer:
    desc = Descriptor(
        SIMPLESIGNING_TYPE, Digest.of_bytes(payload), len(payload),
        {SIGNATURE_ANNOTATION: signature_b64},
    )
    return SignatureLayer(payload, desc.to_dict())


def signature_documents(layers: Sequence[SignatureLayer]) -> tuple[bytes, bytes]:
    """(manifest bytes, config bytes) of cosign's signature image for these layers.

    The config is ggcr's empty image config after ``mutate.Append``: empty
    architecture/os, zero created time, one zero-time history entry and one
    diff_id per layer (payload layers are uncompressed: diff_id == digest).
    """
    diff_ids = [str(layer.digest) for layer in layers]
    config = {
        "architecture": "",
        "config": {},
        "created": _GO_ZERO_TIME,
        "history": [{"created": _GO_ZERO_TIME} for _ in layers],
        "os": "",
        "rootfs": {"diff_ids": diff_ids, "type": "layers"},
    }
    config_bytes = canonical(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": Descriptor(mt.OCI_CONFIG, Digest.of_bytes(config_bytes),
                             len(config_bytes)).to_dict(),
        "layers": [layer.descriptor for layer in layers],
    }
    return canonical(manifest), config_bytes


def parse_signature_manifest(
    manifest_bytes: bytes, read_blob: Callable[[Descriptor, int], bytes]
) -> list[SignatureLayer]:
    """The simple-signing layers of a ``.sig`` manifest, payloads read (and verified)."""
    manifest = parse_object(manifest_bytes, "signature manifest")
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise OperationError("signature manifest has no layers array")
    out = []
    for i, entry in enumerate(layers):
        desc = Descriptor.from_dict(entry, f"signature layer {i}")
        if desc.media_type != SIMPLESIGNING_TYPE:
            continue
        out.append(SignatureLayer(read_blob(desc, MAX_PAYLOAD), dict(entry)))
    return out


@dataclass(frozen=True)
class PayloadClaims:
    identity: str | None
    digest: str | None
    type: str | None

    @classmethod
    def parse(cls, payload: bytes) -> PayloadClaims:
        try:
            doc = loads(payload, "signature payload")
        except InvalidInputError:
            return cls(None, None, None)
        critical = doc.get("critical") if isinstance(doc, dict) else None
        if not isinstance(critical, dict):
            return cls(None, None, None)
        identity = critical.get("identity")
        image = critical.get("image")
        ref = identity.get("docker-reference") if isinstance(identity, dict) else None
        digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
        kind = critical.get("type")
        return cls(
            ref if isinstance(ref, str) else None,
            digest if isinstance(digest, str) else None,
            kind if isinstance(kind, str) else None,
        )


@dataclass(frozen=True)
class VerifiedSignature:
    layer_digest: str
    identity: str | None
    manifest_digest: str


@dataclass
class VerificationOutcome:
    """What verifying every signature found: the valid ones and why the others failed."""

    verified: list[VerifiedSignature] = field(default_factory=list)
    bad_signature: int = 0
    wrong_digest: list[str] = field(default_factory=list)
    wrong_type: int = 0
    total: int = 0

    def failure(self, image_digest: str) -> str:
        if self.total == 0:
            return f"no signatures found for {image_digest}"
        if self.wrong_digest:
            return (f"signature payload names another digest ({self.wrong_digest[0]}), "
                    f"not the image's {image_digest}")
        if self.wrong_type:
            return f"signature payload type is not {COSIGN_TYPE!r}"
        found = "1 found" if self.total == 1 else f"{self.total} found"
        return (f"none of the signatures on {image_digest} ({found}) "
                "verifies against the key")


def verify_layers(
    layers: Sequence[SignatureLayer], public_key: EllipticCurvePublicKey,
    image_digest: Digest | str
) -> VerificationOutcome:
    """Check each signature as cosign does: key first, then the payload's claims."""
    wanted = str(image_digest)
    outcome = VerificationOutcome(total=len(layers))
    for layer in layers:
        sig = layer.signature
        if not sig or not signature_verifies(public_key, layer.payload, sig):
            outcome.bad_signature += 1
            continue
        claims = PayloadClaims.parse(layer.payload)
        if claims.type != COSIGN_TYPE:
            outcome.wrong_type += 1
            continue
        if claims.digest != wanted:
            outcome.wrong_digest.append(str(claims.digest))
            continue
        outcome.verified.append(VerifiedSignature(str(layer.digest), claims.identity, wanted))
    return outcome


# --- the operations on locations (registry references and oci: layouts) ---------------


@dataclass(frozen=True)
class SignatureInfo:
    """What signing did: which image, where the signature manifest went, how many there are."""

    image_digest: str
    identity: str
    signature_tag: str
    signature_manifest_digest: str
    layer_digest: str
    signatures: int
    added: bool
    location: str

    def to_dict(self) -> JSONObject:
        return {
            "digest": self.image_digest,
            "identity": self.identity,
            "signature_tag": self.signature_tag,
            "signature_manifest": self.signature_manifest_digest,
            "layer": self.layer_digest,
            "signatures": self.signatures,
            "added": self.added,
            "location": self.location,
        }


def sign_location(
    location: str | Location,
    key_path: str | Path,
    password: bytes | None = None,
    options: Options | None = None,
    *,
    digest: str | None = None,
    identity: str | None = None,
) -> SignatureInfo:
    """Sign the image a location names (``oci:DIR[:TAG]`` or a registry reference).

    ``digest`` pins the manifest to sign (the export passes what it just wrote);
    otherwise the location's tag is resolved.  ``identity`` overrides the
    payload's docker-reference.
    """
    from ..stores.artifactstore import open_store

    key = _load_private(key_path, password)
    store = open_store(location, options)
    subject = store.resolve(digest)
    who = identity or store.identity
    payload = simple_signing_payload(who, subject.digest)
    new = new_signature_layer(payload, sign_payload(key, payload))
    tag = signature_tag(subject.digest)
    with store.locked():
        existing = _existing_signatures(store, tag)
        duplicate = any(
            layer.digest == new.digest and layer.signature == new.signature for layer in existing
        )
        layers = existing if duplicate else [*existing, new]
        manifest_bytes, config_bytes = signature_documents(layers)
        store.put_blob(config_bytes, mt.OCI_CONFIG)
        if not duplicate:  # the existing layers were just read from this store
            store.put_blob(new.payload, SIMPLESIGNING_TYPE)
        sig_digest = store.put_manifest(manifest_bytes, mt.OCI_MANIFEST, tag)
    return SignatureInfo(
        str(subject.digest), who, tag, str(sig_digest), str(new.digest), len(layers),
        not duplicate, str(store),
    )


def verify_location(
    location: str | Location, public_key_path: str | Path, options: Options | None = None, *,
    digest: str | None = None
) -> list[VerifiedSignature]:
    """Verify the image's signatures; returns the valid ones or raises with the reason."""
    from ..stores.artifactstore import open_store
    from .keys import load_public_key

    public_key = load_public_key(public_key_path)
    store = open_store(location, options)
    subject = store.resolve(digest)
    layers = _existing_signatures(store, signature_tag(subject.digest))
    outcome = verify_layers(layers, public_key, subject.digest)
    if not outcome.verified:
        raise SignatureVerificationError(outcome.failure(str(subject.digest)),
                                         str(subject.digest))
    return outcome.verified


def _existing_signatures(store: Any, tag: str) -> list[SignatureLayer]:
    found = store.get_manifest(tag)
    if found is None:
        return []
    data, media_type = found
    if media_type != mt.OCI_MANIFEST and not mt.is_image_manifest(media_type):
        raise OperationError(f"{tag} in {store} is a {media_type}, not a signature manifest")
    return parse_signature_manifest(data, store.read_blob)


def _load_private(key_path: str | Path, password: bytes | None) -> EllipticCurvePrivateKey:
    from .keys import load_private_key

    if not str(key_path):
        raise InvalidInputError("no signing key given")
    return load_private_key(key_path, password)


def check_signable(location: str | Location) -> None:
    """Exit-2 error unless ``location`` can hold signatures (an OCI layout or a registry)."""
    from ..stores.artifactstore import check_attachable

    check_attachable(location)


__all__ = [
    "COSIGN_TYPE",
    "SIGNATURE_ANNOTATION",
    "SIMPLESIGNING_TYPE",
    "SignatureInfo",
    "SignatureVerificationError",
    "VerifiedSignature",
    "check_signable",
    "docker_reference",
    "sign_location",
    "signature_tag",
    "simple_signing_payload",
    "verify_location",
]
