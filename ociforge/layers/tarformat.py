"""Encoding POSIX (ustar + PAX) tar headers by hand, for speed and exact bytes.

Why not ``tarfile``: building a TarInfo per file costs more than the file's
data for small files, and we want full control over every header byte
(empty uname/gname, integer mtime, no atime/ctime records, no record padding).

Conventions of the headers we write:
- names are relative ("app/x", never "/app/x" or "./app/x"); directories
  carry a trailing slash ("app/"), as GNU tar and Docker write them;
- a name or link target that is not ASCII or longer than 100 bytes, and a size
  or id too large for its octal field, goes into a PAX 'x' header
  (``path``/``linkpath``/``size``/``uid``/``gid``), whose own header is named
  ``././@PaxHeader`` like Python's tarfile names it;
- extended attributes are PAX ``SCHILY.xattr.<name>`` records (GNU tar's and
  Go's archive/tar's spelling, which Docker and containerd apply);
- the archive ends with two zero blocks and is not padded to a 10240-byte record.
"""

from __future__ import annotations

from zlib import adler32

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)
REGTYPE = b"0"
LNKTYPE = b"1"
SYMTYPE = b"2"
CHRTYPE = b"3"
BLKTYPE = b"4"
DIRTYPE = b"5"
FIFOTYPE = b"6"
CONTTYPE = b"7"
XHDTYPE = b"x"
XGLTYPE = b"g"
GNU_LONGNAME = b"L"
GNU_LONGLINK = b"K"

XATTR_PREFIX = b"SCHILY.xattr."

_MAX_OCTAL_8 = 0o7777777
_MAX_OCTAL_12 = 0o77777777777
_PAX_NAME = b"././@PaxHeader"
_ZERO_DEV = b"0000000\0"


def padding(size: int) -> bytes:
    """Zero bytes that round ``size`` up to a whole block."""
    return b"\0" * (-size % BLOCK)


def pax_record(keyword: bytes, value: bytes) -> bytes:
    """One '<len> <keyword>=<value>\\n' record, where len counts the whole record."""
    payload = b" " + keyword + b"=" + value + b"\n"
    length = len(payload) + 1
    while len(str(length)) + len(payload) != length:
        length = len(str(length)) + len(payload)
    return str(length).encode("ascii") + payload


def _fits(name: bytes) -> bool:
    return len(name) <= 100 and name.isascii()


def _ascii_field(name: bytes) -> bytes:
    """A plain-ASCII stand-in for the ustar field when the real value is in PAX."""
    if name.isascii():
        return name[:100]
    return bytes(c if c < 128 else 0x5F for c in name)[:100]


_TAIL = b"ustar\x0000" + b"\0" * 64 + _ZERO_DEV + _ZERO_DEV + b"\0" * 167  # empty owners


def _checksum(block: bytes) -> int:
    """sum(block) at C speed: adler32's low half is 1 + the byte sum mod 65521, and
    256 bytes never sum past 65280, so two halves give the exact sum."""
    return (adler32(block[:256]) & 0xFFFF) + (adler32(block[256:]) & 0xFFFF) - 2


def _header_block(
    name: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: bytes,
) -> bytes:
    block = b"".join(
        (
            name.ljust(100, b"\0"),
            b"%07o\0%07o\0%07o\0%011o\0%011o\0        " % (mode, uid, gid, size, mtime),
            typeflag,
            linkname.ljust(100, b"\0"),
            _TAIL,
        )
    )
    return b"%s%06o\0 %s" % (block[:148], _checksum(block), block[156:])


def header(
    name: bytes,
    *,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: bytes = b"",
    xattrs: tuple[tuple[bytes, bytes], ...] = (),
) -> bytes:
    """The header block(s) of one entry: an optional PAX header, then the ustar block.

    ``xattrs`` are (name, value) pairs, written in the order given.
    """
    records: list[bytes] = [pax_record(XATTR_PREFIX + key, value) for key, value in xattrs]
    if not _fits(name):
        records.append(pax_record(b"path", name))
        name = _ascii_field(name)
    if linkname and not _fits(linkname):
        records.append(pax_record(b"linkpath", linkname))
        linkname = _ascii_field(linkname)
    if size > _MAX_OCTAL_12:
        records.append(pax_record(b"size", b"%d" % size))
        size = 0
    if uid > _MAX_OCTAL_8:
        records.append(pax_record(b"uid", b"%d" % uid))
        uid = 0
    if gid > _MAX_OCTAL_8:
        records.append(pax_record(b"gid", b"%d" % gid))
        gid = 0
    main = _header_block(name, mode & 0o7777, uid, gid, size, mtime, typeflag, linkname)
    if not records:
        return main
    if not all(r.isascii() for r in records) and not _all_utf8(records):
        records.insert(0, pax_record(b"hdrcharset", b"BINARY"))
    data = b"".join(records)
    pax = _header_block(_PAX_NAME, 0o644, 0, 0, len(data), mtime, XHDTYPE, b"")
    return pax + data + padding(len(data)) + main


def _all_utf8(records: list[bytes]) -> bool:
    try:
        for r in records:
            r.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
