"""Artifacts attached to an image by ``subject``, and finding them again (OCI 1.1 referrers).

An attached artifact is an OCI image manifest with an ``artifactType``, the
empty config and ``subject`` = the image.  Registries with the referrers API
index it themselves (they answer the manifest PUT with ``OCI-Subject``); for
the others (registry 2.8, OCI layouts) we keep the referrers tag schema of the
distribution spec: an image index under tag ``sha256-<hex>`` listing every
referrer with its artifactType and annotations, sorted by digest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, OperationError
from ..model import mediatypes as mt
from ..model.annotations import ANNOTATION_TITLE
from ..model.descriptor import Descriptor
from ..model.digest import Digest
from ..model.jsonutil import MAX_DOCUMENT, JSONObject, canonical, parse_object
from ..stores.referrers import referrers_of
from ..stores.refnames import attachment_tag

if TYPE_CHECKING:
    from ..options import Options
    from ..stores.locations import Location
    from ..stores.store import ArtifactStore

REPORT_ARTIFACT_TYPE = "application/vnd.ociforge.export-report.v1+json"
REPORT_TITLE = "export-report.json"
SBOM_ARTIFACT_TYPE = "application/spdx+json"
SBOM_TITLE = "sbom.spdx.json"
EMPTY_JSON = b"{}"
EMPTY_DESCRIPTOR = Descriptor(mt.OCI_EMPTY, Digest.of_bytes(EMPTY_JSON), 2, data="e30=")


def fallback_tag(digest: Digest | str) -> str:
    """The referrers tag schema's tag: ``sha256:<hex>`` -> ``sha256-<hex>``."""
    return attachment_tag(digest)


