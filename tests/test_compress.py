"""Compression: deterministic whatever the threads and write chunking; bounded reading."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import subprocess
import threading
import zlib
from typing import Any

import pytest
import zstandard

from ociforge.errors import HostileInputError, InvalidInputError
from ociforge.layers import compress
from ociforge.layers.compress import (
    BackgroundWriter,
    ParallelGzipWriter,
    ZstdWriter,
    open_decompressed,
    sniff,
)
from ociforge.layers.decompress import ReadAhead, content_digest
from ociforge.model.digest import Digest
from tests.tools import require_tool

BLOCK = compress.GZIP_BLOCK_SIZE


def sample(size: int, seed: int = 1) -> bytes:
    """Half text-like, half random, so both deflate paths are exercised."""
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefgh ") for _ in range(rng.randint(1, 8))) for _ in range(500)]
    text = b" ".join(rng.choice(words) for _ in range(size // 4))[: size // 2]
    return text + rng.randbytes(size - len(text))


def compress_with(writer_cls: type, data: bytes, chunks: list[int], **kwargs: object) -> bytes:
    out = io.BytesIO()
    writer = writer_cls(out, **kwargs)
    pos = 0
    for n in chunks:
        writer.write(data[pos : pos + n])
        pos += n
    writer.write(data[pos:])
    writer.finish()
    return out.getvalue()


def random_chunks(total: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    chunks, pos = [], 0
    while pos < total:
        n = rng.choice([1, 7, 511, 4096, BLOCK - 1, BLOCK + 3, 3 * BLOCK])
        chunks.append(n)
        pos += n
    return chunks


@pytest.fixture(scope="module")
def data() -> bytes:
    return sample(5 * BLOCK + 12345)


def test_gzip_is_identical_for_any_thread_count_and_chunking(data: bytes) -> None:
    outputs = {
        (threads, seed): compress_with(
            ParallelGzipWriter, data, random_chunks(len(data), seed), threads=threads
        )
        for threads in (1, 2, 3, 7)
        for seed in (1, 2)
    }
    assert len(set(outputs.values())) == 1
    blob = next(iter(outputs.values()))
    assert gzip.decompress(blob) == data
    one_member = zlib.decompressobj(31)
    assert one_member.decompress(blob) == data
    assert one_member.eof and one_member.unused_data == b""  # ONE gzip member
    # deterministic header: no name, mtime 0
    assert blob[:10] == compress.GZIP_HEADER
    assert blob[3] == 0 and blob[4:8] == b"\0\0\0\0"


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK])
def test_gzip_block_edges(size: int) -> None:
    data = sample(size, seed=size)
    blob = compress_with(ParallelGzipWriter, data, [], threads=2)
    assert gzip.decompress(blob) == data


def test_gzip_is_valid_for_gnu_gzip(data: bytes, tmp_path: object) -> None:
    gz = require_tool("gzip")
    blob = compress_with(ParallelGzipWriter, data, [], threads=2)
    proc = subprocess.run([gz, "-dc"], input=blob, capture_output=True, check=True)
    assert proc.stdout == data


def test_zlib_fallback_uses_the_same_scheme(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compress, "_deflate_lib", zlib)
    one = compress_with(ParallelGzipWriter, data, random_chunks(len(data), 3), threads=1)
    two = compress_with(ParallelGzipWriter, data, [], threads=4)
    assert one == two
    assert gzip.decompress(one) == data


def test_zstd_is_identical_for_any_thread_count_and_chunking(data: bytes) -> None:
    outputs = {
        compress_with(ZstdWriter, data, random_chunks(len(data), seed), threads=threads)
        for threads in (1, 2, 4)
        for seed in (1, 2)
    }
    assert len(outputs) == 1
    blob = outputs.pop()
    assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == data


def test_whole_blocks_handed_over_give_the_same_bytes(data: bytes) -> None:
    """Whole 1 MiB bytearrays are deflated as they are (no copy): same stream as any chunking."""
    aligned = [bytearray(data[i : i + BLOCK]) for i in range(0, len(data), BLOCK)]
    out = io.BytesIO()
    writer = ParallelGzipWriter(out, threads=2)
    for block in aligned:
        writer.write(block)
    writer.finish()
    assert out.getvalue() == compress_with(ParallelGzipWriter, data, [7, BLOCK], threads=3)
    assert gzip.decompress(out.getvalue()) == data


def test_zstd_feeding_thread_changes_no_byte_and_reports_errors(data: bytes) -> None:
    inline = compress_with(ZstdWriter, data, random_chunks(len(data), 4), background=False)
    fed = compress_with(ZstdWriter, data, random_chunks(len(data), 5), background=True)
    assert inline == fed

    disk_full = OSError(28, "No space left on device")

    class FullDisk:
        def write(self, data: bytes) -> int:
            raise disk_full

    writer = ZstdWriter(FullDisk(), threads=2)
    with pytest.raises(OSError) as caught:
        for _ in range(64):  # the error is raised by a later write, or by finish
            writer.write(data)
        writer.finish()
    assert caught.value is disk_full
    writer.abort()  # after an error: ends the feeding thread, raises nothing


def test_zstd_cli_reads_our_zstd(data: bytes) -> None:
    tool = require_tool("zstd")
    blob = compress_with(ZstdWriter, data, [], threads=2)
    proc = subprocess.run([tool, "-dc"], input=blob, capture_output=True, check=True)
    assert proc.stdout == data


def test_sniff() -> None:
    assert sniff(gzip.compress(b"x")) == "gzip"
    assert sniff(zstandard.ZstdCompressor().compress(b"x")) == "zstd"
    assert sniff(b"plain tar bytes") == "none"
    assert sniff(b"") == "none"


@pytest.mark.parametrize(
    "encode",
    [
        gzip.compress,
        lambda b: gzip.compress(b[:100]) + gzip.compress(b[100:]),  # multi-member (pigz -i, docker)
        lambda b: gzip.compress(b) + b"\0" * 1024,  # zero padding after the last member
        lambda b: gzip.compress(b"") + gzip.compress(b) + b"\0" + gzip.compress(b""),
        lambda b: zstandard.ZstdCompressor().compress(b),
        lambda b: b,
    ],
)
@pytest.mark.parametrize("ahead", [False, True])
def test_open_decompressed_reads_every_format(encode: object, data: bytes, ahead: bool) -> None:
    blob = encode(data)  # type: ignore[operator]
    with open_decompressed(io.BytesIO(blob), hashed=True, ahead=ahead) as fh:
        assert b"".join(iter(lambda: fh.read(7919), b"")) == data
        assert str(content_digest(fh)) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_reading_ahead_ends_its_thread_when_the_reader_stops_early(data: bytes) -> None:
    """A caller that stops (an error in what it parses) closes the stream: the thread
    decompressing ahead ends, and the blob below stays open for its owner to close."""
    def reading_ahead() -> int:
        return sum(t.name == "ociforge-decompress" for t in threading.enumerate())

    before = reading_ahead()
    raw = io.BytesIO(gzip.compress(data * 64))
    fh = open_decompressed(raw, ahead=True)
    assert fh.read(10) == data[:10] and reading_ahead() == before + 1
    fh.close()
    assert reading_ahead() == before and not raw.closed


class _Stalling(io.RawIOBase):
    """A blob whose read blocks after ``head`` (a registry that stops sending); once
    released it sends ``rest``, or fails when there is none."""

    def __init__(self, head: bytes, rest: bytes = b""):
        self.head = head
        self.rest = rest
        self.blocked = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        if self.rest and self.release.is_set():
            self.head, self.rest = self.rest, b""
            return self.readinto(buffer)
        self.blocked.set()
        self.release.wait(10)
        self.returned.set()
        if self.rest:
            return self.readinto(buffer)
        raise OSError("connection reset by peer")


def test_closing_does_not_wait_for_a_blocked_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during a base-layer scan closes the stream while the thread reading ahead
    is inside a blob read that blocks: close returns before that read does, and the
    thread (and the one hashing) ends quietly when the read finally fails."""
    raised: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_value))
    before = set(threading.enumerate())
    # 1 MiB decompresses and is hashed, then the read for the rest blocks
    plain = random.Random(3).randbytes(3 << 19)
    blob = _Stalling(gzip.compress(plain, compresslevel=1)[:-8])
    fh = open_decompressed(blob, hashed=True, ahead=True)
    (thread,) = [t for t in set(threading.enumerate()) - before
                 if t.name == "ociforge-decompress"]
    assert blob.blocked.wait(30) and _writers() - before
    fh.close()
    assert not blob.returned.is_set()    # close did not wait for the blocked read
    blob.release.set()
    thread.join(30)
    assert not thread.is_alive() and raised == []
    assert not _writers() - before


