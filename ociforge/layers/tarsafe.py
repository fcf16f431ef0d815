"""A safe streaming reader for untrusted tar layers.

Nothing here touches the file system: it parses headers and refuses, with
HostileInputError naming the entry, what an extractor could be tricked by:
names with '..' or a leading '/', entries written through a symlink the same
archive created (tar-slip), hardlinks to names not earlier in the archive,
absurd sizes and header counts, oversized or malformed PAX/GNU headers.
Symlinks themselves (absolute ones too) are ordinary data: kept, never followed.
Anything malformed (bad checksum, truncation, corrupt compression) is an
InvalidInputError; no other exception type escapes.

Data of header-only entries (links, directories, devices, fifos) is treated as
empty whatever their size field says, as Go's archive/tar (Docker,
containerd) does, so we see exactly the entries those extractors would.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import IO, Protocol

from ..errors import HostileInputError, InvalidInputError
from ..model.digest import Digest
from . import tarformat as tf
from .decompress import ReadAhead, open_decompressed

_CHUNK = 1 << 20
_ZERO_BLOCK = b"\0" * tf.BLOCK
_MTIME_RE = re.compile(rb"^-?[0-9]{1,20}(\.[0-9]{0,20})?$")
_TYPES = MappingProxyType({
    tf.REGTYPE: "file",
    b"\0": "file",
    tf.CONTTYPE: "file",
    tf.LNKTYPE: "hardlink",
    tf.SYMTYPE: "symlink",
    tf.CHRTYPE: "char",
    tf.BLKTYPE: "block",
    tf.DIRTYPE: "dir",
    tf.FIFOTYPE: "fifo",
})
_META_TYPES = frozenset({tf.XHDTYPE, tf.XGLTYPE, tf.GNU_LONGNAME, tf.GNU_LONGLINK})
_MAX_META_CHAIN = 16
_MAX_NUMBERS = 4096
_WHITEOUT = b".wh."
_XATTR_LEN = len(tf.XATTR_PREFIX)


class DataReader(Protocol):
    """Where the current entry's data is read from (a TarReader, or a stand-in for it)."""

    def read(self, n: int = -1) -> bytes: ...


@dataclass(frozen=True)
class Limits:
    """Bounds for reading an untrusted layer; exceeding one is HostileInputError."""

    max_entries: int = 1_000_000
    max_total_bytes: int = 64 << 30  # the whole decompressed stream
    max_entry_size: int = 32 << 30
    max_header_bytes: int = 1 << 20  # one PAX or GNU long-name payload
    max_name_bytes: int = 16 * 1024


@dataclass(frozen=True)
class TarEntry:
    """One entry's metadata.  ``name``/``linkname`` are normalised relative paths
    ('' is the root directory "./"); ``linkname`` of a symlink is its raw target."""

    name: str
    type: str  # file, dir, symlink, hardlink, char, block, fifo
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    linkname: str = ""
    uname: str = ""
    gname: str = ""
    raw_name: bytes = field(default=b"", repr=False)
    # extended attributes (PAX SCHILY.xattr.<name> records), sorted by name
    xattrs: tuple[tuple[bytes, bytes], ...] = field(default=(), repr=False)

    @property
    def is_whiteout(self) -> bool:
        return self.name.rpartition("/")[2].startswith(".wh.")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _shown(name: bytes | str) -> str:
    """An entry's name as a message shows it (its first 200 bytes)."""
    return name if isinstance(name, str) else _text(name[:200])


