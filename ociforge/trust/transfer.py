"""Handing an image over with what is attached to it: signatures, attestations, referrers.

``copy_attachments`` copies, for each subject digest (an image, an index and
its children), from one ArtifactStore to another (layout or registry, either
way round):

* cosign's tags ``sha256-<hex>.sig``, ``.att`` and ``.sbom``: the manifest and its
  blobs, bytes unchanged.  When the destination already has a different ``.sig``
  for that image (it was signed there too), the signatures are merged, as
  ``ociforge sign`` adds one: none is lost;
* every referrer (export reports, SBOMs; from the referrers API or the
  ``sha256-<hex>`` fallback index): the manifest and its blobs (an index
  referrer with its child manifests), stored by digest and made findable at
  the destination (its referrers API, or the fallback index kept there);
* and, in turn, what is attached to those (a signature on an SBOM), a few
  levels deep.

So ``verify-signature`` and ``referrers`` give the same answers at the
destination as at the source.  Blobs are small documents (signature payloads,
reports, SBOMs) and are moved whole, up to ``MAX_ATTACHMENT_BLOB`` each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import OperationError
from ..model import mediatypes as mt
from ..model.descriptor import Descriptor
from ..model.digest import Digest
from ..model.jsonutil import MAX_DOCUMENT, JSONObject, parse_object
from ..stores.referrers import referrers_of
from ..stores.store import ArtifactStore
from .referrers import put_referrer
from .sign import parse_signature_manifest, signature_documents, signature_tag

MAX_ATTACHMENT_BLOB = MAX_DOCUMENT * 16
COSIGN_SUFFIXES = ("sig", "att", "sbom")
MAX_DEPTH = 4          # attachments of attachments of ... of the image
MAX_CHILDREN = 256     # manifests an index referrer may name


@dataclass(frozen=True)
class CopiedAttachment:
    """One attachment now at the destination: its manifest, the image it belongs to,
    and under which tag (cosign's) or as a referrer (``tag`` None)."""

    subject: str
    digest: str
    media_type: str
    artifact_type: str | None
    tag: str | None
    location: str
    merged: bool = False    # a .sig merged with the destination's own signatures

    def to_dict(self) -> JSONObject:
        out: JSONObject = {"subject": self.subject, "digest": self.digest,
                           "mediaType": self.media_type, "tag": self.tag,
                           "location": self.location, "merged": self.merged}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out


def copy_attachments(source: ArtifactStore, destination: ArtifactStore,
                     subjects: Iterable[Digest]) -> list[CopiedAttachment]:
    """Copy what is attached to each subject (and to those attachments); see above."""
    copied: list[CopiedAttachment] = []
    seen: set[Digest] = set()
    level = list(dict.fromkeys(subjects))
    with destination.locked():
        for _ in range(MAX_DEPTH):
            following: list[Digest] = []
            for subject in level:
                if subject in seen:
                    continue
                seen.add(subject)
                for item in _cosign_tags(source, destination, subject):
                    copied.append(item)
                    following.append(Digest.parse(item.digest))
                for item in _referrers(source, destination, subject):
                    copied.append(item)
                    following.append(Digest.parse(item.digest))
            level = following
            if not level:
                break
    return copied


def _cosign_tags(source: ArtifactStore, destination: ArtifactStore, subject: Digest
                 ) -> list[CopiedAttachment]:
    out = []
    for suffix in COSIGN_SUFFIXES:
        tag = signature_tag(subject, suffix)
        found = source.get_manifest(tag)
        if found is None:
            continue
        data, media_type = found
        existing = destination.get_manifest(tag)
        merged = False
        if existing is not None and existing[0] == data:
            pass  # already there, byte for byte
        elif existing is not None and suffix == "sig":
            data = _merged_signatures(source, destination, existing[0], data)
            media_type, merged = mt.OCI_MANIFEST, True
        else:
            _copy_blobs(source, destination, data)
        digest = destination.put_manifest(data, media_type, tag)
        out.append(CopiedAttachment(str(subject), str(digest), media_type,
                                    _artifact_type(data), tag, str(destination), merged))
    return out


def _merged_signatures(source: ArtifactStore, destination: ArtifactStore, theirs: bytes,
                       ours: bytes) -> bytes:
    """The destination's signature manifest plus every signature of ours it lacks."""
    kept = parse_signature_manifest(theirs, destination.read_blob)
    have = {(layer.digest, layer.signature) for layer in kept}
    added = [layer for layer in parse_signature_manifest(ours, source.read_blob)
             if (layer.digest, layer.signature) not in have]
    for layer in added:
        destination.put_blob(layer.payload, mt.COSIGN_SIMPLESIGNING)
    manifest, config = signature_documents([*kept, *added])
    destination.put_blob(config, mt.OCI_CONFIG)
    return manifest


def _referrers(source: ArtifactStore, destination: ArtifactStore, subject: Digest
               ) -> list[CopiedAttachment]:
    out = []
    for entry in referrers_of(source, subject, None):
        desc = Descriptor.from_dict(entry, f"referrer of {subject.short}")
        data, media_type = _manifest(source, desc.digest)
        _copy_manifest_tree(source, destination, data, media_type)
        digest, _ = put_referrer(destination, subject, data, media_type)
        out.append(CopiedAttachment(str(subject), str(digest), media_type,
                                    _artifact_type(data), None, str(destination)))
    return out


def _manifest(source: ArtifactStore, digest: Digest) -> tuple[bytes, str]:
    found = source.get_manifest(str(digest))
    if found is None:
        raise OperationError(f"referrer {digest} is listed in {source} but not there")
    data, media_type = found
    if Digest.of_bytes(data) != digest:
        raise OperationError(f"referrer {digest} in {source} does not match its digest")
    return data, media_type


def _copy_manifest_tree(source: ArtifactStore, destination: ArtifactStore, data: bytes,
                        media_type: str) -> None:
    """The blobs of a manifest, or the child manifests (and their blobs) of an index."""
    if not mt.is_index(media_type):
        _copy_blobs(source, destination, data)
        return
    doc = parse_object(data, "referrer index")
    children = doc.get("manifests")
    for i, item in enumerate(children if isinstance(children, list) else []):
        if i >= MAX_CHILDREN:
            raise OperationError(f"a referrer index in {source} names more than "
                                 f"{MAX_CHILDREN} manifests")
        child = Descriptor.from_dict(item, f"referrer index entry {i}")
        child_data, child_type = _manifest(source, child.digest)
        _copy_manifest_tree(source, destination, child_data, child_type)
        destination.put_manifest(child_data, child_type, None)


def _copy_blobs(source: ArtifactStore, destination: ArtifactStore, manifest: bytes) -> None:
    """The config and layers a manifest names, each read whole (verified) and stored."""
    doc = parse_object(manifest, "attachment manifest")
    listed: list[Any] = []
    if isinstance(doc.get("config"), dict):
        listed.append(doc["config"])
    for key in ("layers", "blobs"):
        if isinstance(doc.get(key), list):
            listed += [item for item in doc[key] if isinstance(item, dict)]
    for i, item in enumerate(listed):
        desc = Descriptor.from_dict(item, f"attachment blob {i}")
        stored = destination.put_blob(source.read_blob(desc, MAX_ATTACHMENT_BLOB),
                                      desc.media_type)
        if stored.digest != desc.digest:
            raise OperationError(f"blob {desc.digest} arrived as {stored.digest}")


def _artifact_type(manifest: bytes) -> str | None:
    doc = parse_object(manifest, "attachment manifest")
    kind = doc.get("artifactType")
    if isinstance(kind, str):
        return kind
    config = doc.get("config")
    media_type = config.get("mediaType") if isinstance(config, dict) else None
    return media_type if isinstance(media_type, str) else None