def _writers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "ociforge-writer"}


def test_a_failed_read_ahead_ends_its_hashing_thread() -> None:
    """A layer whose gzip is corrupt past its first MiB: once the error is raised and the
    stream closed, the thread hashing its output is gone (not left blocked until GC)."""
    before = _writers()
    plain = random.Random(7).randbytes(4 << 20)
    blob = gzip.compress(plain, compresslevel=1)
    # the truncated rest comes only once the hashing thread was seen
    half = len(blob) // 2
    source = _Stalling(blob[:half], blob[half:-(1 << 16)])
    fh = open_decompressed(source, hashed=True, ahead=True)
    assert fh.read(1 << 20) == plain[:1 << 20]
    assert _writers() - before               # hashing on a thread of its own
    source.release.set()
    with pytest.raises(InvalidInputError):
        while fh.read(1 << 16):
            pass
    fh.close()
    assert not _writers() - before


@pytest.mark.parametrize("ahead", [False, True])
def test_zip_bomb_is_bounded(ahead: bool) -> None:
    # 256 MiB of zeros compress to ~250 KiB; reading stops at the limit with an error
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    bomb = b"".join(comp.compress(chunk) for _ in range(256)) + comp.flush()
    assert len(bomb) < 1 << 20
    reader = open_decompressed(io.BytesIO(bomb), limit=8 << 20, what="bomb.tar.gz",
                               ahead=ahead)
    with pytest.raises(HostileInputError, match=r"bomb\.tar\.gz.*limit"):
        while reader.read(1 << 16):
            pass


