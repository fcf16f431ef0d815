"""Reproducible layer tars from files and folders, built in one pass into a blob file.

What makes the bytes reproducible (issue 2 item 2, jib's ReproducibleLayerBuilder):
entries sorted bytewise by path (whiteouts first among their siblings), parent
directories written explicitly (0755), uid/gid from the settings with empty
owner names, every mtime = the epoch, modes kept (``mode & 0o7777``), symlinks
stored as they are and never followed, hardlinks written as hardlinks to the
first path (in sorted order) that has the same inode.  Tar names are relative
to the layer root: "app/x", directories "app/" (see tarformat.py).

One pass (DESIGN principle 7): the tar stream is hashed (diff_id), compressed
and hashed again (digest, size) while it is written; the blob is never re-read.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fnmatch import translate
from pathlib import Path
from typing import IO

from . import tarformat as tf
from . import tarsafe
from .compress import BackgroundWriter, check_compression, compressor, sniff, tune_allocator
from .descriptor import Descriptor
from .digest import Digest, HashingWriter
from .errors import InvalidInputError, OperationError
from .layer import Layer
from .mediatypes import layer_type
from .workspace import new_blob_path

SkipCallback = Callable[[str, Path], "str | None"]

_READ_CHUNK = 1 << 20
_FLUSH_AT = 1 << 20
_MAX_EPOCH = 0o77777777777  # what a ustar mtime field holds (year 4147)
_MAX_ID = 0o7777777  # what a ustar uid/gid field holds without PAX; more is allowed
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_OPEN_FLAGS |= getattr(os, "O_NONBLOCK", 0)  # a file swapped for a fifo must not hang us
WHITEOUT_PREFIX = ".wh."


@dataclass(frozen=True)
class LayerSource:
    """A file or folder to put in a layer.

    ``dest`` is an absolute image path.  A folder's CONTENTS go under dest
    ("/" allowed).  A file goes to dest itself, or to dest/<name> when dest
    ends with "/".  A source that is itself a symlink is stored as that
    symlink (at dest, or dest/<name>), never followed.
    """

    src: Path
    dest: str
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildSettings:
    compression: str = "gzip"  # "gzip" | "zstd" | "none"
    epoch: int = 0  # mtime of every entry (SOURCE_DATE_EPOCH)
    uid: int = 0
    gid: int = 0
    docker: bool = False  # Docker media types instead of OCI
    threads: int | None = None  # compression threads; never changes the bytes


@dataclass
class BuildResult:
    layer: Layer
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def settings_epoch(explicit: int | None) -> int:
    """--source-date-epoch, else $SOURCE_DATE_EPOCH, else 0."""
    if explicit is not None:
        value, what = explicit, "--source-date-epoch"
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInputError(f"{what} must be an integer, not {value!r}")
    else:
        text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
        if not text:
            return 0
        what = "SOURCE_DATE_EPOCH"
        if not text.isascii() or not text.isdigit():
            raise InvalidInputError(
                f"{what} must be a whole number of seconds since 1970, not {text[:40]!r}"
            )
        value = int(text)
    if not 0 <= value <= _MAX_EPOCH:
        raise InvalidInputError(f"{what} {value} is out of range (0..{_MAX_EPOCH})")
    return value


# --------------------------------------------------------------------------- collecting

_DIR, _FILE, _LINK, _WHITEOUT = range(4)
_UNSUPPORTED = (
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


@dataclass(slots=True)
class _Entry:
    kind: int
    mode: int
    size: int = 0
    host: bytes = b""
    target: bytes = b""
    inode: tuple[int, int] | None = None  # set when the file has other hardlinks
    ident: tuple[int, int] = (0, 0)  # (st_dev, st_ino) seen when collecting
    synthetic: bool = False


class _Excluder:
    """Glob patterns (fnmatch; '*' crosses '/', so '**' works) against relative paths.

    A pattern without '/' also matches the base name at any depth, the way
    .gitignore/.dockerignore users expect ("__pycache__", "*.pyc").
    """

    def __init__(self, patterns: Sequence[str]):
        full: list[str] = []
        base: list[str] = []
        for pattern in patterns:
            pat = pattern.strip().rstrip("/")
            while pat.startswith(("./", "/")):  # "/build" and "./build" mean "build" here
                pat = pat[2:] if pat.startswith("./") else pat[1:]
            if not pat:
                continue
            full.append(translate(pat))
            if pat.startswith("**/"):
                full.append(translate(pat[3:]))
            if "/" not in pat:
                base.append(translate(pat))
        self._full = re.compile("|".join(full)) if full else None
        self._base = re.compile("|".join(base)) if base else None

    def __bool__(self) -> bool:
        return self._full is not None

    def match(self, rel: str, name: str) -> bool:
        if self._full is not None and self._full.match(rel):
            return True
        return self._base is not None and self._base.match(name) is not None


def _image_path(text: str, what: str) -> bytes:
    """'/a/b/' -> b'a/b' ('' for '/'); refuses relative paths and '..'."""
    if not isinstance(text, str) or not text.startswith("/"):
        raise InvalidInputError(f"{what} {text!r} must be an absolute image path")
    if "\0" in text:
        raise InvalidInputError(f"{what} {text!r} contains a NUL byte")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInputError(f"{what} {text!r} must not contain '..'")
    return os.fsencode("/".join(parts))


def _join(prefix: bytes, rel: bytes) -> bytes:
    return prefix + b"/" + rel if prefix and rel else prefix or rel


class _Collector:
    def __init__(self, skip: SkipCallback | None):
        self.entries: dict[bytes, _Entry] = {}
        self.skipped: list[tuple[str, str]] = []
        self.warnings: list[str] = []
        self._skip = skip

    # -- helpers
    def _put(self, path: bytes, entry: _Entry) -> None:
        old = self.entries.get(path)
        if old is not None:
            if entry.synthetic:
                return  # a real entry always beats an implied parent directory
            if not old.synthetic and not (old.kind == _DIR and entry.kind == _DIR):
                self.warnings.append(
                    f"/{os.fsdecode(path)} is given by more than one source; the last one wins"
                )
        self.entries[path] = entry

    def _parents(self, path: bytes) -> None:
        parent = path.rpartition(b"/")[0]
        while parent:
            self._put(parent, _Entry(_DIR, 0o755, synthetic=True))
            parent = parent.rpartition(b"/")[0]

    def _skipped(self, path: bytes, host: bytes) -> bool:
        name = path.rpartition(b"/")[2]
        if name.startswith(WHITEOUT_PREFIX.encode()):
            self._leave_out(path, "name is reserved for whiteouts", warn=True)
            return True
        if self._skip is None:
            return False
        reason = self._skip(os.fsdecode(path), Path(os.fsdecode(host)))
        if reason:
            self.skipped.append((os.fsdecode(path), reason))
            return True
        return False

    def _leave_out(self, path: bytes, reason: str, warn: bool) -> None:
        shown = os.fsdecode(path)
        self.skipped.append((shown, reason))
        if warn:
            self.warnings.append(f"skipped /{shown}: {reason}")

    def _entry_for(self, path: bytes, host: bytes, st: os.stat_result) -> _Entry | None:
        mode = st.st_mode
        if stat.S_ISREG(mode):
            ident = (st.st_dev, st.st_ino)
            inode = ident if st.st_nlink > 1 else None
            return _Entry(_FILE, mode & 0o7777, st.st_size, host, inode=inode, ident=ident)
        if stat.S_ISDIR(mode):
            return _Entry(_DIR, mode & 0o7777)
        if stat.S_ISLNK(mode):
            return _Entry(_LINK, mode & 0o7777 or 0o777, target=os.readlink(host))
        kind = next((name for test, name in _UNSUPPORTED if test(mode)), "unknown file type")
        self._leave_out(path, f"unsupported file type ({kind})", warn=True)
        return None

    # -- sources
    def add_source(self, source: LayerSource) -> None:
        dest = _image_path(source.dest, "layer destination")
        src = os.fsencode(Path(source.src))
        try:
            st = os.lstat(src)
        except FileNotFoundError:
            raise InvalidInputError(f"layer source {os.fsdecode(src)} does not exist") from None
        except OSError as exc:
            raise InvalidInputError(f"layer source {os.fsdecode(src)}: {exc.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            if dest:
                self._parents(dest)
                self._put(dest, _Entry(_DIR, 0o755, synthetic=True))
            self._walk(src, dest, _Excluder(source.exclude))
            return
        if not dest or source.dest.endswith("/"):
            dest = _join(dest, os.path.basename(src.rstrip(b"/")))
        if self._skipped(dest, src):
            return
        entry = self._entry_for(dest, src, st)
        if entry is not None:
            self._parents(dest)
            self._put(dest, entry)

    def _walk(self, root: bytes, dest: bytes, excluder: _Excluder) -> None:
        stack: list[tuple[bytes, bytes]] = [(root, b"")]
        while stack:
            host_dir, rel_dir = stack.pop()
            try:
                with os.scandir(host_dir) as it:
                    children = list(it)
            except OSError as exc:
                raise InvalidInputError(
                    f"cannot list {os.fsdecode(host_dir)}: {exc.strerror}"
                ) from None
            for child in children:
                rel = rel_dir + b"/" + child.name if rel_dir else child.name
                if excluder and excluder.match(os.fsdecode(rel), os.fsdecode(child.name)):
                    continue
                path = _join(dest, rel)
                host = child.path
                if self._skipped(path, host):
                    continue
                try:
                    st = child.stat(follow_symlinks=False)
                except OSError as exc:
                    raise InvalidInputError(
                        f"cannot read {os.fsdecode(host)}: {exc.strerror}"
                    ) from None
                entry = self._entry_for(path, host, st)
                if entry is None:
                    continue
                self._put(path, entry)
                if entry.kind == _DIR:
                    stack.append((host, rel))

    def add_whiteout(self, removed: str) -> None:
        path = _image_path(removed, "path to remove")
        if not path:
            raise InvalidInputError("cannot remove '/' (the whole root) with a whiteout")
        parent, _, name = path.rpartition(b"/")
        if name.startswith(WHITEOUT_PREFIX.encode()):
            raise InvalidInputError(f"path to remove {removed!r} is itself a whiteout name")
        wh = _join(parent, WHITEOUT_PREFIX.encode() + name)
        self._parents(wh)
        self.entries[wh] = _Entry(_WHITEOUT, 0o644)

    def ordered(self) -> list[tuple[bytes, _Entry]]:
        """Entries sorted bytewise by path; whiteouts sort before their siblings."""
        entries = self.entries
        for path in entries:
            parent = path.rpartition(b"/")[0]
            if parent and entries[parent].kind != _DIR:
                raise InvalidInputError(
                    f"layer sources conflict: /{os.fsdecode(parent)} is not a directory "
                    f"in this layer but /{os.fsdecode(path)} is inside it"
                )
        return sorted(entries.items(), key=_sort_key)


def _sort_key(item: tuple[bytes, _Entry]) -> bytes:
    path, entry = item
    if entry.kind != _WHITEOUT:
        return path
    parent, sep, name = path.rpartition(b"/")
    return parent + sep + b"\0" + name


# --------------------------------------------------------------------------- writing


class _TarOut:
    """Gathers small header/data writes into ~1 MiB chunks for the hash+compress sink."""

    def __init__(self, sink: Callable[[bytes | bytearray], None]):
        self._sink = sink
        self._buf = bytearray()

    def write(self, data: bytes) -> None:
        if len(data) >= _FLUSH_AT:
            self.flush()
            self._sink(data)
            return
        self._buf += data
        if len(self._buf) >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self._sink(self._buf)
            self._buf = bytearray()


def _copy_file(
    host: bytes, size: int, out: _TarOut, ident: tuple[int, int] | None = None
) -> None:
    """Append a file's bytes (and block padding), checking it is still what we listed.

    The open refuses a final symlink (O_NOFOLLOW), and the inode check catches a
    file or folder swapped between listing and reading, so no path is followed
    out of the source tree even by a race.
    """
    shown = os.fsdecode(host)
    try:
        fd = os.open(host, _OPEN_FLAGS)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {shown}: {exc.strerror}") from None
    try:
        if ident is not None:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != ident:
                raise OperationError(f"{shown} was replaced while the layer was being built")
        remaining = size
        at_eof = False
        while remaining > 0:
            want = min(remaining + 1, _READ_CHUNK)
            chunk = os.read(fd, want)
            if len(chunk) > remaining:
                raise OperationError(f"{shown} grew while the layer was being built")
            if not chunk:
                raise OperationError(f"{shown} shrank while the layer was being built")
            at_eof = len(chunk) < want
            out.write(chunk)
            remaining -= len(chunk)
        if not at_eof and os.read(fd, 1):
            raise OperationError(f"{shown} grew while the layer was being built")
    except OSError as exc:
        raise InvalidInputError(f"cannot read {shown}: {exc.strerror}") from None
    finally:
        os.close(fd)
    pad = -size % tf.BLOCK
    if pad:
        out.write(b"\0" * pad)


def _write_tar(ordered: list[tuple[bytes, _Entry]], settings: BuildSettings, out: _TarOut) -> int:
    uid, gid, mtime = settings.uid, settings.gid, settings.epoch
    first_of_inode: dict[tuple[int, int], bytes] = {}
    header = tf.header
    for path, e in ordered:
        if e.kind == _FILE:
            if e.inode is not None:
                first = first_of_inode.get(e.inode)
                if first is not None:
                    out.write(
                        header(path, mode=e.mode, uid=uid, gid=gid, size=0, mtime=mtime,
                               typeflag=tf.LNKTYPE, linkname=first)
                    )
                    continue
                first_of_inode[e.inode] = path
            out.write(header(path, mode=e.mode, uid=uid, gid=gid, size=e.size, mtime=mtime,
                             typeflag=tf.REGTYPE))
            _copy_file(e.host, e.size, out, e.ident)
        elif e.kind == _DIR:
            out.write(header(path + b"/", mode=e.mode, uid=uid, gid=gid, size=0, mtime=mtime,
                             typeflag=tf.DIRTYPE))
        elif e.kind == _LINK:
            out.write(header(path, mode=e.mode, uid=uid, gid=gid, size=0, mtime=mtime,
                             typeflag=tf.SYMTYPE, linkname=e.target))
        else:
            out.write(header(path, mode=e.mode, uid=uid, gid=gid, size=0, mtime=mtime,
                             typeflag=tf.REGTYPE))
    out.write(tf.END_OF_ARCHIVE)
    out.flush()
    return len(ordered)


def _check_settings(settings: BuildSettings) -> None:
    check_compression(settings.compression)
    if not 0 <= settings.epoch <= _MAX_EPOCH:
        raise InvalidInputError(f"epoch {settings.epoch} is out of range (0..{_MAX_EPOCH})")
    for name in ("uid", "gid"):
        value = getattr(settings, name)
        if not isinstance(value, int) or value < 0 or value > 2**31:
            raise InvalidInputError(f"{name} {value!r} is out of range")


def build_layer(
    sources: Sequence[LayerSource],
    settings: BuildSettings,
    *,
    removes: Sequence[str] = (),
    skip: SkipCallback | None = None,
) -> BuildResult:
    """Build one reproducible layer blob from files/folders (+ whiteouts for ``removes``).

    ``skip(image_path, host_path)`` may return a reason to leave an entry out
    (a skipped folder is left out whole); reasons are reported in ``skipped``.
    """
    _check_settings(settings)
    tune_allocator()
    collector = _Collector(skip)
    for source in sources:
        collector.add_source(source)
    for removed in removes:
        collector.add_whiteout(removed)
    ordered = collector.ordered()

    blob_path = new_blob_path()
    diff = hashlib.sha256()
    try:
        with open(blob_path, "xb", buffering=_FLUSH_AT) as fh:
            blob = HashingWriter(fh)
            # diff_id hashing and hashing+writing the blob each get their own thread
            out = BackgroundWriter(blob.write)
            diff_feed = BackgroundWriter(diff.update)
            comp = compressor(settings.compression, out, threads=settings.threads)
            try:

                def sink(chunk: bytes | bytearray) -> None:
                    diff_feed.write(chunk)
                    comp.write(chunk)

                count = _write_tar(ordered, settings, _TarOut(sink))
                comp.finish()
                diff_feed.close()
                out.close()
            except BaseException:
                comp.abort()
                diff_feed.abandon()
                out.abandon()
                raise
    except BaseException:
        blob_path.unlink(missing_ok=True)
        raise
    descriptor = Descriptor(
        layer_type(settings.compression, settings.docker), blob.digest, blob.size
    )
    layer = Layer.from_file(blob_path, descriptor, Digest("sha256", diff.hexdigest()), count)
    return BuildResult(layer, collector.skipped, collector.warnings)


# --------------------------------------------------------------------------- tar files


class _TeeReader:
    """Reads a file while copying and hashing every byte (the blob's digest and copy)."""

    def __init__(self, raw: IO[bytes], copy: HashingWriter):
        self._raw = raw
        self._copy = copy

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n if n is not None and n >= 0 else _READ_CHUNK)
        if data:
            self._copy.write(data)
        return data

    def close(self) -> None:
        pass


