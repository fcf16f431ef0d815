"""Random access to the regular files of a tar, by member offset.

An image archive's blobs are read in place (``os.pread`` on the tar, or on a
spooled copy of a gzip/zstd-compressed one), never extracted whole.  Every
entry is checked on the way in: its name may not escape the archive root, its
size may not run past the end of the file, the entry count and the
decompressed size are bounded.
"""

from __future__ import annotations

import os
import posixpath
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, cast

from ..errors import HostileInputError, InvalidInputError, NotFoundError, SizeMismatchError
from ..fsutil import open_regular
from ..layers.decompress import GZIP_MAGIC as GZIP_MAGIC  # re-exported for dockerarchive
from ..layers.decompress import ZSTD_MAGIC as ZSTD_MAGIC
from ..layers.decompress import open_decompressed, sniff
from ..model.descriptor import Descriptor
from ..model.digest import Digest, HashingWriter, copy_stream, read_all_verified
from ..model.jsonutil import MAX_DOCUMENT
from ..model.layer import Layer
from .store import BlobStore

MAX_MEMBERS = 200_000
MAX_NAME = 4096
# A compressed archive may expand at most this much (zip-bomb guard); real image
# archives hold compressed layers and expand by a few percent.
MAX_EXPANSION = 200
EXPANSION_SLACK = 64 << 20


def clean_member_name(name: str) -> str:
    """A tar entry name made relative; HostileInputError if it escapes the root."""
    if "\x00" in name or len(name) > MAX_NAME:
        raise HostileInputError(f"archive entry name {name[:80]!r} is malformed")
    if name.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", name):
        raise HostileInputError(f"archive entry {name[:200]!r} has an absolute path")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise HostileInputError(f"archive entry {name[:200]!r} climbs out of the archive root")
    return "/".join(parts)


class _Slice:
    """A read-only stream over ``size`` bytes at ``offset`` of a shared file (pread)."""

    def __init__(self, owner: TarBlobs, offset: int, size: int):
        self._owner = owner
        self._offset = offset
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        left = self._size - self._pos
        if left <= 0:
            return b""
        want = left if n is None or n < 0 else min(n, left)
        data = os.pread(self._owner.fileno(), want, self._offset + self._pos)
        if not data:
            raise SizeMismatchError(f"archive {self._owner.where} is truncated")
        self._pos += len(data)
        return data

    def close(self) -> None:
        pass

    def __enter__(self) -> _Slice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Member:
    offset: int
    size: int