class TarReader:
    """Iterate entries of a (decompressed) tar stream; ``read()`` gives the current data."""

    def __init__(self, stream: IO[bytes] | ReadAhead, limits: Limits | None = None,
                 what: str = "layer"):
        self._stream = stream
        self._limits = limits or Limits()
        self._what = what
        self._consumed = 0
        self._data_left = 0
        self._pad_left = 0
        self._symlinks: set[bytes] = set()
        self._clear: bytes | None = None       # a folder known not to pass through a symlink
        self._seen: dict[bytes, str] = {}
        self._owners: dict[bytes, tuple[int, int, int]] = {}   # mode, uid, gid: few values
        self._names: dict[bytes, tuple[str, str]] = {}         # user and group names
        # a stream read ahead on a thread drops skipped data without copying it
        self._skip = stream.skip if isinstance(stream, ReadAhead) else None
        self.count = 0

    # -- low level
    def _read(self, n: int) -> bytes:
        data = self._stream.read(n)
        if data is None:  # a non-blocking raw stream; treat as truncated
            data = b""
        self._consumed += len(data)
        if self._consumed > self._limits.max_total_bytes:
            raise HostileInputError(
                f"{self._what}: more than {self._limits.max_total_bytes} bytes (limit)"
            )
        return data

    def _read_exact(self, n: int, context: str) -> bytes:
        parts: list[bytes] = []
        left = n
        while left:
            chunk = self._read(min(left, _CHUNK))
            if not chunk:
                raise InvalidInputError(f"{self._what}: truncated tar ({context})")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def _skip_rest(self) -> None:
        if self._skip is not None and self._data_left + self._pad_left:
            self._skip_ahead(self._data_left + self._pad_left)
            self._data_left = self._pad_left = 0
            return
        while self._data_left:
            self._data_left -= len(self._read_exact(min(self._data_left, _CHUNK), "entry data"))
        if self._pad_left:
            self._read_exact(self._pad_left, "entry padding")
            self._pad_left = 0

    def _skip_ahead(self, n: int) -> None:
        assert self._skip is not None
        skipped = self._skip(n)
        self._consumed += skipped
        if self._consumed > self._limits.max_total_bytes:
            raise HostileInputError(
                f"{self._what}: more than {self._limits.max_total_bytes} bytes (limit)"
            )
        if skipped < n:
            raise InvalidInputError(f"{self._what}: truncated tar (entry data)")

    def read(self, n: int = -1) -> bytes:
        """Up to n bytes of the current entry's data (b'' at its end)."""
        if self._data_left <= 0:
            return b""
        want = self._data_left if n is None or n < 0 else min(n, self._data_left)
        data = self._read_exact(want, "entry data")
        self._data_left -= len(data)
        return data

    # -- headers
    def _number(self, field_bytes: bytes, name: str, entry: bytes | str) -> int:
        if field_bytes and field_bytes[0] & 0x80:
            if field_bytes[0] == 0xFF:
                raise HostileInputError(
                    f"{self._what}: entry {_shown(entry)!r} has a negative {name}")
            value = field_bytes[0] & 0x3F
            for b in field_bytes[1:]:
                value = (value << 8) | b
            return value
        text = field_bytes.split(b"\0", 1)[0].strip(b" \0")
        if not text:
            return 0
        if text.translate(None, b"01234567"):     # anything left is not an octal digit
            raise InvalidInputError(
                f"{self._what}: entry {_shown(entry)!r} has a malformed {name} field")
        return int(text, 8)

    def _check_checksum(self, block: bytes) -> None:
        stored = self._number(block[148:156], "checksum", "?")
        # the sum of the bytes, the checksum field counted as spaces (8 * 32).  Adler-32's
        # low half is 1 + the sum of the bytes modulo 65521, which is the sum itself for
        # 256 bytes (at most 65280): two such halves are the header's sum, ten times
        # faster than sum() over the bytes
        unsigned = (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) \
            - 2 - sum(block[148:156]) + 256
        if stored == unsigned:
            return  # the usual case: the signed sum (old writers) is only worked out if not
        signed = unsigned - 2 * sum(c for c in block[:148] + block[156:] if c > 127)
        if stored != signed:
            raise InvalidInputError(
                f"{self._what}: corrupt tar header at byte {self._consumed - tf.BLOCK}"
            )

    def _parse_pax(self, data: bytes, entry: str) -> dict[bytes, bytes]:
        out: dict[bytes, bytes] = {}
        pos = 0
        end_all = len(data)
        while pos < end_all:
            if not data[pos:].strip(b"\0"):
                break
            sp = data.find(b" ", pos, pos + 21)
            length_text = data[pos:sp] if sp > pos else b""
            if not length_text.isdigit() or not length_text.isascii():
                raise HostileInputError(f"{self._what}: malformed PAX header before {entry!r}")
            length = int(length_text)
            end = pos + length
            if length <= len(length_text) + 1 or end > end_all or data[end - 1 : end] != b"\n":
                raise HostileInputError(f"{self._what}: malformed PAX record before {entry!r}")
            keyword, eq, value = data[sp + 1 : end - 1].partition(b"=")
            if not eq or not keyword:
                raise HostileInputError(f"{self._what}: malformed PAX record before {entry!r}")
            out[keyword] = value
            pos = end
        return out

    def _clean(self, raw: bytes, what: str, allow_root: bool) -> bytes:
        body = raw[2:] if raw.startswith(b"./") else raw
        if body.endswith(b"/"):
            body = body[:-1]
        if body and len(raw) <= self._limits.max_name_bytes and b"\0" not in raw \
                and not body.startswith((b"/", b".")) and b"//" not in body \
                and b"/." not in body and not body.endswith(b"/"):
            return body     # the usual name: no empty, '.' or '..' part, nothing to drop
        shown = _text(raw[:200])
        if len(raw) > self._limits.max_name_bytes:
            raise HostileInputError(f"{self._what}: {what} {shown!r}... is absurdly long")
        if b"\0" in raw:
            raise HostileInputError(f"{self._what}: {what} {shown!r} contains a NUL byte")
        if raw.startswith(b"/"):
            raise HostileInputError(f"{self._what}: {what} {shown!r} is an absolute path")
        parts = [p for p in raw.split(b"/") if p not in (b"", b".")]
        if b".." in parts:
            raise HostileInputError(f"{self._what}: {what} {shown!r} climbs out with '..'")
        clean = b"/".join(parts)
        if not clean and not allow_root:
            raise HostileInputError(f"{self._what}: {what} {shown!r} names the root itself")
        return clean

    def _through_symlink(self, path: bytes) -> bytes | None:
        if not self._symlinks:
            return None
        parent = path.rpartition(b"/")[0]
        if parent == self._clear:
            return None     # checked for the entry before, and no symlink was added since
        pos = path.find(b"/")
        while pos != -1:
            if path[:pos] in self._symlinks:
                return path[:pos]
            pos = path.find(b"/", pos + 1)
        self._clear = parent
        return None

    def __iter__(self) -> Iterator[TarEntry]:
        limits = self._limits
        global_pax: dict[bytes, bytes] = {}
        while True:
            self._skip_rest()
            pax: dict[bytes, bytes] = {}
            long_name: bytes | None = None
            long_link: bytes | None = None
            chain = 0
            while True:
                block = self._read(tf.BLOCK)
                if len(block) < tf.BLOCK:
                    if not block:
                        return  # EOF without end blocks: accepted, like tarfile
                    block += self._read_exact(tf.BLOCK - len(block), "header")
                if block == _ZERO_BLOCK:
                    if pax or long_name is not None or long_link is not None:
                        raise InvalidInputError(f"{self._what}: tar ends after a PAX header")
                    return
                self._check_checksum(block)
                self.count += 1
                if self.count > limits.max_entries:
                    raise HostileInputError(
                        f"{self._what}: more than {limits.max_entries} tar headers (limit)"
                    )
                typeflag = block[156:157]
                if typeflag not in _META_TYPES:
                    break
                chain += 1
                if chain > _MAX_META_CHAIN:
                    raise HostileInputError(f"{self._what}: endless chain of PAX/GNU headers")
                size = self._number(block[124:136], "size", "PAX header")
                if size > limits.max_header_bytes:
                    raise HostileInputError(
                        f"{self._what}: a {size}-byte PAX/GNU header is over the limit"
                    )
                payload = self._read_exact(size, "PAX header")
                self._read_exact(-size % tf.BLOCK, "PAX header padding")
                if typeflag == tf.XHDTYPE:
                    pax.update(self._parse_pax(payload, "next entry"))
                elif typeflag == tf.XGLTYPE:
                    global_pax.update(self._parse_pax(payload, "next entry"))
                elif typeflag == tf.GNU_LONGNAME:
                    long_name = payload.split(b"\0", 1)[0]
                else:
                    long_link = payload.split(b"\0", 1)[0]
            yield self._entry(block, {**global_pax, **pax} if global_pax else pax, long_name,
                              long_link)

    def _entry(
        self,
        block: bytes,
        pax: dict[bytes, bytes],
        long_name: bytes | None,
        long_link: bytes | None,
    ) -> TarEntry:
        """One entry from its header block (and what PAX and GNU headers said of it).

        Names are shown in messages only when one is raised, and the fields whose few
        values repeat (mode and owners, user and group names) are parsed once each."""
        limits = self._limits
        name = block[:100].split(b"\0", 1)[0]
        if block[345] and block[257:263] == b"ustar\0":
            name = block[345:500].split(b"\0", 1)[0] + b"/" + name
        if long_name is not None:
            name = long_name
        if pax:
            name = pax.get(b"path", name)
        typeflag = block[156:157]
        kind = _TYPES.get(typeflag)
        if kind is None:
            if typeflag == b"S" or any(k.startswith(b"GNU.sparse") for k in pax):
                raise InvalidInputError(f"{self._what}: entry {_shown(name)!r} is a sparse file")
            raise InvalidInputError(
                f"{self._what}: entry {_shown(name)!r} has unsupported tar type {typeflag!r}"
            )
        linkname = block[157:257].split(b"\0", 1)[0] if block[157] else b""
        if long_link is not None:
            linkname = long_link

        size = self._number(block[124:136], "size", name)
        mode, uid, gid = self._owner(block[100:124], name)
        mtime = self._number(block[136:148], "mtime", name)
        uname, gname = self._user_names(block[265:329])
        if pax:
            linkname = pax.get(b"linkpath", linkname)
            if b"size" in pax:
                size = self._pax_int(pax[b"size"], "size", name)
            if b"uid" in pax:
                uid = self._pax_int(pax[b"uid"], "uid", name)
            if b"gid" in pax:
                gid = self._pax_int(pax[b"gid"], "gid", name)
            if b"mtime" in pax:
                text = pax[b"mtime"]
                if not _MTIME_RE.match(text):
                    raise HostileInputError(
                        f"{self._what}: entry {_shown(name)!r} has a malformed PAX mtime")
                mtime = int(float(text))
            if b"uname" in pax:
                uname = _text(pax[b"uname"])
            if b"gname" in pax:
                gname = _text(pax[b"gname"])
        if size > limits.max_entry_size:
            raise HostileInputError(f"{self._what}: entry {_shown(name)!r} claims {size} bytes "
                                    f"(limit {limits.max_entry_size})")

        clean = self._clean(name, "entry", allow_root=kind == "dir")
        if _WHITEOUT in clean:
            base = clean.rpartition(b"/")[2]
            if base.startswith(_WHITEOUT) and base[len(_WHITEOUT):] in (b"", b".", b".."):
                # a whiteout deletes its name from lower layers: '..' or '.' would make an
                # unpacker delete the folder itself or its parent
                raise HostileInputError(
                    f"{self._what}: whiteout {_shown(clean)!r} would delete "
                    f"{_text(base[4:]) or 'nothing'!r}"
                )
        via = self._through_symlink(clean)
        if via is not None:
            raise HostileInputError(
                f"{self._what}: entry {_shown(clean)!r} is written through symlink "
                f"{_text(via)!r} created earlier in the same archive (tar-slip)"
            )
        if kind == "symlink":
            if b"\0" in linkname or len(linkname) > limits.max_name_bytes:
                raise HostileInputError(
                    f"{self._what}: symlink {_shown(clean)!r} has a malformed target")
            self._symlinks.add(clean)
            self._clear = None
            link_text = _text(linkname)
        elif kind == "hardlink":
            target = self._clean(linkname, f"hardlink target of {_shown(clean)!r}",
                                 allow_root=False)
            if self._seen.get(target) in (None, "dir"):
                raise HostileInputError(
                    f"{self._what}: hardlink {_shown(clean)!r} points to {_text(target)!r}, "
                    "which is not a file earlier in the archive"
                )
            if self._through_symlink(target) is not None:
                raise HostileInputError(
                    f"{self._what}: hardlink {_shown(clean)!r} points through a symlink "
                    "(tar-slip)"
                )
            if target in self._symlinks:
                # a hardlink to a symlink is another name for the same link: entries
                # written through it are a tar-slip too
                self._symlinks.add(clean)
                self._clear = None
            link_text = _text(target)
        else:
            link_text = ""
        if kind == "file":
            self._data_left = size
            self._pad_left = -size % tf.BLOCK
        else:
            size = 0
        if len(self._seen) < limits.max_entries:
            self._seen[clean] = kind
        return TarEntry(
            _text(clean), kind, mode & 0o7777, uid, gid, size, mtime, link_text, uname, gname,
            clean,
            tuple(sorted((key[_XATTR_LEN:], value) for key, value in pax.items()
                         if key.startswith(tf.XATTR_PREFIX))) if pax else (),
        )

    def _owner(self, fields: bytes, entry: bytes) -> tuple[int, int, int]:
        """Mode, uid and gid from their three header fields (24 bytes), parsed once per
        distinct value: an archive has few."""
        found = self._owners.get(fields)
        if found is None:
            found = (self._number(fields[:8], "mode", entry),
                     self._number(fields[8:16], "uid", entry),
                     self._number(fields[16:], "gid", entry))
            if len(self._owners) < _MAX_NUMBERS:
                self._owners[fields] = found
        return found

    def _user_names(self, fields: bytes) -> tuple[str, str]:
        """The user and group names (64 bytes of header), decoded once per distinct value."""
        found = self._names.get(fields)
        if found is None:
            found = (_text(fields[:32].split(b"\0", 1)[0]), _text(fields[32:].split(b"\0", 1)[0]))
            if len(self._names) < _MAX_NUMBERS:
                self._names[fields] = found
        return found

    def _pax_int(self, text: bytes, name: str, entry: bytes) -> int:
        if not text.isdigit() or not text.isascii() or len(text) > 20:
            raise HostileInputError(
                f"{self._what}: entry {_shown(entry)!r} has a malformed PAX {name}")
        return int(text)