def layer_from_tar(
    path: Path, settings: BuildSettings, limits: tarsafe.Limits | None = None
) -> BuildResult:
    """Add a .tar/.tar.gz/.tar.zst file as a layer AS IT IS (its bytes become the blob).

    The compression is sniffed from magic bytes; in the same single read the
    blob is copied and hashed, decompressed (bounded), hashed again (diff_id)
    and every entry checked by tarsafe (hostile input -> HostileInputError).
    """
    lim = limits or tarsafe.Limits()
    path = Path(path)
    shown = str(path)
    if not path.exists():
        raise InvalidInputError(f"layer tar {shown} does not exist")
    if not path.is_file():
        raise InvalidInputError(f"layer tar {shown} is not a regular file")
    if path.stat().st_size == 0:
        raise InvalidInputError(f"layer tar {shown} is empty, not a tar archive")
    blob_path = new_blob_path()
    try:
        with open(path, "rb") as raw, open(blob_path, "xb", buffering=_FLUSH_AT) as fh:
            kind = sniff(raw.read(4))
            raw.seek(0)
            blob = HashingWriter(fh)
            tee = _TeeReader(raw, blob)
            diff_id, count = tarsafe.check_layer(
                tee, lim, what=f"layer tar {shown}", kind=kind  # type: ignore[arg-type]
            )
            # the tee copied and hashed what was read; copy what follows the stream too
            while tee.read(_READ_CHUNK):
                pass
    except OSError as exc:
        blob_path.unlink(missing_ok=True)
        raise InvalidInputError(f"cannot read layer tar {shown}: {exc.strerror}") from None
    except BaseException:
        blob_path.unlink(missing_ok=True)
        raise
    if kind == "zstd" and settings.docker:
        media_type = layer_type("zstd", False)
    else:
        media_type = layer_type(kind, settings.docker)
    descriptor = Descriptor(media_type, blob.digest, blob.size)
    layer = Layer.from_file(blob_path, descriptor, diff_id, count)
    return BuildResult(layer, [], [])


__all__ = [
    "BuildResult",
    "BuildSettings",
    "LayerSource",
    "build_layer",
    "layer_from_tar",
    "settings_epoch",
]
