"""Registry images through the cache: manifests and blobs by digest, tags resolved by HEAD.

A tag is resolved with a HEAD of its manifest (Docker Hub does not count a
HEAD as a pull); the manifest itself is fetched -- by the digest the HEAD
named -- only when the cache does not hold it.  Everything fetched is kept
by digest, and the tag is recorded with the digest it resolved to and when.
``--offline`` answers from the cache only: a tag means the digest it last
resolved to, and whatever is missing is an error naming it.

Blobs are read from the cache when it holds them (hashed first: a damaged one
is dropped and fetched again) and, for bases, kept while they stream from the
registry (a blob is stored only if its bytes hash to its digest).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, cast

from ..errors import InvalidInputError, NotFoundError
from ..model import mediatypes as mt
from ..model.digest import Digest
from ..model.jsonutil import MAX_DOCUMENT
from ..options import CacheOptions, RegistryOptions
from .keys import record_name
from .store import Cache

if TYPE_CHECKING:
    from ..remote.client import RegistryClient

log = logging.getLogger("ociforge.cache")


def tag_record(cache: Cache, registry: str, repository: str, tag: str) -> dict[str, Any] | None:
    return cache.record("tags", record_name(registry, repository, tag))


def remember_tag(cache: Cache, registry: str, repository: str, tag: str, digest: Digest,
                 how: str) -> None:
    """``registry/repository:tag`` named ``digest`` now (``how``: resolved or pushed)."""
    cache.put_record("tags", record_name(registry, repository, tag), {
        "registry": registry, "repository": repository, "tag": tag, "digest": str(digest),
        "how": how, "time": time.time()})


class CachedRegistry:
    """What a pull needs of a registry (see remote/pull.py), answered from the cache first.

    The registry client is made only when something must be fetched, so an
    ``--offline`` run never connects (nor loads the HTTP stack).
    """

    def __init__(self, registry: str, options: RegistryOptions, cache: Cache,
                 settings: CacheOptions, connect: Callable[[], RegistryClient]):
        self.registry = registry
        self.options = options
        self._cache = cache
        self._settings = settings
        self._connect = connect
        self._client: RegistryClient | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> RegistryClient:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    @property
    def connected(self) -> RegistryClient | None:
        """The client, if anything had to be fetched."""
        return self._client

    # -- manifests -----------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str,
                     accept: str = mt.MANIFEST_ACCEPT) -> tuple[bytes, str, Digest]:
        where = f"{self.registry}/{repository}"
        pinned = _digest_or_none(reference)
        if pinned is not None:
            found = self._cached_manifest(pinned, f"{where}@{pinned}")
            if found is not None:
                return found
            self._online(f"manifest {where}@{pinned}")
            return self._fetch(repository, reference, accept)
        if self._settings.offline:
            return self._offline_tag(repository, reference)
        head = self.client.head_manifest(repository, reference)
        if head is not None and head.digest is not None:
            found = self._cached_manifest(head.digest, f"{where}:{reference}")
            if found is not None:
                remember_tag(self._cache, self.registry, repository, reference, head.digest,
                             "resolved")
                return found
            fetched = self._fetch(repository, str(head.digest), accept)
        else:
            fetched = self._fetch(repository, reference, accept)
        remember_tag(self._cache, self.registry, repository, reference, fetched[2], "resolved")
        return fetched

    def _offline_tag(self, repository: str, tag: str) -> tuple[bytes, str, Digest]:
        shown = f"{self.registry}/{repository}:{tag}"
        record = tag_record(self._cache, self.registry, repository, tag)
        try:
            digest = Digest.parse(record["digest"]) if record else None
        except (InvalidInputError, KeyError, TypeError):
            digest = None
        if digest is None:
            raise NotFoundError(f"--offline: {shown} is not in the cache (it was never "
                                "resolved online)")
        found = self._cached_manifest(digest, shown)
        if found is None:
            raise NotFoundError(f"--offline: the manifest {digest} of {shown} is not in the "
                                "cache")
        stamp = (record or {}).get("time", 0)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(stamp)))
        log.info("%s is %s (as resolved %s)", shown, digest.short, when)
        return found

    def _fetch(self, repository: str, reference: str, accept: str
               ) -> tuple[bytes, str, Digest]:
        data, media_type, digest = self.client.get_manifest(repository, reference, accept)
        name = f"{digest.algorithm}-{digest.hex}"
        if self._cache.add_blob_bytes(data, digest):
            self._cache.put_record("manifests", name, {
                "digest": str(digest), "media_type": media_type, "blobs": [str(digest)]})
        return data, media_type, digest

    def _cached_manifest(self, digest: Digest, shown: str) -> tuple[bytes, str, Digest] | None:
        record = self._cache.record("manifests", f"{digest.algorithm}-{digest.hex}")
        if record is None or not isinstance(record.get("media_type"), str):
            return None
        path = self._cache.verified_blob(digest, None, f"manifest of {shown}")
        if path is None:
            return None
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_DOCUMENT + 1)
        except OSError:
            return None
        if len(data) > MAX_DOCUMENT:
            return None
        log.info("manifest of %s (%s) from the cache", shown, digest.short)
        return data, str(record["media_type"]), digest

    # -- blobs ---------------------------------------------------------------------

    def open_blob(self, repository: str, digest: Digest | str) -> IO[bytes]:
        parsed = digest if isinstance(digest, Digest) else Digest.parse(digest)
        shown = f"blob {parsed.short} of {self.registry}/{repository}"
        if self._cache.has_blob(parsed):
            path = self._cache.verified_blob(parsed, None, shown)
            if path is not None:
                log.info("%s from the cache", shown)
                return open(path, "rb")
        self._online(f"blob {parsed} of {self.registry}/{repository}")
        raw = self.client.open_blob(repository, parsed)
        limit = None if self._settings.keep_pulled_blobs else MAX_DOCUMENT
        return cast(IO[bytes], _Keeping(raw, self._cache, parsed, limit))

    def _online(self, what: str) -> None:
        if self._settings.offline:
            raise NotFoundError(f"--offline: {what} is not in the cache")


class _Keeping:
    """A blob stream that also goes into the cache (kept only if it hashes right at EOF).

    With a ``limit``, only blobs up to that size are kept (configs and such, when the
    command's destination already holds the layers); they are gathered in memory.
    """

    def __init__(self, raw: IO[bytes], cache: Cache, digest: Digest, limit: int | None):
        self._raw = raw
        self._cache = cache
        self._digest = digest
        self._small: bytearray | None = bytearray() if limit is not None else None
        self._limit = limit or 0
        self._writer = cache.blob_writer(digest) if limit is None else None
        self._sink = self._writer.__enter__() if self._writer is not None else None

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            if self._sink is not None:
                self._sink.write(data)
            elif self._small is not None:
                self._small += data
                if len(self._small) > self._limit:
                    self._small = None
        elif n != 0:
            if self._sink is not None:
                self._sink.commit()
            elif self._small is not None:
                self._cache.add_blob_bytes(bytes(self._small), self._digest)
                self._small = None
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            if self._writer is not None:
                self._writer.__exit__(None, None, None)

    def __enter__(self) -> _Keeping:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _digest_or_none(text: str) -> Digest | None:
    if ":" not in text:
        return None
    try:
        return Digest.parse(text)
    except InvalidInputError:
        return None