def test_exact_limit_is_allowed() -> None:
    blob = gzip.compress(b"a" * 1000)
    assert open_decompressed(io.BytesIO(blob), limit=1000).read() == b"a" * 1000


def _bad_trailer(blob: bytes) -> bytes:
    """``blob`` with one bit of its gzip CRC-32 flipped."""
    return blob[:-8] + bytes([blob[-8] ^ 1]) + blob[-7:]


@pytest.mark.parametrize(
    "blob",
    [
        gzip.compress(b"hello world" * 100)[:-12],  # truncated
        b"\x1f\x8b\x08\x00" + os.urandom(64),  # garbage after the magic
        gzip.compress(b"hello world") + b"trailing garbage",  # bytes that are no member
        gzip.compress(b"hello world") + b"\0\0\x1f",  # a member cut inside its magic
        _bad_trailer(gzip.compress(b"hello world" * 100)),  # the CRC does not match
        b"\x28\xb5\x2f\xfd" + os.urandom(64),
    ],
)
@pytest.mark.parametrize("ahead", [False, True])
def test_corrupt_streams_are_invalid_input(blob: bytes, ahead: bool) -> None:
    with pytest.raises(InvalidInputError):
        open_decompressed(io.BytesIO(blob), ahead=ahead).read()


def test_background_writer_keeps_order_and_reports_errors() -> None:
    seen: list[bytes] = []
    bg = BackgroundWriter(seen.append, depth=2)
    for i in range(100):
        bg.write(b"%d," % i)
    bg.close()
    assert b"".join(seen) == b"".join(b"%d," % i for i in range(100))

    def boom(_: bytes) -> None:
        raise OSError("disk full")

    bad = BackgroundWriter(boom)
    bad.write(b"x")
    with pytest.raises(OSError, match="disk full"):
        for _ in range(100):
            bad.write(b"y")
        bad.close()


