"""Deterministic, parallel compression of layer streams (reading: decompress.py).

gzip: the stream is cut into fixed 1 MiB blocks; each block is deflated on its
own (with the previous block's last 32 KiB as preset dictionary, ending in a
sync flush), and the pieces are concatenated into ONE gzip member (pigz's
scheme).  Block boundaries depend only on the data, never on the number of
threads or on how callers chunk their writes, so the output is byte-identical
for any thread count.  ISA-L (``isal``) does the deflating at a pinned level;
where it is missing, zlib does (deterministic too, but different bytes).

zstd: ``zstandard`` at pinned level 3 with ``threads >= 1`` (libzstd's
multithreaded mode, whose output does not depend on the thread count; the
single-threaded mode ``threads=0`` produces different bytes, so we never use it).
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from ..errors import InvalidInputError
from ..options import COMPRESSIONS, Compression, environ_value
from ..threads import BackgroundWriter
from .decompress import BoundedReader, open_decompressed, sniff

_deflate_lib: Any
try:  # ISA-L is a declared dependency; zlib keeps us working without it.
    from isal import isal_zlib as _deflate_lib

    HAVE_ISAL = True
except ImportError:  # pragma: no cover - exercised only where isal is absent
    _deflate_lib = zlib
    HAVE_ISAL = False

GZIP_BLOCK_SIZE = 1 << 20
# ISA-L level 1 deflates ~4x faster than zlib -1 at a similar ratio.
GZIP_LEVEL = 1
ZSTD_LEVEL = 3
_WINDOW = 32 * 1024
# magic 1f8b, method deflate, no flags, mtime 0, xfl 0, os 255 (unknown)
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_FINAL_EMPTY_BLOCK = b"\x03\x00"


class Sink(Protocol):
    def write(self, data: bytes) -> Any: ...


class StreamCompressor(Protocol):
    """Accepts the uncompressed stream; ``finish()`` ends it (the sink stays open)."""

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def finish(self) -> None: ...

    def abort(self) -> None: ...


def default_threads() -> int:
    """min(usable CPUs, 4): enough to outrun the hashing, never a digest input."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


def _deflate_block(
    block: bytes | bytearray, zdict: bytes | bytearray, level: int, local: threading.local
) -> tuple[bytes, int]:
    """Raw deflate of one block, ending byte-aligned with a sync flush; and its CRC-32.

    ``local`` is the writer's per-thread store of the compressor it reuses (the writer's
    level is fixed)."""
    reusable = getattr(_deflate_lib, "_ParallelCompress", None)
    if reusable is not None and len(block) <= GZIP_BLOCK_SIZE:
        # ISA-L's per-thread compressor (what igzip_threaded uses) reuses its buffers
        # (a fresh compressobj per block costs ~20% more CPU) and deflates a block in
        # one call.  compressobj's compress()+flush() may cut deflate blocks elsewhere,
        # so the fallback below gives other (equally valid, deterministic) bytes.
        compressor = getattr(local, "compressor", None)
        if compressor is None:
            room = 2 * GZIP_BLOCK_SIZE + 500 if level == 0 else GZIP_BLOCK_SIZE * 11 // 10
            compressor = local.compressor = reusable(buffersize=room, level=level)
        compressed, crc = compressor.compress_and_crc(block, zdict)
        return bytes(compressed), crc
    if zdict:
        c = _deflate_lib.compressobj(level, zlib.DEFLATED, -15, 8, 0, zdict)
    else:
        c = _deflate_lib.compressobj(level, zlib.DEFLATED, -15)
    return bytes(c.compress(block) + c.flush(zlib.Z_SYNC_FLUSH)), _deflate_lib.crc32(block)


