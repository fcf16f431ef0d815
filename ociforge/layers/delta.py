"""A root filesystem's changes against its base image, as one layer: a daemonless commit.

Two passes, each over its input once.

1. **The base index.**  The base image's layers are streamed (lowest first,
   decompressed, never held; read by the index itself, or handed over entry by
   entry through ``BaseIndex.feed`` by another pass over them, such as the
   export's license and secret scan) into a map of its merged filesystem: path ->
   one packed record (kind, mode, owner, size, mtime, a tag of the extended
   attributes, the link target, and a content digest only where one will be
   needed).  Whiteouts, opaque folders and folders replaced by files remove
   what they hide.  About 100 bytes a path: 100,000 paths are ~10 MB.

   Hashing is lazy: a base file's content is hashed while its layer streams
   by only when the root filesystem has a file at that path whose cheap
   attributes all agree but cannot settle the question (``needs_hash``), so
   an ordinary export hashes nothing.  The stream looks at the root
   filesystem (one lstat per base file) only where such files are to be
   expected: with ``compare="content"``, or with ``changed_after_ns`` known (a
   live root, where files touched since it started are).  Without that time a
   file's content must decide only when its ctime lies in its mtime's second
   or earlier, which an unpacked or copied root filesystem practically never
   has; such a file is hashed from the base layers after the walk, in one
   more read, as with a kept index.

2. **The walk.**  The root filesystem is walked once with layerfiles' rules
   (never through a symlink, sockets and devices reported, not read), and each
   entry compared with the index, which it leaves as it goes (so what remains
   at the end was deleted):

   * *unchanged*: same kind, mode, owner and extended attributes; for a file
     the same size and whole-second mtime too (tar keeps whole seconds, and a
     file unpacked from the base carries its layer's mtime), unless
     ``needs_hash`` says the metadata cannot be trusted, then the same
     content (sha256); for a symlink the same target and owner.  Folders are
     never compared by mtime (it changes whenever an entry is added).
   * *added* or *changed*: written, with its own mode, owner and extended
     attributes (``security.capability``, ``user.*``, POSIX ACLs), after the
     ``skip`` rules had their say; folders above it are written too, with
     their own attributes, so a parent's mode or owner never changes by
     accident.  Files sharing an inode stay hardlinks: when one is written,
     its unchanged partners are written too, as hardlinks to it; when one is
     left out by a rule, its partners are left out with it (the same bytes).
   * *deleted*: what remains in the index gets a whiteout, only at the top of
     each deleted subtree, and never for anything the ``prune`` rules keep out
     of the export (a volatile or private folder is neither exported nor
     deleted).  A folder whose base children are all gone while it stays a
     folder gets one opaque whiteout (``.wh..wh..opq``) instead of one per child.

``needs_hash`` (the rule for "cannot decide"): with ``compare="content"``
always; else when the file's ctime lies after ``changed_after_ns`` (the time
the root filesystem was made from the base, where the caller knows it: a file
touched after that had its content or mtime set then, perhaps back to the
base's), or when its ctime is in the same second as its mtime or earlier (it
may have been written again within the second its mtime names).  Content
changes that keep size and mtime and happened before ``changed_after_ns`` (or
with no such time known) are not seen, as with docker commit's and rsync's
metadata checks; ``compare="content"`` sees them.

Everything written is sorted and timestamped like any built layer (build.py),
so the same root filesystem gives the same bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import IO, Any, Protocol

from ..errors import InvalidInputError, OperationError
from ..model.layer import Layer
from ..model.mediatypes import LAYERS
from ..progress.events import NULL_TASK, Progress, Task
from .build import BuildResult, BuildSettings, write_entries
from .layerfiles import (
    DIR,
    FILE,
    LINK,
    WHITEOUT,
    WHITEOUT_PREFIX,
    Collector,
    Entry,
    Excluder,
    SkipCallback,
    join,
    lstat_entry,
)
from .tarsafe import DataReader, Limits, TarEntry, read_entries

log = logging.getLogger("ociforge.delta")

COMPARE_MODES = ("metadata", "content")
OPAQUE = b".wh..wh..opq"
# reasons the walk itself gives for leaving an entry out (the caller's prune gives its own)
OTHER_FILESYSTEM = "other-filesystem"
SOCKET = "socket"

_NS = 1_000_000_000
_CHUNK = 1 << 20
_OTHER = 3                          # a base entry that is no file, folder or symlink
_HASHED = 0x80                      # the record carries a sha256 of the content
_KIND = 0x0F
_RECORD = struct.Struct("<BHIIQqQ")  # kind|flags, mode, uid, gid, size, mtime, xattr tag
_ITEM = struct.Struct("<IH")        # a kept index: path length, record length, then both
_DIGEST = 32
_MAX_ID = 0xFFFFFFFF
_WH = WHITEOUT_PREFIX.encode()
_KINDS = MappingProxyType({"file": FILE, "dir": DIR, "symlink": LINK})
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_NONBLOCK", 0))
# extended attributes a delta carries: capabilities, user attributes and ACLs (not SELinux
# labels, IMA/EVM signatures or trusted.*, which belong to the machine they were set on)
_KEPT_XATTRS = frozenset({b"security.capability", b"system.posix_acl_access",
                          b"system.posix_acl_default"})

Prune = Callable[[bytes, bytes], "str | None"]


class LayerObserver(Protocol):
    """Sees a base layer's entries while the index reads it (so that, for example, the
    inventory does not read the layer a second time); may read each entry's data."""

    def entry(self, entry: TarEntry, data: DataReader) -> None: ...

    def done(self) -> None: ...


