"""Which host files become which layer entries: walking sources, excludes, skips.

The walk never follows a symlink (a source that is itself a symlink is stored
as one), reports sockets/fifos/devices instead of reading them, and merges
several sources into one sorted list of entries with explicit parent folders.
Image paths here are bytes, relative to the layer root, without a trailing
slash ("app/x"); the tar writer in build.py turns them into headers.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import translate
from pathlib import Path

from ..errors import InvalidInputError


@dataclass(frozen=True)
class Kept:
    """What a skip callback returns to keep an entry with a warning for the report
    (the build's ``warnings``; a reason string leaves the entry out)."""

    warning: str


SkipCallback = Callable[[str, Path], "str | Kept | None"]
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

    def host_of(self, image_path: str) -> Path | None:
        """Where in a folder source an image path of its walk comes from (None: not from
        this folder)."""
        dest = os.fsdecode(_image_path(self.dest, "layer destination"))
        path = image_path.strip("/")
        if dest and not path.startswith(dest + "/"):
            return None
        return Path(self.src) / path[len(dest):].lstrip("/")


def is_folder(host: Path | None) -> bool:
    """``host`` is a folder itself (not a symlink to one)."""
    try:
        return host is not None and stat.S_ISDIR(os.lstat(host).st_mode)
    except OSError:
        return False


DIR, FILE, LINK, WHITEOUT = range(4)  # kinds of Entry
_UNSUPPORTED = (
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


@dataclass(slots=True)
class Entry:
    """One future tar entry; ``synthetic`` marks an implied parent folder.

    ``uid``/``gid`` -1 take the build settings' owner; a root filesystem's delta
    keeps each file's own (and its extended attributes, ``xattrs``).
    """

    kind: int
    mode: int
    size: int = 0
    host: bytes = b""
    target: bytes = b""
    inode: tuple[int, int] | None = None  # set when the file has other hardlinks
    ident: tuple[int, int] = (0, 0)  # (st_dev, st_ino) seen when collecting
    synthetic: bool = False
    uid: int = -1
    gid: int = -1
    xattrs: tuple[tuple[bytes, bytes], ...] = ()


class Excluder:
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


def join(prefix: bytes, rel: bytes) -> bytes:
    """Image paths joined: ``join(b"a", b"b") == b"a/b"``, the root being ``b""``."""
    return prefix + b"/" + rel if prefix and rel else prefix or rel


class Collector:
    """Gathers the entries of all sources (then ``ordered()`` sorts and checks them)."""

    def __init__(self, skip: SkipCallback | None):
        self.entries: dict[bytes, Entry] = {}
        self.skipped: list[tuple[str, str]] = []
        self.warnings: list[str] = []
        self._skip = skip

    # -- helpers
    def _put(self, path: bytes, entry: Entry) -> None:
        old = self.entries.get(path)
        if old is not None:
            if entry.synthetic:
                return  # a real entry always beats an implied parent directory
            if not old.synthetic and not (old.kind == DIR and entry.kind == DIR):
                self.warnings.append(
                    f"/{os.fsdecode(path)} is given by more than one source; the last one wins"
                )
        self.entries[path] = entry

    def _parents(self, path: bytes) -> None:
        parent = path.rpartition(b"/")[0]
        while parent:
            self._put(parent, Entry(DIR, 0o755, synthetic=True))
            parent = parent.rpartition(b"/")[0]

    def _skipped(self, path: bytes, host: bytes) -> bool:
        name = path.rpartition(b"/")[2]
        if name.startswith(WHITEOUT_PREFIX.encode()):
            self._leave_out(path, "name is reserved for whiteouts", warn=True)
            return True
        if self._skip is None:
            return False
        reason = self._skip(os.fsdecode(path), Path(os.fsdecode(host)))
        if isinstance(reason, Kept):
            self.warnings.append(reason.warning)
            return False
        if reason:
            self.skipped.append((os.fsdecode(path), reason))
            return True
        return False

    def _leave_out(self, path: bytes, reason: str, warn: bool) -> None:
        shown = os.fsdecode(path)
        self.skipped.append((shown, reason))
        if warn:
            self.warnings.append(f"skipped /{shown}: {reason}")

    def _entry_for(self, path: bytes, host: bytes, st: os.stat_result) -> Entry | None:
        mode = st.st_mode
        if stat.S_ISREG(mode):
            ident = (st.st_dev, st.st_ino)
            inode = ident if st.st_nlink > 1 else None
            return Entry(FILE, mode & 0o7777, st.st_size, host, inode=inode, ident=ident)
        if stat.S_ISDIR(mode):
            return Entry(DIR, mode & 0o7777)
        if stat.S_ISLNK(mode):
            return Entry(LINK, mode & 0o7777 or 0o777, target=os.readlink(host))
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
                self._put(dest, Entry(DIR, 0o755, synthetic=True))
            self._walk(src, dest, Excluder(source.exclude))
            return
        if not dest or source.dest.endswith("/"):
            dest = join(dest, os.path.basename(src.rstrip(b"/")))
        if self._skipped(dest, src):
            return
        entry = self._entry_for(dest, src, st)
        if entry is not None:
            self._parents(dest)
            self._put(dest, entry)

    def _walk(self, root: bytes, dest: bytes, excluder: Excluder) -> None:
        """Depth first, never through a symlink; ``_visit`` decides each child."""
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
            self._enter(join(dest, rel_dir), host_dir, children)
            for child in children:
                rel = rel_dir + b"/" + child.name if rel_dir else child.name
                if excluder and excluder.match(os.fsdecode(rel), os.fsdecode(child.name)):
                    continue
                if self._visit(join(dest, rel), child):
                    stack.append((child.path, rel))

    def _enter(self, path: bytes, host: bytes, children: list[os.DirEntry[bytes]]) -> None:
        """A folder's children are listed, before any is visited (a hook)."""

    def _visit(self, path: bytes, child: os.DirEntry[bytes]) -> bool:
        """Put one walked entry; True to walk into it (a folder)."""
        host = child.path
        if self._skipped(path, host):
            return False
        entry = self._entry_for(path, host, lstat_entry(child))
        if entry is None:
            return False
        self._put(path, entry)
        return entry.kind == DIR

    def add_whiteout(self, removed: str) -> None:
        path = _image_path(removed, "path to remove")
        if not path:
            raise InvalidInputError("cannot remove '/' (the whole root) with a whiteout")
        parent, _, name = path.rpartition(b"/")
        if name.startswith(WHITEOUT_PREFIX.encode()):
            raise InvalidInputError(f"path to remove {removed!r} is itself a whiteout name")
        wh = join(parent, WHITEOUT_PREFIX.encode() + name)
        self._parents(wh)
        self.entries[wh] = Entry(WHITEOUT, 0o644)

    def ordered(self) -> list[tuple[bytes, Entry]]:
        """Entries sorted bytewise by path; whiteouts sort before their siblings."""
        entries = self.entries
        for path in entries:
            parent = path.rpartition(b"/")[0]
            if parent and entries[parent].kind != DIR:
                raise InvalidInputError(
                    f"layer sources conflict: /{os.fsdecode(parent)} is not a directory "
                    f"in this layer but /{os.fsdecode(path)} is inside it"
                )
        return sorted(entries.items(), key=sort_key)


def lstat_entry(child: os.DirEntry[bytes]) -> os.stat_result:
    """A walked entry's own stat (never its symlink's target); unreadable is bad input."""
    try:
        return child.stat(follow_symlinks=False)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {os.fsdecode(child.path)}: {exc.strerror}") from None


def sort_key(item: tuple[bytes, Entry]) -> bytes:
    path, entry = item
    if entry.kind != WHITEOUT:
        return path
    parent, sep, name = path.rpartition(b"/")
    return parent + sep + b"\0" + name
