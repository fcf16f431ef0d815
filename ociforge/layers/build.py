"""Reproducible layer tars from files and folders, built in one pass into a blob file.

What makes the bytes reproducible (as jib's ReproducibleLayerBuilder does):
entries sorted bytewise by path (whiteouts first among their siblings), parent
directories written explicitly (0755), uid/gid from the settings with empty
owner names, every mtime = the epoch, modes kept (``mode & 0o7777``) unless
``normalize_modes`` asks for the umask-proof policy of ``normal_mode``, symlinks
stored as they are and never followed, hardlinks written as hardlinks to the
first path (in sorted order) that has the same inode.  Tar names are relative
to the layer root: "app/x", directories "app/" (see tarformat.py).

One pass: the tar stream is hashed (diff_id), compressed
and hashed again (digest, size) while it is written; the blob is never re-read.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import InvalidInputError, OperationError
from ..fsutil import new_file, open_regular
from ..model.descriptor import Descriptor
from ..model.digest import HashingWriter
from ..model.layer import Layer
from ..model.mediatypes import layer_type
from ..options import MAX_EPOCH, Compression, check_epoch
from ..progress.events import NULL_TASK, Task
from . import tarformat as tf
from . import tarsafe
from .blobwriter import TeeReader, write_layer_blob
from .compress import GZIP_BLOCK_SIZE, check_compression, sniff, tune_allocator
from .layerfiles import DIR, FILE, LINK, Collector, Entry, LayerSource, SkipCallback
from .workspace import new_blob_path

_READ_CHUNK = 1 << 20
_FLUSH_AT = 1 << 20
_BLOCK = GZIP_BLOCK_SIZE  # tar stream blocks: one gzip block each, so none is re-cut
_ZEROS = bytes(tf.BLOCK)
_ADVISE_FROM = 4 * _BLOCK  # below that, readahead hints cost more than they save
_advise = getattr(os, "posix_fadvise", None)
_SEQUENTIAL = getattr(os, "POSIX_FADV_SEQUENTIAL", 0)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_OPEN_FLAGS |= getattr(os, "O_NONBLOCK", 0)  # a file swapped for a fifo must not hang us
_FILE_KINDS = (FILE, LINK)  # what a layer's file count counts (as tarsafe does a tar's)


@dataclass(frozen=True)
class BuildSettings:
    compression: Compression = "gzip"
    epoch: int = 0  # mtime of every entry (SOURCE_DATE_EPOCH)
    uid: int = 0
    gid: int = 0
    docker: bool = False  # Docker media types instead of OCI
    threads: int | None = None  # compression threads; never changes the bytes
    # True: modes that do not depend on the umask or chmod habits (see normal_mode)
    normalize_modes: bool = False


def normal_mode(kind: int, mode: int) -> int:
    """The mode policy for reproducible exports (as Jib does).

    Folders 0755; files 0755 if any execute bit is set, else 0644; symlinks as
    they are.  Setuid, setgid and sticky bits are dropped.  So the same files
    checked out under umask 022 or 002, or chmod'ed 0600, give the same bytes.
    """
    if kind == DIR:
        return 0o755
    if kind == LINK:
        return mode
    return 0o755 if mode & 0o111 else 0o644


@dataclass
class BuildResult:
    layer: Layer
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def settings_epoch(explicit: int | None, fallback: int | None = None) -> int:
    """--source-date-epoch, else ``fallback`` (``Options.source_date_epoch``: the
    SOURCE_DATE_EPOCH that ``Options.from_env`` read), else 0."""
    if explicit is not None:
        return check_epoch(explicit, "--source-date-epoch")
    if fallback is not None:
        return check_epoch(fallback, "SOURCE_DATE_EPOCH")
    return 0


# --------------------------------------------------------------------------- writing


def _advise_sequential(fd: int) -> None:
    """Ask for aggressive readahead on a big file (cold caches); a hint, never an error."""
    if _advise is not None:
        with contextlib.suppress(OSError):
            _advise(fd, 0, 0, _SEQUENTIAL)


class _TarOut:
    """Assembles the tar stream in place, in whole blocks handed on to hashing and compression.

    File data is read straight into the block being filled (``os.readv``), so
    each byte is copied once out of the page cache, no bytes object is made per
    read, and every block but the last is exactly one gzip block (1 MiB), which
    the gzip writer deflates as it is instead of cutting and copying it again.
    A block handed to the sink is never touched again: a fresh one is started
    (glibc reuses the freed ones, see ``tune_allocator``), so memory stays
    bounded by the queues downstream.
    """

    def __init__(self, sink: Callable[[bytes | bytearray], None], block_size: int = _BLOCK,
                 on_data: Callable[[int], None] | None = None):
        self._sink = sink
        self._on_data = on_data  # hears the file bytes read, as they are read
        self._size = block_size
        self._buf = bytearray(block_size)
        self._view = memoryview(self._buf)
        self._pos = 0
        self._probe = bytearray(1)  # catches a file that grew, in the same read

    def _emit(self) -> None:
        self._sink(self._buf)
        self._buf = bytearray(self._size)
        self._view = memoryview(self._buf)
        self._pos = 0

    def write(self, data: bytes) -> None:
        pos, n = self._pos, len(data)
        if pos + n < self._size:  # headers and padding: the usual case
            self._view[pos : pos + n] = data
            self._pos = pos + n
            return
        view = memoryview(data)
        while view:
            take = min(len(view), self._size - self._pos)
            self._view[self._pos : self._pos + take] = view[:take]
            self._pos += take
            view = view[take:]
            if self._pos == self._size:
                self._emit()

    def read_file(self, fd: int, size: int, host: bytes) -> int:
        """Append ``size`` bytes of ``fd``; returns how many it had: < size shrank, > grew.

        The last read of the file asks for one byte more (into a scratch byte),
        so a file that grew is noticed without a separate read.  Only a failed
        read is about the file (bad input); what the sink raises passes as it is.
        """
        done = 0
        readv = os.readv
        while True:
            want = min(size - done, self._size - self._pos)
            last = want == size - done
            target = self._view[self._pos : self._pos + want]
            buffers: list[memoryview | bytearray] = [target, self._probe] if last else [target]
            try:
                got = readv(fd, buffers)
            except OSError as exc:
                raise InvalidInputError(
                    f"cannot read {os.fsdecode(host)}: {exc.strerror}"
                ) from None
            if got > want:
                return size + 1
            if not got:
                return done
            self._pos += got
            done += got
            if self._on_data is not None:
                self._on_data(got)
            if self._pos == self._size:
                self._emit()
            if done == size and last:
                return done  # the read asked for more than was left: at the end

    def flush(self) -> None:
        """Hand on what is gathered (the end of the stream)."""
        if self._pos:
            data = self._buf[: self._pos]
            self._pos = 0
            self._sink(data)


def _copy_file(
    host: bytes, size: int, out: _TarOut, ident: tuple[int, int] | None = None
) -> None:
    """Append a file's bytes (and block padding), checking it is still what we listed.

    The open refuses a final symlink (O_NOFOLLOW), and the inode check catches a
    file or folder swapped between listing and reading, so no path is followed
    out of the source tree even by a race.
    """
    try:
        fd = os.open(host, _OPEN_FLAGS)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {os.fsdecode(host)}: {exc.strerror}") from None
    try:
        if ident is not None:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != ident:
                raise OperationError(
                    f"{os.fsdecode(host)} was replaced while the layer was being built"
                )
        if size >= _ADVISE_FROM:
            _advise_sequential(fd)
    except OSError as exc:
        os.close(fd)
        raise InvalidInputError(f"cannot read {os.fsdecode(host)}: {exc.strerror}") from None
    except BaseException:
        os.close(fd)
        raise
    try:
        got = out.read_file(fd, size, host)
    finally:
        os.close(fd)
    if got != size:
        change = "grew" if got > size else "shrank"
        raise OperationError(f"{os.fsdecode(host)} {change} while the layer was being built")
    pad = -size % tf.BLOCK
    if pad:
        out.write(_ZEROS[:pad])


def _write_tar(ordered: list[tuple[bytes, Entry]], settings: BuildSettings, out: _TarOut,
               progress: Task = NULL_TASK) -> int:
    mtime = settings.epoch
    first_of_inode: dict[tuple[int, int], bytes] = {}
    header = tf.header
    if settings.normalize_modes:
        ordered = [(path, replace(e, mode=normal_mode(e.kind, e.mode))) for path, e in ordered]
    for path, e in ordered:
        uid = settings.uid if e.uid < 0 else e.uid
        gid = settings.gid if e.gid < 0 else e.gid
        if e.kind in _FILE_KINDS:
            progress.advance(files=1)
        if e.kind == FILE:
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
                             typeflag=tf.REGTYPE, xattrs=e.xattrs))
            _copy_file(e.host, e.size, out, e.ident)
        elif e.kind == DIR:
            out.write(header(path + b"/", mode=e.mode, uid=uid, gid=gid, size=0, mtime=mtime,
                             typeflag=tf.DIRTYPE, xattrs=e.xattrs))
        elif e.kind == LINK:
            out.write(header(path, mode=e.mode, uid=uid, gid=gid, size=0, mtime=mtime,
                             typeflag=tf.SYMTYPE, linkname=e.target))
        else:
            out.write(header(path, mode=e.mode, uid=uid, gid=gid, size=0, mtime=mtime,
                             typeflag=tf.REGTYPE))
    out.write(tf.END_OF_ARCHIVE)
    out.flush()
    return _file_count(ordered)


def _file_count(ordered: list[tuple[bytes, Entry]]) -> int:
    """The files of a layer as its summary counts them: not folders, not whiteouts."""
    return sum(1 for _, e in ordered if e.kind in _FILE_KINDS)


def _check_settings(settings: BuildSettings) -> None:
    check_compression(settings.compression)
    if not 0 <= settings.epoch <= MAX_EPOCH:
        raise InvalidInputError(f"epoch {settings.epoch} is out of range (0..{MAX_EPOCH})")
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
    progress: Task = NULL_TASK,
) -> BuildResult:
    """Build one reproducible layer blob from files/folders (+ whiteouts for ``removes``).

    ``skip(image_path, host_path)`` may return a reason to leave an entry out
    (a skipped folder is left out whole); reasons are reported in ``skipped``.
    ``progress`` counts the file bytes read (of the total listed) and the files
    written (not folders), and is told the layer's digest.
    """
    _check_settings(settings)
    tune_allocator()
    collector = Collector(skip)
    for source in sources:
        collector.add_source(source)
    for removed in removes:
        collector.add_whiteout(removed)
    return BuildResult(write_entries(collector.ordered(), settings, progress),
                       collector.skipped, collector.warnings)


def write_entries(ordered: list[tuple[bytes, Entry]], settings: BuildSettings,
                  progress: Task = NULL_TASK) -> Layer:
    """The layer blob of entries already collected and sorted (``Collector.ordered``).

    ``progress`` counts the file bytes read (of the total listed) and the files
    written (not folders), and is told the layer's digest."""
    _check_settings(settings)
    tune_allocator()
    progress.expect(_data_size(ordered), files_total=_file_count(ordered))
    on_data = None if progress is NULL_TASK else progress.advance
    layer = write_layer_blob(
        lambda sink: _write_tar(ordered, settings, _TarOut(sink, on_data=on_data), progress),
        settings.compression, settings.docker, settings.threads,
    )
    progress.set(digest=str(layer.digest))
    return layer


