"""Options shared by sources, sinks and pipelines, and the one place the environment is read.

The library never looks at the process environment behind a caller's back:
``Options()`` is the same on every machine.  ``Options.from_env()`` is what the
command line starts from (``OCIFORGE_TIMEOUT``, ``OCIFORGE_RETRIES``,
``OCIFORGE_RETRY_BASE``, ``OCIFORGE_CHUNK_SIZE``, ``OCIFORGE_CACHE_MAX_SIZE``,
``SOURCE_DATE_EPOCH``); its flags are then laid over it.  Every other read
of a variable goes through :func:`environ_value`, so ``grep environ_value`` lists
them all.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeAlias, TypeVar, cast

from .errors import InvalidInputError
from .model.platform import Platform

if TYPE_CHECKING:
    from .progress.events import ProgressCallback

T = TypeVar("T")

Compression: TypeAlias = Literal["gzip", "zstd", "none"]
"""Layer compression: gzip (what every tool reads), zstd (OCI only) or none."""

ImageFormat: TypeAlias = Literal["oci", "docker"]
"""The media-type family of a written image: OCI, or Docker schema 2."""

COMPRESSIONS: tuple[Compression, ...] = ("gzip", "zstd", "none")
IMAGE_FORMATS: tuple[ImageFormat, ...] = ("oci", "docker")

MAX_CHUNK = 1 << 30          # a chunk is held in memory while it is sent
MAX_EPOCH = 0o77777777777    # what a ustar mtime field holds (year 4147)

TIMEOUT_RANGE = (0.1, 86400.0)
RETRIES_RANGE = (0, 100)


def environ_value(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of one environment variable: every read in ociforge comes through here."""
    return (os.environ if environ is None else environ).get(name)


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
    retry_base: float = 0.5                 # first backoff delay in seconds (doubles per retry)

    def chunk_size_for(self, registry: str) -> int | None:
        """The chunk size for uploads to ``registry`` (None: one monolithic PUT)."""
        from .model.reference import normalize_registry

        wanted = normalize_registry(registry.lower())
        for name, size in reversed(self.chunk_sizes):
            if normalize_registry(name.lower()) == wanted:
                return size
        return self.chunk_size

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RegistryOptions:
        """Defaults, with OCIFORGE_TIMEOUT, OCIFORGE_RETRIES, OCIFORGE_RETRY_BASE and
        OCIFORGE_CHUNK_SIZE applied; a malformed value is bad input naming the variable."""
        timeout = _env_number(environ, "OCIFORGE_TIMEOUT", float, *TIMEOUT_RANGE)
        retries = _env_number(environ, "OCIFORGE_RETRIES", int, *RETRIES_RANGE)
        retry_base = _env_number(environ, "OCIFORGE_RETRY_BASE", float, 0.0, 60.0)
        items = [(item, "$OCIFORGE_CHUNK_SIZE")
                 for item in (environ_value("OCIFORGE_CHUNK_SIZE", environ) or "").split(",")
                 if item.strip()]
        chunk_size, chunk_sizes = parse_chunk_sizes(items)
        base = cls()
        return cls(
            timeout=base.timeout if timeout is None else float(timeout),
            retries=base.retries if retries is None else int(retries),
            retry_base=base.retry_base if retry_base is None else float(retry_base),
            chunk_size=chunk_size,
            chunk_sizes=chunk_sizes,
        )


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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CacheOptions:
        """No cache folder yet (a command that uses one resolves it, see
        ociforge.cache.location), and $OCIFORGE_CACHE_MAX_SIZE (e.g. 20G) as the cap."""
        text = (environ_value("OCIFORGE_CACHE_MAX_SIZE", environ) or "").strip()
        if not text:
            return cls()
        try:
            return cls(max_size=parse_size(text))
        except InvalidInputError as exc:
            raise InvalidInputError(f"$OCIFORGE_CACHE_MAX_SIZE: {exc}") from None