def artifact_manifest(
    subject: Descriptor,
    artifact_type: str,
    layers: list[Descriptor],
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """An OCI 1.1 artifact manifest: empty config, these layers, ``subject`` the image."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": EMPTY_DESCRIPTOR.to_dict(),
        "layers": [layer.to_dict() for layer in layers],
        "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_dict(),
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return canonical(doc)


def referrer_entry(manifest_bytes: bytes, media_type: str = mt.OCI_MANIFEST) -> dict[str, Any]:
    """The descriptor a referrers index lists for a manifest (artifactType, annotations copied)."""
    doc = parse_object(manifest_bytes, "referrer manifest")
    entry: dict[str, Any] = {
        "mediaType": doc.get("mediaType") if isinstance(doc.get("mediaType"), str) else media_type,
        "digest": str(Digest.of_bytes(manifest_bytes)),
        "size": len(manifest_bytes),
    }
    artifact_type = doc.get("artifactType")
    if not isinstance(artifact_type, str):
        config = doc.get("config")
        artifact_type = config.get("mediaType") if isinstance(config, dict) else None
    if isinstance(artifact_type, str):
        entry["artifactType"] = artifact_type
    annotations = doc.get("annotations")
    if isinstance(annotations, dict) and annotations:
        entry["annotations"] = dict(annotations)
    return entry


def add_to_referrers_index(existing: bytes | None, entry: dict[str, Any]) -> bytes | None:
    """The fallback index with ``entry`` added (sorted by digest); None when already listed."""
    if existing is None:
        manifests: list[dict[str, Any]] = []
    else:
        doc = parse_object(existing, "referrers index")
        listed = doc.get("manifests")
        if not isinstance(listed, list):
            raise OperationError("referrers tag does not hold an image index")
        manifests = [m for m in listed if isinstance(m, dict)]
    if any(m.get("digest") == entry["digest"] for m in manifests):
        return None
    manifests.append(entry)
    manifests.sort(key=lambda m: (str(m.get("digest")), str(m.get("artifactType", ""))))
    return canonical({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests})


@dataclass(frozen=True)
class Attached:
    """An artifact pushed with a subject, and how its referrer listing was kept."""

    descriptor: Descriptor
    subject: Descriptor
    via: str  # "referrers-api" or "fallback-tag"
    location: str

    def to_dict(self) -> JSONObject:
        return {
            "artifact": self.descriptor.to_dict(),
            "subject": str(self.subject.digest),
            "via": self.via,
            "location": self.location,
        }


def attach_artifact(
    location: str | Location,
    blob: bytes,
    artifact_type: str,
    options: Options | None = None,
    *,
    blob_media_type: str | None = None,
    title: str | None = None,
    annotations: Mapping[str, str] | None = None,
    digest: str | None = None,
) -> Attached:
    """Attach ``blob`` to the image a location names, as a one-layer artifact."""
    from ..stores.artifactstore import open_store

    if len(blob) > MAX_DOCUMENT * 16:
        raise InvalidInputError(f"artifact of {len(blob)} bytes is too large to attach")
    store = open_store(location, options)
    subject = store.resolve(digest)
    layer_annotations = {ANNOTATION_TITLE: title} if title else None
    with store.locked():
        store.put_blob(EMPTY_JSON, mt.OCI_EMPTY)
        layer = store.put_blob(blob, blob_media_type or artifact_type)
        layer = layer.with_annotations(layer_annotations)
        manifest = artifact_manifest(subject, artifact_type, [layer], annotations)
        manifest_digest, acked = put_referrer(store, subject.digest, manifest, mt.OCI_MANIFEST)
    desc = Descriptor(mt.OCI_MANIFEST, manifest_digest, len(manifest),
                      dict(annotations) if annotations else None, artifact_type=artifact_type)
    return Attached(desc, subject, "fallback-tag" if not acked else "referrers-api", str(store))


def put_referrer(store: ArtifactStore, subject: Digest, manifest: bytes, media_type: str
                 ) -> tuple[Digest, bool]:
    """Store a manifest whose ``subject`` is ``subject`` (its blobs already there) and
    make it findable: by the registry's referrers API when it acknowledges the subject,
    else in the ``sha256-<hex>`` fallback index.  Call it under ``store.locked()``.
    Returns (the manifest's digest, whether the referrers API took it)."""
    manifest_digest, acked = store.put_subject_manifest(manifest, media_type)
    if not acked:
        tag = fallback_tag(subject)
        found = store.get_manifest(tag)
        if found is not None and not mt.is_index(found[1]):
            raise OperationError(
                f"referrers tag {tag} in {store} holds a {found[1]}, not an image index"
            )
        updated = add_to_referrers_index(found[0] if found else None,
                                         referrer_entry(manifest, media_type))
        if updated is not None:
            store.put_manifest(updated, mt.OCI_INDEX, tag)
    return manifest_digest, acked


def attach_report(
    location: str | Location, report_bytes: bytes, options: Options | None = None, *,
    digest: str | None = None
) -> Descriptor:
    """Store an export report as an artifact whose subject is the image; returns its descriptor."""
    return _attach_document(location, report_bytes, "export report", REPORT_ARTIFACT_TYPE,
                            REPORT_TITLE, options, digest)


def attach_sbom(
    location: str | Location, sbom_bytes: bytes, options: Options | None = None, *,
    digest: str | None = None
) -> Descriptor:
    """Store an SPDX JSON SBOM as an artifact whose subject is the image."""
    return _attach_document(location, sbom_bytes, "SBOM", SBOM_ARTIFACT_TYPE, SBOM_TITLE,
                            options, digest)


def _attach_document(location: str | Location, data: bytes, what: str, artifact_type: str,
                     title: str, options: Options | None, digest: str | None) -> Descriptor:
    """A JSON document (checked to be one) attached with its own type as the blob's."""
    if not isinstance(data, bytes | bytearray):
        raise InvalidInputError(f"the {what} must be bytes")
    parse_object(bytes(data), what)
    attached = attach_artifact(location, bytes(data), artifact_type, options,
                               blob_media_type=artifact_type, title=title, digest=digest)
    return attached.descriptor


def list_referrers(
    location: str | Location, options: Options | None = None, *,
    artifact_type: str | None = None,
    digest: str | None = None,
) -> tuple[Descriptor, list[JSONObject]]:
    """(subject, referrer descriptors): the referrers API first, else the fallback tag."""
    from ..stores.artifactstore import open_store

    store = open_store(location, options)
    subject = store.resolve(digest)
    return subject, referrers_of(store, subject.digest, artifact_type)


def read_artifact_blob(
    location: str | Location, artifact_digest: str, options: Options | None = None, *,
    limit: int = MAX_DOCUMENT * 16
) -> tuple[JSONObject, bytes]:
    """(artifact manifest, its first layer's bytes): e.g. an attached export report."""
    from ..stores.artifactstore import open_store

    store = open_store(location, options)
    wanted = Digest.parse(artifact_digest)
    found = store.get_manifest(str(wanted))
    if found is None:
        raise OperationError(f"no artifact {wanted} in {store}")
    data, _ = found
    if Digest.of_bytes(data) != wanted:
        raise OperationError(f"artifact {wanted} in {store} does not match its digest")
    manifest = parse_object(data, f"artifact {wanted}")
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not layers:
        raise OperationError(f"artifact {wanted} has no layers")
    layer = Descriptor.from_dict(layers[0], f"artifact {wanted.short} layer 0")
    return manifest, store.read_blob(layer, limit)