Observe = Callable[[int, Layer], "LayerObserver | None"]


@dataclass(frozen=True)
class DeltaOptions:
    """How to compare and what to leave out.

    ``prune(image_path, host_path)`` names the rule that keeps a path (and all
    below it) out of the delta, its deletion included; ``protected`` lists
    paths it prunes by name, so no folder above them is made opaque.  ``skip``
    (the license and secret rules) judges only what was added or changed.
    """

    compare: str = "metadata"
    changed_after_ns: int | None = None
    prune: Prune | None = None
    protected: frozenset[bytes] = frozenset()
    skip: SkipCallback | None = None
    xattrs: bool = True
    limits: Limits | None = None


@dataclass
class DeltaStats:
    added: int = 0
    changed: int = 0
    deleted: int = 0                      # whiteouts written (opaque ones included)
    opaque: int = 0
    hashed: int = 0                       # files whose content decided
    pruned: list[tuple[str, str]] = field(default_factory=list)     # (path, rule), tops only
    left_out: list[tuple[str, str]] = field(default_factory=list)   # hardlinks of left-out files


@dataclass
class DeltaResult:
    build: BuildResult
    stats: DeltaStats

    @property
    def layer(self) -> Layer:
        return self.build.layer


def check_compare(compare: str) -> str:
    if compare not in COMPARE_MODES:
        raise InvalidInputError(f"--compare must be one of {', '.join(COMPARE_MODES)}, "
                                f"not {compare!r}")
    return compare


# -- records ---------------------------------------------------------------------------------

def xattr_tag(xattrs: Sequence[tuple[bytes, bytes]]) -> int:
    """A 64-bit tag of the kept extended attributes (0: none), for comparing cheaply."""
    kept = [(k, v) for k, v in xattrs if k in _KEPT_XATTRS or k.startswith(b"user.")]
    if not kept:
        return 0
    digest = hashlib.blake2b(digest_size=8)
    for key, value in sorted(kept):
        digest.update(b"%d:%s=%d:" % (len(key), key, len(value)) + value)
    return int.from_bytes(digest.digest(), "little") or 1