class Session:
    """What the calls of one run share, made on first use: the registry clients (their
    connections and tokens), so that a command's reads and writes to one registry reuse
    them.

    Every Options has one; ``dataclasses.replace(options, ...)`` keeps it, and a new
    ``Options()`` starts its own, so two runs in one process share nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[Hashable, object] = {}

    def shared(self, key: Hashable, make: Callable[[], T]) -> T:
        """The object made for ``key`` in this session (``make()`` the first time)."""
        with self._lock:
            if key not in self._made:
                self._made[key] = make()
            return cast(T, self._made[key])


@dataclass(frozen=True)
class Options:
    """What a read, write or pipeline needs beyond the locations themselves.

    ``on_progress`` is called with every progress event of the run (see
    ociforge.progress; one call at a time, though transfers run on several
    threads: it is wrapped so), and setting ``cancel`` stops the run with
    ``errors.Cancelled``, leaving nothing half-written.  ``session`` holds what the
    run's calls share (registry clients); options derived with ``replace`` share it.
    """

    platform: Platform | None = None        # None: the host's platform
    all_platforms: bool = False             # keep a whole index instead of one platform
    # two or more platforms: an index holding exactly those (``platform`` is then None)
    platforms: tuple[Platform, ...] = ()
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    source_date_epoch: int | None = None    # file mtimes and `created`; None: 0
    cache: CacheOptions = field(default_factory=CacheOptions)
    on_progress: ProgressCallback | None = field(default=None, compare=False)
    cancel: threading.Event | None = field(default=None, compare=False)
    session: Session = field(default_factory=Session, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.on_progress is not None:
            from .threads import serialised

            object.__setattr__(self, "on_progress", serialised(self.on_progress))

    def wanted_platform(self) -> Platform:
        return self.platform or Platform.host()

    @property
    def picks_platforms(self) -> bool:
        """An explicit choice of one platform or several (not ``all``, not the default)."""
        return not self.all_platforms and (self.platform is not None or bool(self.platforms))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Options:
        """Options as the environment sets them (what the command line starts from).

        ``SOURCE_DATE_EPOCH`` gives the timestamp, the ``OCIFORGE_*`` variables the
        registry transport (:meth:`RegistryOptions.from_env`) and the cache's size cap
        (:meth:`CacheOptions.from_env`; no cache folder: commands pick one).
        """
        text = (environ_value("SOURCE_DATE_EPOCH", environ) or "").strip()
        epoch = None
        if text:
            if not text.isascii() or not text.isdigit():
                raise InvalidInputError("SOURCE_DATE_EPOCH must be a whole number of seconds "
                                        f"since 1970, not {text[:40]!r}")
            epoch = check_epoch(int(text), "SOURCE_DATE_EPOCH")
        return cls(registry=RegistryOptions.from_env(environ), source_date_epoch=epoch,
                   cache=CacheOptions.from_env(environ))


def check_epoch(value: int, what: str = "source date epoch") -> int:
    """A timestamp ociforge can write into tar headers and RFC 3339 dates."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{what} must be an integer, not {value!r}")
    if not 0 <= value <= MAX_EPOCH:
        raise InvalidInputError(f"{what} {value} is out of range (0..{MAX_EPOCH})")
    return value


def parse_size(text: str) -> int:
    """``4M``, ``512k``, ``1GiB`` or a plain number of bytes (positive)."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    raw = text.strip().lower().removesuffix("b").removesuffix("i")
    mult = 1
    if raw and raw[-1] in units:
        mult = units[raw[-1]]
        raw = raw[:-1]
    if not raw.isdigit() or int(raw) <= 0:
        raise InvalidInputError(f"size {text!r} is not a positive number of bytes (e.g. 4M)")
    return int(raw) * mult


def parse_chunk_sizes(
    items: Iterable[tuple[str, str]],
    start: tuple[int | None, tuple[tuple[str, int], ...]] = (None, ()),
) -> tuple[int | None, tuple[tuple[str, int], ...]]:
    """(size for every registry, per-registry sizes) from ``(item, origin)`` pairs.

    Each item is ``SIZE`` (every registry) or ``REGISTRY=SIZE``; ``origin`` names
    where it came from in errors.  Items are applied over ``start`` in order: a
    later item wins over an earlier one for the same registry, and a registry's
    own size wins over the size for every registry.
    """
    from .model.reference import is_registry_host

    default, initial = start
    per_registry: dict[str, int] = dict(initial)
    for item, origin in items:
        name, sep, size_text = item.strip().rpartition("=")
        name = name.strip()
        if sep and not is_registry_host(name):
            raise InvalidInputError(f"{origin} {item.strip()!r}: {name!r} is not a registry "
                                    "host[:port] (e.g. ghcr.io=4M)")
        try:
            size = parse_size(size_text)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{origin} {item.strip()!r}: {exc}") from None
        if size > MAX_CHUNK:
            raise InvalidInputError(f"{origin} {item.strip()!r}: a chunk is held in memory; "
                                    "at most 1G")
        if sep:
            per_registry.pop(name.lower(), None)    # re-insert: the latest item is last
            per_registry[name.lower()] = size
        else:
            default = size
    return default, tuple(per_registry.items())


def check_number(value: float, what: str, low: float, high: float) -> float:
    """``value`` if ``low <= value <= high``, else bad input naming ``what``."""
    if not low <= value <= high:
        raise InvalidInputError(f"{what} must be between {low:g} and {high:g}")
    return value


def _env_number(environ: Mapping[str, str] | None, name: str, kind: type[int] | type[float],
                low: float, high: float) -> float | None:
    text = environ_value(name, environ)
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise InvalidInputError(f"${name}={text!r} is not a number") from None
    return check_number(value, f"${name}", low, high)
