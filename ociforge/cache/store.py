"""The cache folder: blobs by digest and small JSON records, shared by processes.

Layout::

    CACHEDIR.TAG                  tells backup tools to skip the folder
    v1/blobs/sha256/<hex>         content by digest (read-only files)
    v1/<kind>/<name>.json         records (kinds: see KINDS)

Several processes share one folder without a lock: every entry is written
under a temporary name in its own folder and renamed into place, so a reader
sees it whole or not at all, and two writers of one entry write the same
thing.  Nothing here is trusted blindly: a blob is hashed again before it is
used (``verified_blob``), a record that does not parse is dropped.

The cache never fails a command: an entry that cannot be read or written is
dropped or skipped (``-v`` says which), and the command goes on as if there
were no cache.  "Least recently used" is the modification time: a hit sets it
to now, and pruning removes the oldest entries first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import InvalidInputError
from ..model.digest import Digest
from ..model.jsonutil import loads
from ..options import DEFAULT_CACHE_MAX, CacheOptions

log = logging.getLogger("ociforge.cache")

FORMAT = "v1"
KINDS = ("layers", "bases", "tables", "manifests", "tags", "blobrepos", "registries", "rootfs")
TAG_NAME = "CACHEDIR.TAG"
TAG_TEXT = (b"Signature: 8a477f597d28d172789f06886806bc55\n"
            b"# This file is a cache directory tag created by ociforge.\n"
            b"# For information about cache directory tags see https://bford.info/cachedir/\n")
RECORD_LIMIT = 1 << 22      # bytes of one record read; a larger one is damaged
AUTO_PRUNE_TO = 0.8         # an automatic prune leaves the cache at 80% of its cap
_FICLONE = 0x40049409       # Linux ioctl: share the source's extents (btrfs, XFS)


@dataclass
class Usage:
    """What ``ociforge cache info`` shows."""

    location: str
    size: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    records: dict[str, int] = field(default_factory=dict)


@dataclass
class PruneResult:
    removed_files: int = 0
    removed_bytes: int = 0
    size_after: int = 0


@dataclass(frozen=True)
class _Item:
    path: Path
    size: int
    used: float
    kind: str       # "blob" or a record kind


class Cache:
    """One cache folder.  Cheap to create: nothing is read or written until asked."""

    def __init__(self, root: str | os.PathLike[str], max_size: int = DEFAULT_CACHE_MAX):
        self.root = Path(root)
        self.base = self.root / FORMAT
        self.max_size = max_size
        self.stored = 0          # bytes this object added (an automatic prune follows)

    @classmethod
    def open(cls, options: CacheOptions) -> Cache | None:
        return None if options.dir is None else cls(options.dir, options.max_size)

    def __str__(self) -> str:
        return str(self.root)

    # -- blobs ---------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> Path:
        return self.base / "blobs" / digest.algorithm / digest.hex

    def has_blob(self, digest: Digest, size: int | None = None) -> bool:
        """A regular file of the right size is there (its content is checked on use)."""
        try:
            info = os.lstat(self.blob_path(digest))
        except OSError:
            return False
        return stat.S_ISREG(info.st_mode) and (size is None or info.st_size == size)

    def verified_blob(self, digest: Digest, size: int | None, what: str) -> Path | None:
        """The blob's path after its bytes were hashed and found right; else None.

        A blob that is missing, of another size or another digest is dropped
        with a warning (``what`` names it), so the caller builds or fetches it
        again.
        """
        path = self.blob_path(digest)
        try:
            with open(path, "rb", buffering=0) as fh:
                info = os.fstat(fh.fileno())
                if not stat.S_ISREG(info.st_mode) or (size is not None
                                                      and info.st_size != size):
                    raise _Corrupt(f"{info.st_size} bytes, expected {size}")
                hasher = hashlib.file_digest(fh, digest.algorithm)
        except FileNotFoundError:
            log.warning("%s (%s) is missing from the cache; it is made again", what,
                        digest.short)
            return None
        except (OSError, ValueError, _Corrupt) as exc:
            log.warning("%s (%s) is damaged in the cache (%s); dropped, it is made again",
                        what, digest.short, exc)
            self.drop_blob(digest)
            return None
        if hasher.hexdigest() != digest.hex:
            log.warning("%s in the cache does not hash to %s; dropped, it is made again",
                        what, digest.short)
            self.drop_blob(digest)
            return None
        self.touch(path)
        return path

    def add_blob_file(self, source: Path, digest: Digest, size: int) -> bool:
        """Put a local file this process built and hashed into the cache (link, clone or copy)."""
        if self.has_blob(digest, size):
            self.touch(self.blob_path(digest))
            return True
        if size > self.max_size * AUTO_PRUNE_TO:
            log.info("%s (%d bytes) is too large for the cache's cap", digest.short, size)
            return False
        target = self.blob_path(digest)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = _temp_name(target)
            try:
                os.link(source, tmp)
            except OSError:
                _clone_or_copy(source, tmp)
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(tmp)
            log.info("could not store %s: %s", digest.short, exc.strerror or exc)
            return False
        self.stored += size
        self.keep_under_cap()
        return True

    def add_blob_bytes(self, data: bytes, digest: Digest) -> bool:
        """Keep a small document (a manifest) if it hashes to ``digest``."""
        if self.has_blob(digest, len(data)):
            self.touch(self.blob_path(digest))
            return True
        with self.blob_writer(digest) as sink:
            sink.write(data)
            return sink.commit()

    @contextlib.contextmanager
    def blob_writer(self, digest: Digest) -> Iterator[_BlobSink]:
        """A sink whose bytes become the blob only if they hash to ``digest`` (see _BlobSink)."""
        target = self.blob_path(digest)
        sink = _BlobSink(self, digest, target)
        try:
            yield sink
        finally:
            sink.discard()

    def drop_blob(self, digest: Digest) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.blob_path(digest))

    # -- records -------------------------------------------------------------------

    def _record_path(self, kind: str, name: str) -> Path:
        assert kind in KINDS, kind
        return self.base / kind / f"{name}.json"

    def record(self, kind: str, name: str, touch: bool = True) -> dict[str, Any] | None:
        """A record, or None (absent; one that does not parse is dropped)."""
        path = self._record_path(kind, name)
        try:
            with open(path, "rb") as fh:
                data = fh.read(RECORD_LIMIT)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.info("cannot read %s: %s", path, exc.strerror)
            return None
        try:
            doc = loads(data, f"{kind} record", RECORD_LIMIT)
            if not isinstance(doc, dict):
                raise ValueError("not an object")
        except (ValueError, InvalidInputError):
            log.warning("dropped a damaged %s record (%s)", kind, path.name)
            self.drop_record(kind, name)
            return None
        if touch:
            self.touch(path)
        return doc

    def put_record(self, kind: str, name: str, doc: dict[str, Any]) -> None:
        path = self._record_path(kind, name)
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = _temp_name(path)
            with open(tmp, "xb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(tmp)
            log.info("could not store a %s record: %s", kind, exc.strerror or exc)
            return
        self.stored += len(data)

    def drop_record(self, kind: str, name: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._record_path(kind, name))

    @staticmethod
    def touch(path: Path) -> None:
        """Mark an entry used now (what least-recently-used pruning goes by)."""
        with contextlib.suppress(OSError):
            os.utime(path)

    # -- size ----------------------------------------------------------------------

    def _items(self) -> list[_Item]:
        items: list[_Item] = []
        blobs = self.base / "blobs"
        for folder, kind in [(blobs / "sha256", "blob"), (blobs / "sha512", "blob"),
                             *((self.base / k, k) for k in KINDS)]:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):  # what it takes on disk (a record: a block)
                    size = max(info.st_size, info.st_blocks * 512)
                    items.append(_Item(Path(entry.path), size, info.st_mtime, kind))
        return items

    def usage(self) -> Usage:
        out = Usage(str(self.root), records={k: 0 for k in KINDS})
        for item in self._items():
            out.size += item.size
            if item.kind == "blob":
                out.blobs += 1
                out.blob_bytes += item.size
            else:
                out.records[item.kind] += 1
        return out

    def prune(self, target: int | None = None, everything: bool = False) -> PruneResult:
        """Remove entries, least recently used first, until at most ``target`` bytes stay.

        ``everything`` empties the cache.  Records that name a removed blob go too.
        """
        limit = 0 if everything else (self.max_size if target is None else target)
        items = sorted(self._items(), key=lambda item: item.used)
        size = sum(item.size for item in items)
        result = PruneResult()
        removed_blobs = False
        for item in items:
            if size <= limit:
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(item.path)
                result.removed_files += 1
                result.removed_bytes += item.size
            size -= item.size
            removed_blobs = removed_blobs or item.kind == "blob"
        if removed_blobs and not everything:
            result.removed_files += self._drop_orphans()
        for path in stale_temp_files(self):
            with contextlib.suppress(OSError):
                os.unlink(path)
        if everything:
            import shutil

            for kind in ("blobs", *KINDS):
                shutil.rmtree(self.base / kind, ignore_errors=True)
            size = 0
        result.size_after = max(0, size)
        return result

    def _drop_orphans(self) -> int:
        """Records that name a blob no longer here (pruned by us or by another process)."""
        dropped = 0
        for kind in ("layers", "bases", "tables", "manifests", "rootfs"):
            try:
                entries = list(os.scandir(self.base / kind))
            except OSError:
                continue
            for entry in entries:
                try:
                    with open(entry.path, "rb") as fh:
                        doc = loads(fh.read(RECORD_LIMIT), f"{kind} record", RECORD_LIMIT)
                    names = [Digest.parse(d) for d in doc.get("blobs", [])]
                except (OSError, ValueError, AttributeError, TypeError, InvalidInputError):
                    names = []
                    doc = None
                if doc is None or any(not self.has_blob(d) for d in names):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        dropped += 1
        return dropped

    def keep_under_cap(self) -> None:
        """After a blob was stored: prune automatically when the cache is over its cap."""
        if not self.stored:
            return
        self.stored = 0
        try:
            usage = sum(item.size for item in self._items())
            if usage > self.max_size:
                result = self.prune(int(self.max_size * AUTO_PRUNE_TO))
                log.info("pruned %d entries (%d bytes) to stay under %d bytes",
                         result.removed_files, result.removed_bytes, self.max_size)
        except OSError as exc:
            log.info("could not prune: %s", exc)


class _Corrupt(Exception):
    pass


class _BlobSink:
    """Collects a blob while it streams elsewhere; ``commit()`` keeps it if it hashes right."""

    def __init__(self, cache: Cache, digest: Digest, target: Path):
        self._cache = cache
        self._digest = digest
        self._target = target
        self._hasher = digest.new_hasher()
        self._size = 0
        self._fh: IO[bytes] | None = None
        self._tmp: Path | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = _temp_name(target)
            self._fh = open(self._tmp, "xb")  # noqa: SIM115 - closed in commit/discard
        except OSError as exc:
            log.info("cannot store %s: %s", digest.short, exc.strerror or exc)
            self.discard()

    def write(self, data: bytes) -> None:
        if self._fh is None:
            return
        try:
            self._fh.write(data)
        except OSError as exc:
            log.info("cannot store %s: %s", self._digest.short, exc.strerror or exc)
            self.discard()
            return
        self._hasher.update(data)
        self._size += len(data)

    def commit(self) -> bool:
        if self._fh is None or self._tmp is None:
            return False
        try:
            self._fh.close()
            self._fh = None
            if self._hasher.hexdigest() != self._digest.hex:
                return False
            os.chmod(self._tmp, 0o444)
            os.replace(self._tmp, self._target)
            self._tmp = None
        except OSError as exc:
            log.info("cannot store %s: %s", self._digest.short, exc.strerror or exc)
            return False
        finally:
            self.discard()
        self._cache.stored += self._size
        self._cache.keep_under_cap()
        return True

    def discard(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
            self._tmp = None


def _temp_name(target: Path) -> Path:
    """A fresh name next to ``target`` (same file system: the rename is atomic)."""
    return target.parent / f".{target.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"


def _clone_or_copy(source: Path, target: Path) -> None:
    """Copy a file, sharing its extents where the file system can (reflink)."""
    import fcntl

    with open(source, "rb") as src, open(target, "xb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
            return
        except OSError:
            pass
        copy_range = getattr(os, "copy_file_range", None)
        if copy_range is not None:
            try:
                while copy_range(src.fileno(), dst.fileno(), 1 << 30):
                    pass
                return
            except OSError:
                dst.seek(0)
                dst.truncate()
                src.seek(0)
        import shutil

        shutil.copyfileobj(src, dst, 1 << 20)


def stale_temp_files(cache: Cache, older_than: float = 3600.0) -> Iterator[Path]:
    """Temporary files a killed process left behind (for prune)."""
    now = time.time()
    for folder in [cache.base / "blobs" / "sha256", *(cache.base / k for k in KINDS)]:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                        yield Path(entry.path)
