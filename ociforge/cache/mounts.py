"""Which repositories of a registry hold which blobs, remembered across runs.

After a push (and a pull) every blob of the image is recorded as held by that
repository, with the time.  A later push to another repository of the same
registry names a repository that holds each blob as the layer's ``source``,
so the push mounts it (``POST ?mount=&from=``, with a token that may pull the
source) instead of uploading it; a refused mount falls back to an upload.
This is what skopeo's blob-info cache and docker's v2 metadata do.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from ..model.digest import Digest
from ..model.image import Image
from ..model.index import Artifact
from ..model.layer import Layer
from ..model.reference import normalize_registry
from ..model.walk import blobs
from .keys import record_name
from .store import Cache

if TYPE_CHECKING:
    from ..remote.auth import Challenge
    from ..remote.transport import Transport

KEEP_REPOSITORIES = 16      # per blob and registry, the most recent


def artifact_blobs(artifact: Artifact) -> Iterator[Digest]:
    """Every blob an artifact names (configs and layers of all its images), once."""
    for blob in blobs(artifact):
        yield blob.digest


def remember_blobs(cache: Cache, registry: str, repository: str,
                   digests: Iterable[Digest]) -> None:
    """``registry/repository`` holds these blobs (now)."""
    now = time.time()
    for digest in digests:
        name = record_name(registry, str(digest))
        doc = cache.record("blobrepos", name, touch=False) or {}
        known = doc.get("repos")
        repos = ({str(k): v for k, v in known.items() if isinstance(v, int | float)}
                 if isinstance(known, dict) else {})
        repos[repository] = now
        kept = dict(sorted(repos.items(), key=lambda kv: -kv[1])[:KEEP_REPOSITORIES])
        cache.put_record("blobrepos", name, {"registry": registry, "digest": str(digest),
                                             "repos": kept})


def holders(cache: Cache, registry: str, digest: Digest) -> list[str]:
    """Repositories of ``registry`` known to hold the blob, most recently seen first."""
    doc = cache.record("blobrepos", record_name(registry, str(digest)))
    repos = doc.get("repos") if doc else None
    if not isinstance(repos, dict):
        return []
    ranked = sorted(((v, str(k)) for k, v in repos.items() if isinstance(v, int | float)),
                    reverse=True)
    return [name for _, name in ranked]


def with_mount_sources(cache: Cache, registry: str, repository: str,
                       artifact: Artifact) -> Artifact:
    """The artifact with each layer that has no source on ``registry`` given one the cache
    knows holds it (another repository of that registry), so the push can mount it."""
    registry = normalize_registry(registry)

    def source_for(layer: Layer) -> Layer:
        if _on(registry, layer.source):
            return layer
        for repo in holders(cache, registry, layer.digest):
            if repo != repository:
                return layer.with_source(f"{registry}/{repo}")
        return layer

    return _map_layers(artifact, source_for)


def _on(registry: str, source: str | None) -> bool:
    if not source or "/" not in source:
        return False
    return normalize_registry(source.partition("/")[0]) == registry


def _map_layers(artifact: Artifact, change: Callable[[Layer], Layer]) -> Artifact:
    if isinstance(artifact, Image):
        layers = tuple(change(layer) for layer in artifact.layers)
        if all(new is old for new, old in zip(layers, artifact.layers, strict=True)):
            return artifact
        return dataclasses.replace(artifact, layers=layers)
    children = tuple((desc, _map_layers(child, change)) for desc, child in artifact.children)
    return dataclasses.replace(artifact, children=children)


def after_transfer(cache: Cache, client: object, registry: str, repository: str,
                   artifact: Artifact, tag: str | None, how: str) -> None:
    """What a pull or push taught: the repository holds the artifact's blobs, the tag names
    its digest, and how the registry was reached (for the re-push check in repush.py)."""
    from .registry import remember_tag
    from .repush import remember_registry

    remember_blobs(cache, registry, repository, artifact_blobs(artifact))
    if tag is not None:
        remember_tag(cache, registry, repository, tag, artifact.digest, how)
    transport = getattr(client, "transport", None)
    if transport is not None:
        challenge = transport.auth.challenge
        remember_registry(cache, registry, str(transport.base_url),
                          None if challenge is None else challenge.scheme,
                          _token_service(transport, challenge))


def _token_service(transport: Transport, challenge: Challenge | None
                   ) -> tuple[str, list[object], str] | None:
    """A Bearer challenge's realm, the origin the transport judged it to be (it would send
    the realm credentials: HTTPS, or plain HTTP on loopback or to an --insecure
    registry), and the service; None when there is none or the transport refuses it."""
    from ..errors import OciforgeError

    if challenge is None or challenge.scheme != "bearer" or not challenge.realm:
        return None
    try:
        origin = transport.check_realm(challenge.realm)
    except OciforgeError:
        return None
    return (challenge.realm, [origin.scheme, origin.host, origin.port],
            challenge.params.get("service", ""))
