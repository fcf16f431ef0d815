"""Finding what refers to a manifest by ``subject`` (OCI 1.1 referrers) in a store.

A registry with the referrers API lists them itself; elsewhere (registry 2.8,
OCI layouts) they are listed in the image index under the referrers tag schema's
tag ``sha256-<hex>``.  Attaching and copying them is trust/referrers.py and
trust/transfer.py; removing an image takes them with it (registryremove.py).
"""

from __future__ import annotations

from collections.abc import Collection

from ..model import mediatypes as mt
from ..model.digest import Digest
from ..model.jsonutil import JSONObject, parse_object
from .refnames import attachment_tag
from .store import ArtifactStore


def referrers_of(store: ArtifactStore, digest: Digest, artifact_type: str | None = None, *,
                 tags: Collection[str] | None = None) -> list[JSONObject]:
    """The referrer descriptors of ``digest`` in a store: its referrers API, else the
    ``sha256-<hex>`` fallback index (missing or not an index: none), sorted by digest.

    ``tags``, the repository's tags where the caller has listed them already, spares
    the request for a fallback tag that is not among them."""
    found = store.referrers(digest, artifact_type)
    if found is None:
        found = []
        fallback = attachment_tag(digest)
        tagged = None if tags is not None and fallback not in tags else \
            store.get_manifest(fallback)
        if tagged is not None and mt.is_index(tagged[1]):
            doc = parse_object(tagged[0], "referrers index")
            listed = doc.get("manifests")
            found = [m for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []
    if artifact_type is not None:
        found = [m for m in found if m.get("artifactType") == artifact_type]
    return sorted(found, key=lambda m: str(m.get("digest")))
