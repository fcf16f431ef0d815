"""Digests, hashing writers and verifying readers.

Every blob ociforge reads is checked against the digest and size that name it
(umoci's verifying reader): the check happens at EOF while streaming, so no blob
is ever held whole in memory just to hash it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import IO, Protocol

from ..errors import DigestMismatchError, InvalidInputError, SizeMismatchError
from ..threads import ThreadedFeed

_ALGORITHM_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*$")
_ENCODED_RE = MappingProxyType({
    "sha256": re.compile(r"^[a-f0-9]{64}$"),
    "sha512": re.compile(r"^[a-f0-9]{128}$"),
})
CHUNK = 1 << 20


class Hasher(Protocol):
    """What hashlib's objects offer (``hashlib.new(name)``)."""

    @property
    def name(self) -> str: ...

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


@dataclass(frozen=True, order=True)
class Digest:
    """A content digest such as ``sha256:<64 lowercase hex>``."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        if not isinstance(text, str):
            raise InvalidInputError(f"digest must be a string, not {type(text).__name__}")
        algorithm, sep, encoded = text.partition(":")
        if not sep or not _ALGORITHM_RE.match(algorithm):
            raise InvalidInputError(f"malformed digest {text[:80]!r}")
        pattern = _ENCODED_RE.get(algorithm)
        if pattern is None:
            raise InvalidInputError(f"unsupported digest algorithm {algorithm!r} in {text[:80]!r}")
        if not pattern.match(encoded):
            raise InvalidInputError(f"malformed {algorithm} digest {text[:80]!r}")
        return cls(algorithm, encoded)

    @classmethod
    def of_bytes(cls, data: bytes) -> Digest:
        return cls("sha256", hashlib.sha256(data).hexdigest())

    @classmethod
    def from_hasher(cls, hasher: Hasher) -> Digest:
        return cls(hasher.name, hasher.hexdigest())

    def new_hasher(self) -> Hasher:
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        return f"{self.algorithm}:{self.hex[:12]}"


class HashingWriter:
    """A write-only stream that hashes and counts what passes through it."""

    def __init__(self, target: IO[bytes] | None = None, algorithm: str = "sha256"):
        self._target = target
        self._hasher = hashlib.new(algorithm)
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hasher.update(data)
        n = len(data)
        self.size += n
        if self._target is not None:
            self._target.write(data)
        return n

    def flush(self) -> None:
        if self._target is not None:
            self._target.flush()

    @property
    def digest(self) -> Digest:
        return Digest.from_hasher(self._hasher)


class VerifyingReader:
    """Wraps a binary stream; raises at EOF if its bytes do not match digest/size.

    It also refuses to read past ``size`` so that a registry sending more than the
    descriptor says cannot make us buffer unbounded data.  Large reads are hashed
    on a thread of their own, so a copy's next read and its write overlap the hashing
    (a pull reads, hashes and writes every byte once); the check at EOF waits for it.
    """

    def __init__(self, raw: IO[bytes], expected: Digest, size: int | None, what: str = "blob"):
        self._raw = raw
        self._expected = expected
        self._size = size
        self._hasher = expected.new_hasher()
        self._seen = 0
        self._done = False
        self._what = what
        self._feed = ThreadedFeed(self._hasher.update)   # large reads hashed on a thread

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        want = CHUNK if n is None or n < 0 else n
        if self._size is not None:
            # read one byte beyond the declared size to detect overlong bodies
            want = min(want, self._size - self._seen + 1)
            want = max(want, 1)
        data = self._raw.read(want)
        if data:
            self._seen += len(data)
            if self._size is not None and self._seen > self._size:
                raise SizeMismatchError(
                    f"{self._what} {self._expected} is longer than its declared size {self._size}"
                )
            self._feed(data)
            if n is None or n < 0:
                parts = [data]
                while True:
                    more = self.read(CHUNK)
                    if not more:
                        break
                    parts.append(more)
                return b"".join(parts)
            return data
        self._finish()
        return b""

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _finish(self) -> None:
        self._done = True
        self._feed.wait()
        if self._size is not None and self._seen != self._size:
            raise SizeMismatchError(
                f"{self._what} {self._expected} has {self._seen} bytes, expected {self._size}"
            )
        got = Digest.from_hasher(self._hasher)
        if got != self._expected:
            raise DigestMismatchError(f"{self._what} {self._expected} has digest {got}")

    def close(self) -> None:
        self._feed.abandon()
        self._raw.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_all_verified(
    raw: IO[bytes], expected: Digest, size: int | None, limit: int, what: str = "blob"
) -> bytes:
    """Read a small document fully, refusing more than ``limit`` bytes."""
    if size is not None and size > limit:
        raise InvalidInputError(f"{what} {expected} is {size} bytes, over the {limit} byte limit")
    reader = VerifyingReader(raw, expected, size, what)
    parts: list[bytes] = []
    total = 0
    while True:
        chunk = reader.read(CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise InvalidInputError(f"{what} {expected} is over the {limit} byte limit")
        parts.append(chunk)
    return b"".join(parts)


def copy_stream(src: IO[bytes], dst: IO[bytes] | HashingWriter, chunk: int = CHUNK) -> int:
    """Copy src to dst in bounded chunks; returns the number of bytes."""
    total = 0
    while True:
        data = src.read(chunk)
        if not data:
            return total
        dst.write(data)
        total += len(data)