def read_xattrs(host: bytes) -> tuple[tuple[bytes, bytes], ...]:
    """The kept extended attributes of a file or folder, sorted; those not readable are
    not exported (a file system without them, a permission refused)."""
    try:
        names = os.listxattr(host, follow_symlinks=False)
    except OSError:
        return ()
    out = []
    for name in names:
        key = os.fsencode(name)
        if key in _KEPT_XATTRS or key.startswith(b"user."):
            try:
                out.append((key, os.getxattr(host, name, follow_symlinks=False)))
            except OSError:
                continue
    return tuple(sorted(out))


def _pack(kind: int, mode: int, uid: int, gid: int, size: int, mtime: int, tag: int,
          digest: bytes | None, target: bytes) -> bytes:
    flags = _HASHED if digest is not None else 0
    head = _RECORD.pack(kind | flags, mode & 0o7777, min(uid, _MAX_ID), min(gid, _MAX_ID),
                        size, mtime, tag)
    return head + (digest or b"") + target


def _kind(record: bytes) -> int:
    return record[0] & _KIND


def _target(record: bytes) -> bytes:
    return record[_RECORD.size + (_DIGEST if record[0] & _HASHED else 0):]


def _digest(record: bytes) -> bytes | None:
    if not record[0] & _HASHED:
        return None
    return record[_RECORD.size:_RECORD.size + _DIGEST]


def indexable(layer: Layer) -> bool:
    """A layer type the index reads (not a foreign or unknown one: its files count as
    absent)."""
    return layer.media_type in LAYERS and "foreign" not in layer.media_type \
        and "nondistributable" not in layer.media_type


def needs_hash(st: os.stat_result, mtime: int, options: DeltaOptions) -> bool:
    """A file whose cheap attributes agree with the base: must its content decide?"""
    if options.compare == "content":
        return True
    ctime = st.st_ctime_ns
    if options.changed_after_ns is not None and ctime > options.changed_after_ns:
        return True
    return ctime // _NS <= mtime


def _same_cheap(st: os.stat_result, mode: int, uid: int, gid: int, size: int) -> bool:
    return (stat.S_ISREG(st.st_mode) and st.st_size == size and (st.st_mode & 0o7777) == mode
            and st.st_uid == uid and st.st_gid == gid)


# -- pass 1: the base index ------------------------------------------------------------------

