"""Options shared by sources and sinks (platform choice, registry transport, cache)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model.platform import Platform


@dataclass(frozen=True)
class RegistryOptions:
    """How to reach registries: TLS, plain HTTP, parallelism, chunking (per registry)."""

    insecure: tuple[str, ...] = ()          # registries allowed over plain HTTP / unverified TLS
    ca_cert: str | None = None              # extra CA bundle for TLS verification
    jobs: int = 4                           # parallel blob transfers
    chunk_size: int | None = None           # force chunked uploads with this chunk size
    retries: int = 5
    timeout: float = 60.0
    # per-registry chunk sizes, (registry, bytes) pairs; they win over ``chunk_size``
    chunk_sizes: tuple[tuple[str, int], ...] = ()

    def chunk_size_for(self, registry: str) -> int | None:
        """The chunk size for uploads to ``registry`` (None: one monolithic PUT)."""
        from .model.reference import normalize_registry

        wanted = normalize_registry(registry.lower())
        for name, size in reversed(self.chunk_sizes):
            if normalize_registry(name.lower()) == wanted:
                return size
        return self.chunk_size


DEFAULT_CACHE_MAX = 10 << 30   # bytes; the cache is pruned (least recently used first) above


@dataclass(frozen=True)
class CacheOptions:
    """The local cache (ociforge.cache): where it lives and how a command may use it.

    ``dir`` None means no cache: the library default.  The CLI resolves a folder
    (``--cache-dir``, $OCIFORGE_CACHE_DIR, $XDG_CACHE_HOME/ociforge,
    ~/.cache/ociforge) and checks it is usable before it sets one here.
    """

    dir: str | None = None
    offline: bool = False                   # registry images from the cache only
    max_size: int = DEFAULT_CACHE_MAX
    keep_pulled_blobs: bool = True          # store registry blobs read (bases); copy does not


@dataclass(frozen=True)
class Options:
    """What a read or write needs beyond the location itself."""

    platform: Platform | None = None        # None: the host's platform
    all_platforms: bool = False             # keep a whole index instead of one platform
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    progress: bool = False
    cache: CacheOptions = field(default_factory=CacheOptions)

    def wanted_platform(self) -> Platform:
        return self.platform or Platform.host()
