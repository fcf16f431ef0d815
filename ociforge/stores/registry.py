"""A registry reference as a Location: ``ociforge copy oci:out ghcr.io/me/app:1`` and back."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..model.index import Artifact
from ..model.reference import Reference, normalize_registry
from ..options import Options, RegistryOptions
from .locations import WriteResult

if TYPE_CHECKING:  # the HTTP stack loads only when a registry is contacted
    from ..remote.client import RegistryClient

_CLIENTS: dict[tuple[str, RegistryOptions, tuple[object, ...]], RegistryClient] = {}
_CLIENTS_LOCK = threading.Lock()


def _credential_sources() -> tuple[object, ...]:
    """Where credentials come from right now: a changed file or variable means a new client."""
    from ..remote.credentials import docker_config_path, podman_auth_paths

    state: list[object] = [os.environ.get("DOCKER_AUTH_CONFIG")]
    for path in [docker_config_path(), *podman_auth_paths()]:
        try:
            st = path.stat()
            state.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            state.append((str(path), None))
    return tuple(state)


def client_for(registry: str, options: RegistryOptions) -> RegistryClient:
    """One client per registry, transport options and credential state in this process.

    Reads and writes to one registry in a command share its connections and
    tokens; a login or logout in between (or another config) gets a fresh client.
    """
    from ..remote.client import RegistryClient

    key = (registry, options, _credential_sources())
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = RegistryClient(registry, options)
            _CLIENTS[key] = client
        return client


@dataclass(frozen=True)
class RegistryLocation:
    reference: Reference

    @classmethod
    def parse(cls, text: str) -> RegistryLocation:
        """``[docker://]REF``; raises InvalidReferenceError (exit 2) on a bad reference."""
        return cls(Reference.parse(text))

    def read(self, options: Options) -> Artifact:
        from ..cache.store import Cache
        from ..remote.pull import pull

        ref = self.reference
        cache = Cache.open(options.cache)
        if cache is None:
            return pull(client_for(ref.registry, options.registry), ref, options)
        from ..cache.mounts import after_transfer
        from ..cache.registry import CachedRegistry

        source = CachedRegistry(normalize_registry(ref.registry), options.registry, cache,
                                options.cache, lambda: client_for(ref.registry, options.registry))
        artifact = pull(source, ref, options)
        if source.connected is not None:
            after_transfer(cache, source.connected, source.registry, ref.repository, artifact,
                           None, "resolved")
        return artifact

    def write(self, artifact: Artifact, options: Options) -> WriteResult:
        from ..cache.store import Cache

        ref = self.reference
        cache = Cache.open(options.cache)
        registry = normalize_registry(ref.registry)
        target = ref.tag if ref.tag is not None else str(artifact.digest)
        if cache is not None and ref.digest in (None, artifact.digest):
            from ..cache.repush import already_served

            if already_served(cache, registry, ref.repository, target, artifact.digest,
                              options.registry):
                return WriteResult(str(artifact.digest), str(ref), artifact.media_type)
        from ..remote.push import push

        client = client_for(ref.registry, options.registry)
        if cache is not None:
            from ..cache.mounts import with_mount_sources

            artifact = with_mount_sources(cache, registry, ref.repository, artifact)
        result = push(client, ref, artifact, options)
        if cache is not None:
            from ..cache.mounts import after_transfer

            after_transfer(cache, client, registry, ref.repository, artifact, target, "pushed")
        return WriteResult(str(result.digest), str(self.reference), result.media_type)

    def __str__(self) -> str:
        return str(self.reference)