class BaseIndex:
    """The base image's merged filesystem: image path (bytes) -> packed record."""

    def __init__(self, rootfs: bytes, options: DeltaOptions,
                 layers: Sequence[Layer] | None = None):
        self.records: dict[bytes, bytes] = {}
        self.hashed = 0
        self.warnings: list[str] = []
        self.layers = layers        # to read again for content an index read from bytes lacks
        self._root = rootfs.rstrip(b"/")
        self._options = options

    def to_bytes(self) -> bytes:
        """The index without content digests (they depend on the rootfs it was made for),
        to be kept by the base layers' digests and read back with ``from_bytes``."""
        out = bytearray()
        pack = _ITEM.pack
        for path, record in self.records.items():
            plain = bytes([record[0] & ~_HASHED]) + record[1:_RECORD.size] + _target(record)
            out += pack(len(path), len(plain))
            out += path
            out += plain
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes, rootfs: bytes, options: DeltaOptions,
                   layers: Sequence[Layer]) -> BaseIndex:
        """An index kept by ``to_bytes``; ValueError when the bytes are not one."""
        index = cls(rootfs, options, layers)
        records = index.records
        view = memoryview(data)
        pos, end, head = 0, len(data), _ITEM.size
        unpack = _ITEM.unpack_from
        while pos < end:
            if pos + head > end:
                raise ValueError("a kept rootfs index is cut short")
            path_len, record_len = unpack(view, pos)
            pos += head
            stop = pos + path_len + record_len
            if record_len < _RECORD.size or stop > end:
                raise ValueError("a kept rootfs index is damaged")
            record = bytes(view[pos + path_len:stop])
            if record[0] & _HASHED or record[0] & _KIND > _OTHER:
                raise ValueError("a kept rootfs index is damaged")
            records[bytes(view[pos:pos + path_len])] = record
            pos = stop
        return index

    def add_layers(self, layers: Sequence[Layer], observe: Observe | None = None,
                   progress: Progress | None = None,
                   parsed: Mapping[int, LayerParse] | None = None) -> None:
        """Index ``layers`` (lowest first); ``observe(i, layer)`` may give an observer of
        layer ``i``'s entries.  ``parsed`` holds layers another read already took apart
        (``feed``), by index: those are applied without reading them again.  Each read is a
        ``scan`` progress task (the blob's bytes)."""
        progress = progress or Progress()
        total = len(layers)
        for i, layer in enumerate(layers):
            what = f"base layer {i + 1}/{total} ({layer.digest})"
            if not indexable(layer):
                self.warnings.append(f"{what} was not compared: {layer.media_type} is a foreign "
                                     "or unknown layer type (its files count as absent)")
                continue
            if parsed is not None and i in parsed:
                self.apply(parsed[i])
                continue
            log.info("indexing %s", what)
            observer = observe(i, layer) if observe is not None else None
            with progress.task("scan", str(layer.digest), layer.size,
                               f"base layer {i + 1}/{total} (rootfs index)") as task, \
                    layer.open() as raw:
                self.add_stream(task.reading(raw), what, observer)  # type: ignore[arg-type]

    def add_stream(self, raw: IO[bytes], what: str, observer: LayerObserver | None = None
                   ) -> None:
        """Apply one layer's tar stream (any compression) on top of what is indexed."""
        feed = self.feed(observer)
        self.stream(raw, what, feed)
        self.apply(feed.parsed)

    def stream(self, raw: IO[bytes], what: str, feed: IndexFeed) -> None:
        """Read one layer's tar stream (any compression) to its end into ``feed``."""
        read_entries(raw, what, self._options.limits or Limits(), feed.entry, ahead=True)
        feed.done()

    def feed(self, observer: LayerObserver | None = None) -> IndexFeed:
        """A layer's entries, handed over by whoever streams it (in order, each entry's data
        not yet read); its ``parsed`` goes to ``apply`` (or ``add_layers``) once the layer
        was read to its end and every layer below it is applied."""
        return IndexFeed(self, observer)

    def apply(self, parsed: LayerParse) -> None:
        """Lay one layer over the index: what it deletes or hides goes, then its entries."""
        self._apply(parsed.records, parsed.whiteouts, parsed.opaque)
        self.hashed += parsed.hashed

    def _record(self, entry: TarEntry, data: DataReader, mine: dict[bytes, bytes],
                observer: LayerObserver | None) -> tuple[bytes | None, bool]:
        """The entry's packed record (None: a hardlink to nothing indexed), and whether its
        content was hashed."""
        kind = _KINDS.get(entry.type, _OTHER)
        hashing = kind == FILE and self._wants_digest(entry)
        sha = hashlib.sha256() if hashing else None
        if observer is not None:   # it sees the data first; what it reads is hashed too
            observer.entry(entry, _Tee(data, sha) if sha is not None else data)
        if entry.type == "hardlink":
            return mine.get(os.fsencode(entry.linkname)), False
        tag = xattr_tag(entry.xattrs) if entry.xattrs else 0
        digest = None
        if sha is not None:
            while True:
                chunk = data.read(_CHUNK)
                if not chunk:
                    break
                sha.update(chunk)
            digest = sha.digest()
        target = os.fsencode(entry.linkname) if kind == LINK else b""
        return _pack(kind, entry.mode, entry.uid, entry.gid, entry.size, entry.mtime, tag,
                     digest, target), digest is not None

    def _wants_digest(self, entry: TarEntry) -> bool:
        """Whether the walk will need this file's content: the root filesystem holds a file
        there whose cheap attributes agree but cannot decide.  (The lstat may pass through a
        symlinked folder; it only decides whether to hash, never what is exported.)  Not
        asked where such files are not to be expected (see the module docstring)."""
        if self._options.compare != "content" and self._options.changed_after_ns is None:
            return False
        try:
            st = os.lstat(self._root + b"/" + entry.raw_name)
        except OSError:
            return False
        if not _same_cheap(st, entry.mode, entry.uid, entry.gid, entry.size):
            return False
        if self._options.compare != "content" and st.st_mtime_ns // _NS != entry.mtime:
            return False
        return needs_hash(st, entry.mtime, self._options)

    def _apply(self, mine: dict[bytes, bytes], whiteouts: set[bytes], opaque: set[bytes]
               ) -> None:
        """Lay one layer over the index: what it deletes or hides goes, then its entries."""
        records = self.records
        below: set[bytes] = set(opaque)     # folders whose lower contents go
        for path in whiteouts:
            old = records.pop(path, None)
            if old is not None and _kind(old) == DIR:
                below.add(path)
        for path, record in mine.items():
            old = records.get(path)
            if old is not None and _kind(old) == DIR and _kind(record) != DIR:
                below.add(path)             # a folder replaced by a file: its contents go
        if below:
            for path in [p for p in records if _under(p, below)]:
                del records[path]
        records.update(mine)


