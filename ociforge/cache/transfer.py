"""Pulls and pushes through the cache: what a registry location calls (stores/registry.py).

A pull reads manifests and blobs through CachedRegistry (registry.py) and then
remembers where the blobs live; a push is first settled by the remembered
re-push check (repush.py) when it can be, else mounts what the cache knows
another repository holds (mounts.py) and remembers what it pushed.  Without a
cache both are the plain pull and push.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..model.digest import Digest
from ..model.index import Artifact
from ..model.reference import Reference, normalize_registry
from ..options import Options
from .store import Cache

if TYPE_CHECKING:
    from ..remote.client import RegistryClient

Connect = Callable[[], "RegistryClient"]


def pull_cached(ref: Reference, options: Options, connect: Connect) -> Artifact:
    from ..remote.pull import pull

    cache = Cache.open(options.cache)
    if cache is None:
        return pull(connect(), ref, options)
    from .mounts import after_transfer
    from .registry import CachedRegistry

    source = CachedRegistry(normalize_registry(ref.registry), options.registry, cache,
                            options.cache, connect)
    artifact = pull(source, ref, options)
    if source.connected is not None:
        after_transfer(cache, source.connected, source.registry, ref.repository, artifact,
                       None, "resolved")
    return artifact


def push_cached(ref: Reference, artifact: Artifact, options: Options,
                connect: Connect) -> tuple[Digest, str]:
    """Push ``artifact`` to ``ref``: (the digest the registry holds, its media type).

    The HTTP stack is imported only after the re-push check could not settle it.
    """
    cache = Cache.open(options.cache)
    if cache is None:
        from ..remote.push import push

        result = push(connect(), ref, artifact, options)
        return result.digest, result.media_type
    registry = normalize_registry(ref.registry)
    target = ref.tag if ref.tag is not None else str(artifact.digest)
    if ref.digest in (None, artifact.digest):
        from .repush import already_served

        if already_served(cache, registry, ref.repository, target, artifact.digest,
                          options.registry):
            return artifact.digest, artifact.media_type
    from ..remote.push import push
    from .mounts import after_transfer, with_mount_sources

    client = connect()
    result = push(client, ref, with_mount_sources(cache, registry, ref.repository, artifact),
                  options)
    after_transfer(cache, client, registry, ref.repository, artifact, target, "pushed")
    return result.digest, result.media_type