def _crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of A+B from crc(A), crc(B) and len(B) (zlib's crc32_combine)."""
    combine = getattr(_deflate_lib, "crc32_combine", None)
    if combine is not None:
        return int(combine(crc1, crc2, len2))
    # GF(2) "shift crc1 by len2 zero bytes" via x^(8*len2) mod P, then xor
    return _gf2_shift(crc1, len2) ^ crc2


def _gf2_multiply(a: int, b: int) -> int:
    """Product of two polynomials modulo the (reflected) CRC-32 polynomial."""
    product = 0
    for _ in range(32):
        if b & 0x80000000:
            product ^= a
        b = (b << 1) & 0xFFFFFFFF
        a = (a >> 1) ^ 0xEDB88320 if a & 1 else a >> 1
    return product


def _gf2_shift(crc: int, nbytes: int) -> int:
    power = 0x00800000  # x^8 (one zero byte) in reflected form
    result = 0x80000000  # x^0
    n = nbytes
    while n:
        if n & 1:
            result = _gf2_multiply(result, power)
        power = _gf2_multiply(power, power)
        n >>= 1
    return _gf2_multiply(crc, result)


class ParallelGzipWriter:
    """One-member gzip of fixed, independently deflated blocks (see module doc)."""

    def __init__(
        self,
        sink: Sink,
        *,
        threads: int | None = None,
        level: int = GZIP_LEVEL,
        block_size: int = GZIP_BLOCK_SIZE,
    ):
        self._sink = sink
        self._level = level
        self._block_size = block_size
        self._threads = threads if threads and threads > 0 else default_threads()
        self._pool = ThreadPoolExecutor(self._threads) if self._threads > 1 else None
        self._local = threading.local()     # each thread's reused compressor
        self._inflight: deque[tuple[Future[tuple[bytes, int]], int]] = deque()
        self._pending: list[memoryview] = []
        self._pending_size = 0
        self._tail: bytes | bytearray = b""
        self._crc = 0
        self._size = 0
        sink.write(GZIP_HEADER)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Cut the stream into exact blocks, copying each byte once.

        Callers hand over their buffers (they must not change them afterwards);
        pieces short of a block are kept as views until the block fills.
        """
        bs = self._block_size
        if not self._pending_size and len(data) == bs and not isinstance(data, memoryview):
            self._submit(data)  # a whole block, handed over: deflated as it is, no copy
            return
        view = memoryview(data).cast("B")
        if self._pending_size:
            need = bs - self._pending_size
            self._pending.append(view[:need])
            self._pending_size += min(need, len(view))
            view = view[need:]
            if self._pending_size < bs:
                return
            self._submit(b"".join(self._pending))
            self._pending.clear()
            self._pending_size = 0
        while len(view) >= bs:
            self._submit(bytes(view[:bs]))
            view = view[bs:]
        if len(view):
            self._pending.append(view)
            self._pending_size = len(view)

    def _submit(self, block: bytes | bytearray) -> None:
        zdict, self._tail = self._tail, block[-_WINDOW:]
        if self._pool is None:
            self._emit(_deflate_block(block, zdict, self._level, self._local), len(block))
            return
        future = self._pool.submit(_deflate_block, block, zdict, self._level, self._local)
        self._inflight.append((future, len(block)))
        # Bounded read-ahead keeps memory flat: at most 2 blocks per thread in flight.
        while len(self._inflight) > 2 * self._threads:
            self._take()

    def _take(self) -> None:
        future, length = self._inflight.popleft()
        self._emit(future.result(), length)

    def _emit(self, result: tuple[bytes, int], length: int) -> None:
        """Write one deflated block (in stream order) and fold its CRC into the total."""
        compressed, crc = result
        self._crc = _crc32_combine(self._crc, crc, length)
        self._size += length
        self._sink.write(compressed)

    def finish(self) -> None:
        if self._pending_size:
            self._submit(b"".join(self._pending))
            self._pending.clear()
            self._pending_size = 0
        while self._inflight:
            self._take()
        self._sink.write(_FINAL_EMPTY_BLOCK)
        self._sink.write(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))
        self.abort()

    def abort(self) -> None:
        if self._pool is not None:
            for fut, _ in self._inflight:
                fut.cancel()
            self._pool.shutdown(wait=True)
            self._pool = None
        self._inflight.clear()


class ZstdWriter:
    """zstd at a pinned level in libzstd's multithreaded mode (thread-count independent)."""

    def __init__(
        self,
        sink: Sink,
        *,
        threads: int | None = None,
        level: int = ZSTD_LEVEL,
        background: bool = True,
    ):
        import zstandard

        cctx = zstandard.ZstdCompressor(
            level=level,
            threads=threads if threads and threads > 0 else default_threads(),
            write_checksum=False,
            write_content_size=False,
        )
        self._writer = cctx.stream_writer(
            sink, closefd=False, write_size=1 << 20  # type: ignore[arg-type]
        )
        # libzstd's multithreaded mode blocks the caller while its job queue is
        # full; feeding it from its own thread lets the caller read the next
        # files meanwhile (same calls in the same order: same bytes).
        self._feed = BackgroundWriter(self._writer.write, depth=4) if background else None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Callers hand over ``data``: it must not change afterwards."""
        if self._feed is not None:
            self._feed.write(data)
        else:
            self._writer.write(data)

    def finish(self) -> None:
        if self._feed is not None:
            self._feed.close()
        self._writer.close()

    def abort(self) -> None:
        if self._feed is not None:
            self._feed.abandon()
        with contextlib.suppress(Exception):  # the stream is thrown away anyway
            self._writer.close()


class PlainWriter:
    """The 'none' compression: bytes pass straight through."""

    def __init__(self, sink: Sink):
        self._sink = sink

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._sink.write(data)  # type: ignore[arg-type]

    def finish(self) -> None:
        pass

    def abort(self) -> None:
        pass


def tune_allocator() -> None:
    """Keep glibc from returning and re-faulting our 1 MiB stream buffers.

    With glibc's defaults each 1 MiB block allocated on a worker thread is
    mmap-ed or trimmed away when freed, and the next one page-faults 256 fresh
    pages: ~1 s of system time per GiB of layer.  Raising the mmap and trim
    thresholds (4 MiB / 32 MiB; at most that much stays cached per arena) lets
    freed blocks be reused.  Only on glibc, and never over settings the user made
    with MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_.  Setting the same values
    again (every build calls this) changes nothing.
    """
    if any(environ_value(k) is not None
           for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 4 << 20)
    mallopt(m_trim_threshold, 32 << 20)


def check_compression(name: str) -> Compression:
    """``name`` as a :data:`Compression`, or bad input naming the ones there are."""
    for known in COMPRESSIONS:
        if name == known:
            return known
    raise InvalidInputError(
        f"unknown compression {name!r} (expected one of: {', '.join(COMPRESSIONS)})"
    )


def compressor(name: str, sink: Sink, *, threads: int | None = None) -> StreamCompressor:
    """A streaming compressor for 'gzip', 'zstd' or 'none' writing into ``sink``."""
    check_compression(name)
    if name == "gzip":
        return ParallelGzipWriter(sink, threads=threads)
    if name == "zstd":
        return ZstdWriter(sink, threads=threads)
    return PlainWriter(sink)


__all__ = [
    "COMPRESSIONS",
    "BackgroundWriter",
    "BoundedReader",
    "ParallelGzipWriter",
    "PlainWriter",
    "ZstdWriter",
    "check_compression",
    "compressor",
    "default_threads",
    "open_decompressed",  # re-exported: readers import it from here
    "sniff",
    "tune_allocator",
]