@dataclass
class LayerParse:
    """One base layer as the index takes it: its entries' records, whiteouts and opaque
    folders (applied over the layers below it by ``BaseIndex.apply``)."""

    records: dict[bytes, bytes] = field(default_factory=dict)
    whiteouts: set[bytes] = field(default_factory=set)
    opaque: set[bytes] = field(default_factory=set)
    hashed: int = 0


class IndexFeed:
    """One base layer's entries for the index (a LayerObserver), from whoever reads the
    layer: the index itself, or another pass over it (the base's license and secret scan),
    so that a layer is read once for both.  ``observer`` sees every entry too."""

    def __init__(self, index: BaseIndex, observer: LayerObserver | None = None):
        self._index = index
        self._observer = observer
        self.parsed = LayerParse()

    def entry(self, entry: TarEntry, data: DataReader) -> None:
        name = entry.raw_name
        parent, _, base = name.rpartition(b"/")
        parsed = self.parsed
        if base.startswith(_WH):
            if self._observer is not None:
                self._observer.entry(entry, data)
            if base == OPAQUE:
                parsed.opaque.add(parent)
            else:
                parsed.whiteouts.add(join(parent, base[len(_WH):]))
            return
        if not name:
            if self._observer is not None:
                self._observer.entry(entry, data)
            return  # the layer's root folder
        record, hashed = self._index._record(entry, data, parsed.records, self._observer)
        if record is not None:
            parsed.records[name] = record
        parsed.hashed += hashed

    def done(self) -> None:
        if self._observer is not None:
            self._observer.done()


class _Tee:
    """An entry's data for an observer, hashed as it reads it (the rest is hashed after)."""

    def __init__(self, reader: DataReader, sha: Any):
        self._reader = reader
        self._sha = sha

    def read(self, n: int = -1) -> bytes:
        data = self._reader.read(n)
        self._sha.update(data)
        return data


def _under(path: bytes, folders: set[bytes]) -> bool:
    """``path`` lies strictly below one of ``folders`` (b"" is the root)."""
    parent = path
    while parent:
        parent = parent.rpartition(b"/")[0]
        if parent in folders:
            return True
    return False


def index_base(layers: Sequence[Layer], rootfs: str | bytes | os.PathLike[str],
               options: DeltaOptions, observe: Observe | None = None,
               progress: Progress | None = None) -> BaseIndex:
    """Stream the base layers into their merged index (see the module docstring)."""
    index = BaseIndex(os.fsencode(rootfs), options, layers)
    index.add_layers(layers, observe, progress)
    return index