def test_default_threads_is_small_and_positive() -> None:
    assert 1 <= compress.default_threads() <= 4


def test_a_stream_read_ahead_skips_across_chunks_and_stops_at_its_end() -> None:
    """skip() drops bytes (across the thread's chunks) without handing them over; reads
    after it go on at the right byte; at the end it says how many it could drop."""
    data = random.Random(11).randbytes(3 << 20)
    fh = open_decompressed(io.BytesIO(gzip.compress(data, compresslevel=1)), hashed=True,
                           ahead=True)
    assert isinstance(fh, ReadAhead)
    assert fh.read(10) == data[:10]
    assert fh.skip((1 << 20) + 5) == (1 << 20) + 5       # past the first chunk's end
    assert fh.read(7) == data[(1 << 20) + 15:(1 << 20) + 22]
    rest = len(data) - ((1 << 20) + 22)
    assert fh.skip(rest + 100) == rest                   # only what there was
    assert fh.read(1) == b"" and fh.skip(1) == 0
    # the diff_id covers the skipped bytes too
    assert str(content_digest(fh)) == "sha256:" + hashlib.sha256(data).hexdigest()
    fh.close()


def test_a_stream_that_is_not_compressed_is_not_hashed_twice() -> None:
    """Given the digest its blob is verified against, an uncompressed stream's content
    digest is that digest (the blob's own check covers it): a stand-in digest comes back
    as it is, which it could not if the stream were hashed.  A compressed stream is
    hashed whatever blob digest is given."""
    data = random.Random(13).randbytes(1 << 20)
    stand_in = Digest("sha256", "ab" * 32)
    for ahead in (False, True):
        with open_decompressed(io.BytesIO(data), hashed=True, blob_digest=stand_in,
                               ahead=ahead) as fh:
            assert fh.read() == data
            assert content_digest(fh) == stand_in
        with open_decompressed(io.BytesIO(gzip.compress(data)), hashed=True,
                               blob_digest=stand_in, ahead=ahead) as fh:
            assert fh.read() == data
            assert str(content_digest(fh)) == "sha256:" + hashlib.sha256(data).hexdigest()


class _Trickle(io.RawIOBase):
    """A blob read over a network: each read hands out only a few bytes (sizes from a
    seeded mix, the first read one byte)."""

    def __init__(self, data: bytes, seed: int):
        self._data = data
        self._pos = 0
        self._sizes = random.Random(seed)
        self._first = True

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = len(self._data)
        size = 1 if self._first else self._sizes.choice([1, 3, 511, 4096, 65536])
        self._first = False
        out = self._data[self._pos:self._pos + min(n, size)]
        self._pos += len(out)
        return out

    def readinto(self, buffer: Any) -> int:
        out = self.read(len(buffer))
        buffer[:len(out)] = out
        return len(out)


@pytest.mark.parametrize("encode", [gzip.compress, zstandard.ZstdCompressor().compress])
@pytest.mark.parametrize("ahead", [False, True])
def test_a_blob_handed_out_a_few_bytes_at_a_time_is_read_whole(encode: Any, ahead: bool
                                                                ) -> None:
    """The compression is sniffed from the first 4 bytes however the stream hands them
    out: a first read of 1 byte used to make a gzip blob look uncompressed."""
    data = random.Random(17).randbytes(300_000) + b"text " * 50_000
    for seed in range(5):
        with open_decompressed(_Trickle(encode(data), seed),  # type: ignore[arg-type]
                               hashed=True, ahead=ahead) as fh:
            assert b"".join(iter(lambda: fh.read(65536), b"")) == data
            assert str(content_digest(fh)) == "sha256:" + hashlib.sha256(data).hexdigest()