def _data_size(ordered: list[tuple[bytes, Entry]]) -> int:
    """The file bytes a layer's tar will carry (a hardlink's bytes once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for _, e in ordered:
        if e.kind != FILE:
            continue
        if e.inode is not None:
            if e.inode in seen:
                continue
            seen.add(e.inode)
        total += e.size
    return total


# --------------------------------------------------------------------------- tar files


def layer_from_tar(
    path: Path, settings: BuildSettings, limits: tarsafe.Limits | None = None,
    progress: Task = NULL_TASK,
) -> BuildResult:
    """Add a .tar/.tar.gz/.tar.zst file as a layer AS IT IS (its bytes become the blob).

    The compression is sniffed from magic bytes; in the same single read the
    blob is copied and hashed, decompressed (bounded), hashed again (diff_id)
    and every entry checked by tarsafe (hostile input -> HostileInputError).
    """
    lim = limits or tarsafe.Limits()
    path = Path(path)
    shown = str(path)
    blob_path = new_blob_path()
    try:
        with open_regular(path, "layer tar") as raw, \
                new_file(blob_path, f"layer blob {blob_path}", buffering=_FLUSH_AT) as fh:
            size = os.fstat(raw.fileno()).st_size
            if size == 0:
                raise InvalidInputError(f"layer tar {shown} is empty, not a tar archive")
            kind = sniff(raw.read(4))
            raw.seek(0)
            progress.expect(size)
            blob = HashingWriter(fh)
            tee = TeeReader(progress.reading(raw), blob)
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
    # the tar's own compression decides (Docker has no zstd type: OCI's is used)
    descriptor = Descriptor(layer_type(kind, settings.docker), blob.digest, blob.size)
    layer = Layer.from_file(blob_path, descriptor, diff_id, count)
    progress.set(digest=str(layer.digest), files=count)
    return BuildResult(layer, [], [])


__all__ = [
    "BuildResult",
    "BuildSettings",
    "LayerSource",
    "build_layer",
    "layer_from_tar",
    "normal_mode",
    "settings_epoch",
    "write_entries",
]