def base_digests(layers: Sequence[Layer], wanted: set[bytes], limits: Limits | None = None
                 ) -> dict[bytes, bytes]:
    """sha256 of the content the base gives each ``wanted`` path (the topmost layer's),
    streaming the layers once more; a path it cannot tell (a hardlink to a file not
    hashed) is missing from the answer."""
    lim = limits or Limits()
    found: dict[bytes, bytes] = {}
    for i, layer in enumerate(layers):
        if not indexable(layer):
            continue
        what = f"base layer {i + 1}/{len(layers)} ({layer.digest})"
        log.info("reading %s again for the content of %d files", what, len(wanted))
        mine: dict[bytes, bytes] = {}

        def take(entry: TarEntry, data: DataReader, mine: dict[bytes, bytes] = mine) -> None:
            name = entry.raw_name
            if name not in wanted:
                return
            if entry.type == "file":
                sha = hashlib.sha256()
                while chunk := data.read(_CHUNK):
                    sha.update(chunk)
                mine[name] = found[name] = sha.digest()
            elif entry.type == "hardlink" and os.fsencode(entry.linkname) in mine:
                found[name] = mine[os.fsencode(entry.linkname)]
            else:
                found.pop(name, None)

        with layer.open() as raw:
            read_entries(raw, what, lim, take)  # type: ignore[arg-type]
    return found


# -- pass 2: the walk ------------------------------------------------------------------------