def iter_entries(
    stream: IO[bytes], limits: Limits | None = None, *, what: str = "layer", kind: str | None = None
) -> Iterator[TarEntry]:
    """Entries of a layer stream (gzip/zstd/plain sniffed unless ``kind`` says)."""
    lim = limits or Limits()
    plain = open_decompressed(stream, limit=lim.max_total_bytes, what=what, kind=kind)
    yield from TarReader(plain, lim, what)


def read_entries(raw: IO[bytes], what: str, limits: Limits,
                 take: Callable[[TarEntry, DataReader], None], ahead: bool = False) -> None:
    """Read a layer's blob (any compression) to its end, handing ``take`` each entry with
    its data not yet read.  The decompressed stream and then the blob are read to their
    very end: a verifying reader checks the blob's digest there.  ``ahead``: decompress
    on a thread of its own (see ``open_decompressed``)."""
    with open_decompressed(raw, limit=limits.max_total_bytes, what=what,
                           ahead=ahead) as plain:
        reader = TarReader(plain, limits, what)
        for entry in reader:
            take(entry, reader)
        while plain.read(_CHUNK):
            pass
        while raw.read(_CHUNK):
            pass


class _HashingReader:
    def __init__(self, inner: IO[bytes]):
        self._inner = inner
        self.hasher = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        if data:
            self.hasher.update(data)
        return data


def check_layer(
    stream: IO[bytes], limits: Limits | None = None, *, what: str = "layer", kind: str | None = None
) -> tuple[Digest, int]:
    """Check every entry of a layer stream; returns (diff_id, number of files).

    Files are the entries that are neither folders nor whiteouts.  The diff_id
    covers the whole decompressed stream, trailing bytes included.
    """
    lim = limits or Limits()
    plain = open_decompressed(stream, limit=lim.max_total_bytes, what=what, kind=kind)
    hashing = _HashingReader(plain)
    reader = TarReader(hashing, lim, what)  # type: ignore[arg-type]
    count = sum(1 for entry in reader if entry.type != "dir" and not entry.is_whiteout)
    while hashing.read(_CHUNK):
        pass
    return Digest("sha256", hashing.hasher.hexdigest()), count
