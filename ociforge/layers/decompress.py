"""Reading layer streams whatever their compression, with a bound on the output.

The compression is sniffed from magic bytes (never from a name).  Multi-member
gzip (pigz -i, Docker) and multi-frame zstd are read whole.  The bound makes a
zip bomb stop with HostileInputError instead of filling memory or disk, and any
decoder failure becomes InvalidInputError, so code reading untrusted blobs only
ever sees ociforge's own errors.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
import zlib
from typing import IO, Any, Literal, overload

from ..errors import HostileInputError, InvalidInputError, OciforgeError
from ..model.digest import Digest
from ..threads import ThreadedFeed

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_MAGIC_BYTES = 4             # what sniff() looks at
_CLOSE_WAIT = 0.5  # seconds close() waits for the read-ahead thread's read in progress


def sniff(head: bytes) -> str:
    """'gzip', 'zstd' or 'none' from a stream's first bytes (magic, never a file name)."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


class BoundedReader(io.RawIOBase):
    """A decompressing reader that stops with HostileInputError past ``limit`` bytes.

    Decompressor failures (corrupt or truncated data) become InvalidInputError, so
    callers reading untrusted blobs only ever see ociforge's own errors.  With
    ``hashed``, the output is hashed (sha256) as it is produced, in the large chunks
    the buffer above asks for, on a thread of its own (hashing releases the GIL).
    """

    def __init__(
        self,
        inner: IO[bytes],
        limit: int | None,
        what: str,
        kind: str,
        source: IO[bytes] | None = None,
        hashed: bool = False,
        known: Digest | None = None,
    ):
        self._inner = inner
        self._known = known             # the output's digest, verified below: not hashed
        self._source = source
        self._limit = limit
        self._what = what
        self._kind = kind
        self.produced = 0
        self._hasher = hashlib.sha256() if hashed else None
        self._feed = ThreadedFeed(self._hasher.update) if self._hasher is not None else None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read_chunk(len(view))
        n = len(data)
        view[:n] = data
        return n

    def read_chunk(self, want: int) -> bytes:
        """Up to ``want`` bytes as the decompressor gave them (no copy; b'' at the end)."""
        if self._limit is not None:
            # ask for one byte past the limit so that reaching it is detectable
            want = min(want, self._limit - self.produced + 1)
        try:
            data = self._inner.read(max(want, 1))
        except OciforgeError:
            raise  # e.g. the compressed blob's own digest check: keep its kind and exit code
        except (OSError, EOFError, ValueError, zlib.error, MemoryError) as exc:
            raise InvalidInputError(f"{self._what}: corrupt {self._kind} data: {exc}") from None
        except Exception as exc:  # zstandard.ZstdError and friends
            raise InvalidInputError(f"{self._what}: corrupt {self._kind} data: {exc}") from None
        n = len(data)
        self.produced += n
        if self._limit is not None and self.produced > self._limit:
            raise HostileInputError(
                f"{self._what}: decompresses to more than {self._limit} bytes (limit)"
            )
        if self._feed is not None and n:
            self._feed(data)
        return data

    def digest(self) -> Digest:
        """The sha256 of the output so far (all of it, once read to its end)."""
        if self._known is not None:
            return self._known
        if self._hasher is None or self._feed is None:
            raise ValueError("this stream is not hashed")
        self._feed.wait()
        return Digest("sha256", self._hasher.hexdigest())

    def stop_hashing(self) -> None:
        """End the hashing thread without closing the stream: after a failed read or a
        close the digest is never asked for.  Call it from the thread that reads."""
        if self._feed is not None:
            self._feed.abandon()

    def close(self) -> None:
        self.stop_hashing()
        try:
            self._inner.close()
            if self._source is not None and self._source is not self._inner:
                self._source.close()
        finally:
            super().close()


@overload
def open_decompressed(raw: IO[bytes], *, limit: int | None = None, what: str = "layer",
                      kind: str | None = None, hashed: bool = False,
                      blob_digest: Digest | None = None,
                      ahead: Literal[False] = False) -> io.BufferedReader: ...


@overload
def open_decompressed(raw: IO[bytes], *, limit: int | None = None, what: str = "layer",
                      kind: str | None = None, hashed: bool = False,
                      blob_digest: Digest | None = None,
                      ahead: bool) -> io.BufferedReader | ReadAhead: ...