class _DeltaWalk(Collector):
    """Walks the root filesystem (layerfiles' rules), keeping what differs from the index."""

    def __init__(self, index: dict[bytes, bytes], root_dev: int, options: DeltaOptions):
        super().__init__(options.skip)
        self.index = index
        self.options = options
        self.result = DeltaStats()
        self._dev = root_dev
        self._prune = options.prune
        self._dirs: dict[bytes, Entry] = {}             # every folder walked, for parents
        self._gone: set[bytes] = set()                  # left out here: no whiteout below
        self._opaque: set[bytes] = set()
        self._links: dict[tuple[int, int], list[tuple[bytes, Entry]]] = {}
        self._left_inodes: dict[tuple[int, int], str] = {}
        self._children = _child_counts(index)
        self._protected = _ancestors(options.protected)
        self.layers: Sequence[Layer] | None = None   # read again for content not indexed
        self._pending: list[tuple[bytes, Entry]] = []

    # -- the walk's hooks
    def _enter(self, path: bytes, host: bytes, children: list[os.DirEntry[bytes]]) -> None:
        """A base folder none of whose children remain: one opaque whiteout for them all."""
        if self._children.get(path, 0) < 2 or path in self._protected:
            return  # (one child: its whiteout is no longer than the opaque one)
        index = self.index
        if any(join(path, child.name) in index for child in children):
            return
        if path and path not in self._dirs:
            return
        self._opaque.add(path)
        self.result.opaque += 1
        if path:
            self._put_parents(path, self._dirs[path])
        self.entries[join(path, OPAQUE)] = Entry(WHITEOUT, 0o644)

    def _visit(self, path: bytes, child: os.DirEntry[bytes]) -> bool:
        host = child.path
        if self._prune is not None:
            reason = self._prune(path, host)
            if reason:
                self._pruned(path, reason)
                return False
        st = lstat_entry(child)
        mode = st.st_mode
        if stat.S_ISDIR(mode) and st.st_dev != self._dev:
            self._pruned(path, OTHER_FILESYSTEM)
            return False
        if stat.S_ISSOCK(mode):
            self._pruned(path, SOCKET)
            return False
        record = self.index.pop(path, None)
        entry = self._entry_for(path, host, st)
        if entry is None:               # a fifo or device: reported, neither kept nor deleted
            self._gone.add(path)
            return False
        entry.uid, entry.gid = st.st_uid, st.st_gid
        kind = entry.kind
        if kind != LINK and self.options.xattrs:
            entry.xattrs = read_xattrs(host)
        if kind == DIR:
            self._dirs[path] = entry
        elif kind == FILE and entry.inode is not None:
            self._links.setdefault(entry.inode, []).append((path, entry))
        if record is not None:
            differs = self._differs(record, entry, st, host)
            if differs is None:
                self._pending.append((path, entry))
                return False
            if not differs:
                return kind == DIR
        self._keep(path, host, entry, record is None)
        return kind == DIR

    def _keep(self, path: bytes, host: bytes, entry: Entry, added: bool) -> None:
        """An added or changed entry: into the layer, unless a rule leaves it out."""
        if self._skipped(path, host):
            self._gone.add(path)
            if entry.inode is not None:
                rule = self.skipped[-1][1] if self.skipped else "left out"
                self._left_inodes.setdefault(entry.inode, rule)
            return
        if added:
            self.result.added += 1
        else:
            self.result.changed += 1
        self._put_parents(path, entry)

    # -- deciding
    def _differs(self, record: bytes, entry: Entry, st: os.stat_result, host: bytes
                 ) -> bool | None:
        """Whether the entry differs from the base's; None when the base's content must
        decide and the index does not hold its digest (read from the layers later)."""
        kind, mode, uid, gid, size, mtime, tag = _RECORD.unpack_from(record)
        if kind & _KIND != entry.kind or uid != min(st.st_uid, _MAX_ID) \
                or gid != min(st.st_gid, _MAX_ID):
            return True
        if entry.kind == LINK:
            return _target(record) != entry.target
        if mode != entry.mode or tag != xattr_tag(entry.xattrs):
            return True
        if entry.kind != FILE:
            return False
        if size != st.st_size:
            return True
        if self.options.compare != "content" and st.st_mtime_ns // _NS != mtime:
            return True
        if not needs_hash(st, mtime, self.options):
            return False
        known = _digest(record)
        if known is None:
            # not hashed while the base streamed (the index was kept, or the file changed
            # since): the layers are read again after the walk, else the file is kept
            return None if self.layers is not None else True
        self.result.hashed += 1
        return _file_digest(host, entry.ident) != known

    def _decide_pending(self) -> None:
        """Files whose base content must decide, read from the base layers in one go."""
        if not self._pending:
            return
        assert self.layers is not None
        known = base_digests(self.layers, {path for path, _ in self._pending},
                             self.options.limits)
        for path, entry in self._pending:
            base = known.get(path)
            self.result.hashed += 1
            if base is None or _file_digest(entry.host, entry.ident) != base:
                self._keep(path, entry.host, entry, added=False)

    def _pruned(self, path: bytes, reason: str) -> None:
        self._gone.add(path)
        self.result.pruned.append((os.fsdecode(path), reason))

    def _put_parents(self, path: bytes, entry: Entry) -> None:
        """Put ``entry`` and every folder above it not yet put, with its own attributes."""
        self._put(path, entry)
        parent = path.rpartition(b"/")[0]
        entries = self.entries
        while parent and parent not in entries:
            entries[parent] = self._dirs[parent]
            parent = parent.rpartition(b"/")[0]

    def run(self, root: bytes) -> list[tuple[bytes, Entry]]:
        """Walk ``root``, then add hardlink partners and whiteouts; the sorted entries."""
        self._walk(root, b"", Excluder(()))
        self._decide_pending()
        self._hardlinks()
        self._whiteouts()
        return self.ordered()

    def _hardlinks(self) -> None:
        """Files sharing an inode stay together: all written (as hardlinks to the first),
        or all left out when a rule left one out."""
        entries = self.entries
        for inode, members in self._links.items():
            rule = self._left_inodes.get(inode)
            if rule is not None:
                for path, _ in members:
                    if entries.pop(path, None) is not None:
                        self._gone.add(path)
                        self.result.left_out.append((os.fsdecode(path), rule))
                continue
            if len(members) > 1 and any(path in entries for path, _ in members):
                for path, entry in members:
                    if path not in entries:
                        self._put_parents(path, entry)

    def _whiteouts(self) -> None:
        remaining = self.index
        prune = self._prune
        gone, opaque, entries, dirs = self._gone, self._opaque, self.entries, self._dirs
        for path in sorted(remaining):
            parent, _, name = path.rpartition(b"/")
            if parent in remaining:
                continue                    # its folder's whiteout covers it
            if path in gone or _under(path, gone) or _under(path, opaque):
                continue
            if parent and (parent not in dirs or entries.get(parent, dirs[parent]).kind != DIR):
                continue                    # its folder became something else
            if prune is not None and _pruned_by_name(path, prune):
                continue
            whiteout = join(parent, _WH + name)
            entries[whiteout] = Entry(WHITEOUT, 0o644)
            if parent:
                self._put_parents(parent, dirs[parent])
            self.result.deleted += 1
        self.result.deleted += self.result.opaque


