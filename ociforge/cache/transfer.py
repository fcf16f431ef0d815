"""Pulls and pushes through the cache: what a registry location calls (stores/registry.py).

A pull reads manifests and blobs through CachedRegistry (registry.py) and then
remembers where the blobs live; a push is first settled by the remembered
re-push check (repush.py) when it can be, else mounts what the cache knows
another repository holds (mounts.py) and remembers what it pushed.  Without a
cache both are the plain pull and push.  The pipeline asks the re-push check
too (``may_be_served``, ``served_already``): a push that sends nothing needs no
push-access check.
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
    from ..remote.auth import Credentials
    from ..remote.client import RegistryClient

Connect = Callable[[], "RegistryClient"]

_REFUTED = "re-push checks that found the registry not serving the artifact"


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
    if served_already(ref, artifact, options):
        return artifact.digest, artifact.media_type
    registry = normalize_registry(ref.registry)
    target = ref.tag if ref.tag is not None else str(artifact.digest)
    from ..remote.push import push
    from .mounts import after_transfer, with_mount_sources

    client = connect()
    result = push(client, ref, with_mount_sources(cache, registry, ref.repository, artifact),
                  options)
    after_transfer(cache, client, registry, ref.repository, artifact, target, "pushed")
    return result.digest, result.media_type


def may_be_served(ref: Reference, options: Options) -> bool:
    """Whether, once the artifact is known, the cache's re-push check (one HEAD, with
    Basic credentials or a pull token where the registry wants them) may show that
    ``ref`` already serves it.  Local reads only: the
    pipeline then leaves the push-access check until the artifact is known."""
    cache = Cache.open(options.cache)
    if cache is None:
        return False
    from .repush import may_settle

    target = ref.tag if ref.tag is not None else str(ref.digest)
    registry = normalize_registry(ref.registry)
    return may_settle(cache, registry, ref.repository, target, options.registry,
                      credentials=_credentials(registry, options))


def served_already(ref: Reference, artifact: Artifact, options: Options) -> bool:
    """True when the registry confirms that ``ref`` serves ``artifact``: nothing to push.

    A check that said no is not asked again in the same run (``Options.session``):
    the pipeline asks before its push-access check, and the push that follows
    would otherwise repeat the HEAD (and the token GET) for the same answer."""
    cache = Cache.open(options.cache)
    if cache is None or ref.digest not in (None, artifact.digest):
        return False
    refuted: set[tuple[str, str]] = options.session.shared(_REFUTED, set)
    key = (str(ref), str(artifact.digest))
    if key in refuted:
        return False
    from .repush import already_served

    target = ref.tag if ref.tag is not None else str(artifact.digest)
    registry = normalize_registry(ref.registry)
    served = already_served(cache, registry, ref.repository, target, artifact.digest,
                            options.registry, credentials=_credentials(registry, options))
    if not served:
        refuted.add(key)
    return served


def _credentials(registry: str, options: Options) -> Callable[[], Credentials | None]:
    """The credentials for ``registry``, looked up (a credential helper run) once in the
    run (``Options.session``, keyed like client_for's clients by where credentials come
    from, so a login in between is seen): both re-push checks of a run need them."""

    def remembered() -> Credentials | None:
        from ..remote.credentials import credential_sources, lookup

        key = ("re-push check credentials", registry, credential_sources())
        return options.session.shared(key, lambda: lookup(registry))

    return remembered