def open_decompressed(
    raw: IO[bytes],
    *,
    limit: int | None = None,
    what: str = "layer",
    kind: str | None = None,
    hashed: bool = False,
    blob_digest: Digest | None = None,
    ahead: bool = False,
) -> io.BufferedReader | ReadAhead:
    """Wrap ``raw`` in a streaming decompressor chosen by its magic bytes.

    ``limit`` bounds the decompressed output (zip-bomb safety); ``kind`` forces
    'gzip', 'zstd' or 'none' instead of sniffing; ``hashed``: the output's sha256
    (a layer's diff_id) is taken on the way, for ``content_digest``, except where
    ``blob_digest`` (the digest ``raw`` is verified against as it is read) already
    is it: a stream that is not compressed is not hashed a second time; ``ahead``: the
    stream is decompressed on a thread of its own, a few MiB ahead of the caller
    (close the result, or read it to its end, to end that thread), and the result
    is a ``ReadAhead``, whose reads hand over the decompressor's chunks and which
    skips data without copying it.  Closing the result closes raw, except with
    ``ahead``.
    """
    head = b""
    if kind is None:
        # a stream may hand out its first bytes a few at a time (a network read): the
        # magic is read whole, then handed on before the rest
        while len(head) < _MAGIC_BYTES:
            more = raw.read(_MAGIC_BYTES - len(head))
            if not more:
                break
            head += more
        kind = sniff(head)
    buffered = io.BufferedReader(_Raw(raw, head), 1 << 20)
    inner: IO[bytes]
    if kind == "gzip":
        inner = _gzip_reader(buffered)
    elif kind == "zstd":
        import zstandard

        # libzstd's default window limit (128 MiB) bounds decoder memory.
        inner = zstandard.ZstdDecompressor().stream_reader(
            buffered, read_across_frames=True
        )
    else:
        inner = buffered
    known = blob_digest if hashed and kind == "none" else None
    bounded = BoundedReader(inner, limit, what, kind, source=buffered,
                            hashed=hashed and known is None, known=known)
    if ahead:
        return ReadAhead(bounded)
    return io.BufferedReader(bounded, buffer_size=1 << 20)


def content_digest(plain: io.BufferedReader | ReadAhead) -> Digest:
    """The sha256 of everything a stream ``open_decompressed(..., hashed=True)`` gave,
    once it was read to its end (the diff_id of a layer)."""
    bounded = plain.bounded if isinstance(plain, ReadAhead) else plain.raw
    if not isinstance(bounded, BoundedReader):
        raise ValueError("not a stream open_decompressed made")
    return bounded.digest()


class ReadAhead(io.RawIOBase):
    """Reads a decompressing stream on a thread of its own, up to ``depth`` chunks ahead
    of the caller: decompression (and the blob's reading and hashing below it) releases
    the GIL, so it runs on another core while the caller parses what came before.
    What the stream raises is raised to the caller, in order, at the read it stopped."""

    def __init__(self, bounded: BoundedReader, chunk: int = 1 << 20, depth: int = 4):
        self.bounded = bounded
        self._chunk = chunk
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(depth)
        self._stop = threading.Event()
        self._data = memoryview(b"")
        self._whole: bytes | None = None
        self._ended = False
        self._thread = threading.Thread(target=self._run, name="ociforge-decompress",
                                        daemon=True)
        self._thread.start()

    def readable(self) -> bool:
        return True

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self.bounded.read_chunk(self._chunk)
                self._put(data)
                if not data:
                    return
            self.bounded.stop_hashing()   # closed before the end
        except BaseException as exc:  # handed to the reading thread (dropped once closed)
            self.bounded.stop_hashing()   # before the caller hears of it
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _next(self) -> bool:
        """The next chunk into ``_data``; False at the end of the stream."""
        if self._ended:
            return False
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        if not item:
            self._ended = True
            return False
        self._data = memoryview(item)
        self._whole = item                  # the chunk, while none of it was read
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._data and not self._next():
            return 0
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._data))
        view[:n] = self._data[:n]
        self._data = self._data[n:]
        self._whole = None
        return n

    def read(self, n: int | None = -1) -> bytes:
        """Up to ``n`` bytes (fewer at a chunk's end; b'' at the stream's), all with -1."""
        if n is None or n < 0:
            return b"".join(iter(lambda: self.read(self._chunk), b""))
        if not n or (not self._data and not self._next()):
            return b""
        data, whole = self._data, self._whole
        self._whole = None
        if n >= len(data):
            self._data = memoryview(b"")
            return whole if whole is not None else data.tobytes()
        self._data = data[n:]
        return data[:n].tobytes()

    def skip(self, n: int) -> int:
        """Drop up to ``n`` bytes without copying them; how many were dropped (fewer only
        at the stream's end)."""
        left = n
        while left and (self._data or self._next()):
            step = min(left, len(self._data))
            self._data = self._data[step:]
            self._whole = None
            left -= step
        return n - left

    def close(self) -> None:
        """Stop the thread; the stream below stays open.  A read it is in may block
        (a registry blob), so close waits briefly and leaves it: it drops what that
        read returns or raises, and ends its hashing thread itself."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(_CLOSE_WAIT)
        if not self._thread.is_alive():
            self.bounded.stop_hashing()   # read to its end: the digest was taken, or not wanted
        super().close()


def _gzip_reader(raw: IO[bytes]) -> IO[bytes]:
    try:
        from isal import igzip

        return igzip.IGzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]


class _Raw(io.RawIOBase):
    """Adapts any object with read() to RawIOBase (for a BufferedReader above it),
    handing out ``head`` (bytes already read from it) first."""

    def __init__(self, inner: IO[bytes], head: bytes = b""):
        self._inner = inner
        self._head = head

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            data, self._head = self._head[:len(view)], self._head[len(view):]
        else:
            data = self._inner.read(len(view))
        n = len(data)
        view[:n] = data
        return n

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()