def _pruned_by_name(path: bytes, prune: Prune) -> bool:
    """A deleted path the prune rules cover (a volatile folder gone is not a deletion)."""
    current = path
    while current:
        if prune(current, b""):
            return True
        current = current.rpartition(b"/")[0]
    return False


def _child_counts(index: dict[bytes, bytes]) -> dict[bytes, int]:
    counts: dict[bytes, int] = {}
    for path in index:
        parent = path.rpartition(b"/")[0]
        counts[parent] = counts.get(parent, 0) + 1
    return counts


def _ancestors(paths: frozenset[bytes]) -> frozenset[bytes]:
    out: set[bytes] = set()
    for path in paths:
        parent = path
        while parent:
            parent = parent.rpartition(b"/")[0]
            out.add(parent)
    return frozenset(out)


def _file_digest(host: bytes, ident: tuple[int, int]) -> bytes:
    """sha256 of a root filesystem file, opened without following a symlink."""
    try:
        fd = os.open(host, _OPEN_FLAGS)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {os.fsdecode(host)}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != ident:
            raise OperationError(f"{os.fsdecode(host)} was replaced while it was compared")
        os.set_blocking(fd, True)
        sha = hashlib.sha256()
        while True:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            sha.update(chunk)
        return sha.digest()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {os.fsdecode(host)}: {exc.strerror}") from None
    finally:
        os.close(fd)


def build_delta(rootfs: str | os.PathLike[str], base: Sequence[Layer] | BaseIndex,
                settings: BuildSettings, options: DeltaOptions | None = None,
                progress: Task = NULL_TASK) -> DeltaResult:
    """The layer of what ``rootfs`` adds to, changes in and deletes from ``base`` (its
    layers, lowest first, or their index).  ``settings.uid``/``gid`` are not used: every
    entry keeps its own owner; modes are kept as they are (not normalised).  ``progress``
    follows the writing of the layer (after the walk)."""
    opts = options or DeltaOptions()
    check_compare(opts.compare)
    root = os.fsencode(rootfs)
    try:
        root_st = os.stat(root)
    except OSError as exc:
        raise InvalidInputError(f"rootfs {os.fsdecode(root)}: {exc.strerror}") from None
    if not stat.S_ISDIR(root_st.st_mode):
        raise InvalidInputError(f"rootfs {os.fsdecode(root)} is not a folder")
    index = base if isinstance(base, BaseIndex) else index_base(base, root, opts)
    walk = _DeltaWalk(index.records, root_st.st_dev, opts)
    walk.layers = index.layers
    log.info("comparing %s with the base (%d paths)", os.fsdecode(root), len(index.records))
    ordered = walk.run(root)
    stats = walk.result
    layer = write_entries(ordered, settings, progress)
    return DeltaResult(BuildResult(layer, walk.skipped, index.warnings + walk.warnings), stats)