class TarBlobs(BlobStore):
    """The regular files of a tar, by cleaned name, readable in place.

    The archive stays open (by descriptor) for as long as the layers read from
    it live, so writing a new file over the same path cannot pull the bytes
    out from under them.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.where = str(path)
        self.members: dict[str, _Member] = {}
        self._folders: set[str] = set()  # a blob that is a folder is named, not "missing"
        # kept open (by descriptor) for lazy layers; a FIFO or folder is refused
        handle = open_regular(path, "archive")
        self._file = self._decompressed(handle)
        self._scan()

    @property
    def source(self) -> str:
        return self.where

    def fileno(self) -> int:
        return self._file.fileno()

    def _decompressed(self, handle: IO[bytes]) -> IO[bytes]:
        kind = sniff(handle.read(4))
        handle.seek(0)
        if kind == "none":
            return handle
        limit = os.fstat(handle.fileno()).st_size * MAX_EXPANSION + EXPANSION_SLACK
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the layers
        try:
            # open_decompressed bounds the output (HostileInputError) and turns decoder
            # failures into InvalidInputError; closing it closes the handle.
            with open_decompressed(handle, limit=limit, what=f"archive {self.where!r}",
                                   kind=kind) as stream:
                copy_stream(stream, spool)
        except HostileInputError:
            spool.close()
            raise HostileInputError(
                f"archive {self.where!r} expands past {limit} bytes; refusing it") from None
        except BaseException:
            spool.close()
            raise
        spool.flush()
        spool.seek(0)
        return spool

    def _scan(self) -> None:
        links: dict[str, str] = {}
        try:
            with tarfile.open(fileobj=self._file, mode="r:") as tar:
                self._index(iter(tar), links)
        except (tarfile.TarError, ValueError, UnicodeError, OverflowError, EOFError) as exc:
            raise InvalidInputError(
                f"{self.where!r} is not a readable tar archive: {exc}") from None
        # Classic docker save links duplicate layers: <id>/layer.tar -> ../<other>/layer.tar
        for name, target in links.items():
            if name not in self.members and target in self.members:
                self.members[name] = self.members[target]

    def _index(self, infos: Iterator[tarfile.TarInfo], links: dict[str, str]) -> None:
        end = os.fstat(self._file.fileno()).st_size
        for count, info in enumerate(infos, 1):
            if count > MAX_MEMBERS:
                raise HostileInputError(f"archive {self.where!r} has over {MAX_MEMBERS} entries")
            name = clean_member_name(info.name)
            if not name:
                continue
            if info.isdir():
                self._folders.add(name)
                continue
            if info.issparse():
                raise InvalidInputError(f"archive entry {name!r} is a sparse file")
            if info.isreg():
                if info.offset_data + info.size > end:
                    raise HostileInputError(
                        f"archive entry {name!r} claims {info.size} bytes, past the end of "
                        f"{self.where!r}"
                    )
                self.members[name] = _Member(info.offset_data, info.size)
                links.pop(name, None)
            elif info.islnk():
                target = clean_member_name(info.linkname)
                if target not in self.members:
                    raise HostileInputError(
                        f"archive hardlink {name!r} points to {info.linkname!r}, "
                        "which is not an earlier entry"
                    )
                self.members[name] = self.members[target]
            elif info.issym() and not info.linkname.startswith("/"):
                joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), info.linkname))
                if not joined.startswith("../") and joined != "..":
                    links[name] = joined  # an alias only; nothing is followed on disk

    def has(self, name: str) -> bool:
        return name in self.members

    def _member(self, name: str) -> _Member:
        cleaned = clean_member_name(name)
        member = self.members.get(cleaned)
        if member is None and cleaned in self._folders:
            raise InvalidInputError(f"archive {self.where!r}: {name!r} is a folder, not a file")
        if member is None:
            raise NotFoundError(f"archive {self.where!r} has no entry {name!r}")
        return member

    def size(self, name: str) -> int:
        return self._member(name).size

    def open(self, name: str) -> _Slice:
        member = self._member(name)
        return _Slice(self, member.offset, member.size)

    def read_small(self, name: str, what: str) -> bytes:
        member = self._member(name)
        if member.size > MAX_DOCUMENT:
            raise InvalidInputError(f"{what} in {self.where!r} is over {MAX_DOCUMENT} bytes")
        return self.open(name).read()

    def blob_name(self, digest: Digest) -> str:
        return f"blobs/{digest.algorithm}/{digest.hex}"

    def layer(self, desc: Descriptor) -> Layer:
        name = self.blob_name(desc.digest)
        member = self._member(name)
        if member.size != desc.size:
            raise SizeMismatchError(
                f"blob {desc.digest} in {self.where!r} has {member.size} bytes, "
                f"expected {desc.size}"
            )
        return Layer(desc, None, self.opener(member))

    def opener(self, member: _Member) -> Callable[[], IO[bytes]]:
        return lambda: cast(IO[bytes], _Slice(self, member.offset, member.size))

    def member_opener(self, name: str) -> Callable[[], IO[bytes]]:
        """An opener for the named entry (NotFoundError if there is none)."""
        return self.opener(self._member(name))

    def read_document(self, desc: Descriptor, what: str = "document") -> bytes:
        with self.open(self.blob_name(desc.digest)) as raw:
            return read_all_verified(raw, desc.digest, desc.size, MAX_DOCUMENT, what)  # type: ignore[arg-type]

    def hash_member(self, name: str) -> Digest:
        writer = HashingWriter()
        with self.open(name) as raw:
            copy_stream(cast(IO[bytes], raw), writer)
        return writer.digest

    def sniff(self, name: str) -> bytes:
        with self.open(name) as raw:
            return raw.read(4)
