"""A base's rootfs index and inventory findings, kept by the digests of its layers.

Exporting a rootfs reads every base layer to index the base's files (and to
take its inventory on the way).  Both depend only on those layers (by digest,
in order) and on the code that reads them, so they are kept here: the next
export from a rootfs made of the same base reads no base layer at all, unless
some file's content must be compared (then only those files are hashed, from
the layers).  The index is kept without content digests, which depend on the
rootfs.  Both documents are blobs (hashed again before use); the record names
them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InvalidInputError
from ..model.digest import Digest
from ..model.layer import Layer
from .fingerprint import code_fingerprint
from .keys import record_name
from .store import Cache

log = logging.getLogger("ociforge.cache")

FORMAT = "rootfs-1"
READERS = ("ociforge.layers.delta", "ociforge.layers.tarsafe", "ociforge.layers.decompress")


@dataclass(frozen=True)
class KeptIndex:
    index: bytes
    warnings: tuple[str, ...]
    inventory: bytes | None         # the base layers' inventory findings, when taken


def index_key(layers: Sequence[Layer], scanners: tuple[str, ...]) -> str:
    """``scanners``: the modules (by name) whose code decides the inventory findings."""
    return record_name(FORMAT, code_fingerprint(scanners + READERS),
                       [[str(layer.digest), layer.media_type] for layer in layers])


def load(cache: Cache, key: str) -> KeptIndex | None:
    doc = cache.record("rootfs", key)
    if doc is None:
        return None
    try:
        index = _blob(cache, doc["index"], "kept rootfs index")
        inventory = None if doc.get("inventory") is None else \
            _blob(cache, doc["inventory"], "kept base inventory")
        warnings = tuple(str(w) for w in doc["warnings"])
    except (KeyError, TypeError, ValueError, InvalidInputError):
        cache.drop_record("rootfs", key)
        return None
    if index is None or (doc.get("inventory") is not None and inventory is None):
        cache.drop_record("rootfs", key)
        return None
    log.info("the base's rootfs index reused from the cache")
    return KeptIndex(index, warnings, inventory)


def store(cache: Cache, key: str, index: bytes, warnings: Sequence[str],
          inventory: bytes | None) -> None:
    names: list[dict[str, object] | None] = []
    for data in (index, inventory):
        if data is None:
            names.append(None)
            continue
        digest = Digest.of_bytes(data)
        if not cache.add_blob_bytes(data, digest):
            return
        names.append({"digest": str(digest), "size": len(data)})
    cache.put_record("rootfs", key, {
        "format": FORMAT, "index": names[0], "inventory": names[1],
        "warnings": list(warnings),
        "blobs": [name["digest"] for name in names if name is not None]})


def _blob(cache: Cache, doc: dict[str, object], what: str) -> bytes | None:
    digest = Digest.parse(str(doc["digest"]))
    size = doc["size"]
    if not isinstance(size, int):
        raise TypeError("size")
    path = cache.verified_blob(digest, size, what)
    if path is None:
        return None
    with open(path, "rb") as fh:
        return fh.read()
