"""Exporting what is installed: the rules for a live root filesystem.

``[app] rootfs`` (or ``--rootfs DIR``) names a root filesystem made from the
app's base (``/`` from inside the running application).  Its changes against
the base become one layer (layers/delta.py); this module decides what is never
part of them, and reads what a running system knows:

* virtual and volatile folders, other mounted file systems, package-manager
  caches, logs, personal folders, the workspace, paths other layers export,
  and ociforge's own cache, scratch and output files (``LivePrune``);
* the mount points below the root filesystem (``/proc/self/mountinfo``);
* when the application started (``start_time_ns``), after which a file whose
  metadata agrees with the base has its content compared;
* a running process's environment (``process_env``);
* the base's index and inventory: taken on the one read of each base layer the
  license and secret scan makes anyway, or as an earlier export kept them in the
  cache (``BaseRead``).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ..cache import rootfs as rootfs_cache
from ..cache.store import Cache
from ..errors import InvalidInputError
from ..layers.delta import (
    OTHER_FILESYSTEM,
    SOCKET,
    BaseIndex,
    DeltaOptions,
    IndexFeed,
    LayerObserver,
    indexable,
)
from ..model.image import Image
from ..model.layer import Layer
from ..progress.events import Progress
from .inventory import InventoryFeed, InventoryTaker, LayerRef, not_inventoried
from .inventory.merged import LayerChanges
from .inventory.persist import changes_from_json, changes_to_json
from .policy import EnvDecision

log = logging.getLogger("ociforge.export")

# rule -> description, for the report (the delta's own reasons included)
LIVE_RULES: MappingProxyType[str, str] = MappingProxyType({
    "live-virtual": "a virtual or runtime file system of the running system (/proc, /sys, /dev, "
                    "/run)",
    "live-volatile": "temporary files (/tmp, /var/tmp)",
    "live-mount": "another file system mounted into the root filesystem (a volume, a bind mount)",
    OTHER_FILESYSTEM: "a folder on another file system than the root filesystem's",
    SOCKET: "a socket (it belongs to a running process)",
    "package-cache": "a package manager's cache or download lists (apt, apk, yum, dnf, conda "
                     "pkgs)",
    "cache-folder": "a .cache folder (pip, conda and other tools' caches)",
    "logs": "log files (/var/log)",
    "personal-folder": "a personal folder (/root, /home/*): exported only by a [[layers]] entry "
                       "naming a path inside it",
    "workspace": "the workspace ([files] src, default /files): its own layer with --with-files",
    "own-layer": "a path a [[layers]] entry exports as its own layer",
    "ociforge-files": "ociforge's own cache, scratch or output files",
})

ENV_RULES: MappingProxyType[str, str] = MappingProxyType({
    "session-variable": "set for one process or login session (HOSTNAME, PWD, SHLVL, SSH_*, ...), "
                        "not part of the application",
    "env-not-utf8": "the name or value is not UTF-8 text (an image config holds text)",
    "env-not-a-name": "not a NAME=VALUE pair with a usable variable name",
})

_FIXED: MappingProxyType[bytes, str] = MappingProxyType({
    b"proc": "live-virtual", b"sys": "live-virtual", b"dev": "live-virtual",
    b"run": "live-virtual", b"var/run": "live-virtual", b"var/lock": "live-virtual",
    b"tmp": "live-volatile", b"var/tmp": "live-volatile",
    b"var/cache/apt": "package-cache", b"var/lib/apt/lists": "package-cache",
    b"var/cache/apk": "package-cache", b"var/cache/yum": "package-cache",
    b"var/cache/dnf": "package-cache", b"var/cache/zypp": "package-cache",
    b"var/cache/pacman": "package-cache",
    b"var/log": "logs",
    b"root": "personal-folder",
})
_SESSION_VARIABLES = frozenset({
    "HOSTNAME", "PWD", "OLDPWD", "SHLVL", "_", "TERM", "COLUMNS", "LINES", "MAIL", "LOGNAME",
    "SSH_AUTH_SOCK", "SSH_AGENT_PID", "SSH_CLIENT", "SSH_CONNECTION", "SSH_TTY", "DISPLAY",
    "XDG_RUNTIME_DIR", "XDG_SESSION_ID", "XDG_SESSION_TYPE", "XDG_SESSION_CLASS",
    "DBUS_SESSION_BUS_ADDRESS", "WINDOWID", "TMUX", "TMUX_PANE", "STY", "PS1", "PS2",
    "PROMPT_COMMAND", "HISTFILE", "INVOCATION_ID", "JOURNAL_STREAM", "NOTIFY_SOCKET",
    "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"})
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_MAX_ENVIRON = 16 << 20
_MOUNT_ESCAPE = re.compile(rb"\\([0-7]{3})")


@dataclass
class LivePrune:
    """What never goes into a root filesystem's delta: ``(image path, host path) -> rule``.

    Image paths are bytes relative to the root ("var/log").  ``extra`` holds the
    paths decided for this export (workspace, other layers, mounts, ociforge's
    own files), each with its rule.  Called for every walked entry: set look-ups only.
    """

    extra: dict[bytes, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._exact = {**_FIXED, **self.extra}

    @property
    def protected(self) -> frozenset[bytes]:
        """The paths pruned by name, whose folders must never become opaque."""
        return frozenset(self._exact) | {b"home/*"}

    def __call__(self, path: bytes, host: bytes) -> str | None:
        rule = self._exact.get(path)
        if rule is not None:
            return rule
        parent, _, name = path.rpartition(b"/")
        if parent == b"home":
            return "personal-folder"
        if name == b".cache":
            return "cache-folder"
        if name == b"pkgs" and host and os.path.isdir(host[:-4] + b"conda-meta"):
            return "package-cache"   # a conda installation's package cache
        return None


def image_rel(host: str | os.PathLike[str], rootfs: Path) -> bytes | None:
    """``host`` as an image path (bytes, relative) when it lies inside ``rootfs``."""
    try:
        real = os.path.realpath(host)
    except (OSError, ValueError):
        return None
    root = os.path.realpath(rootfs)
    if real == root:
        return b""
    prefix = root if root.endswith("/") else root + "/"
    if not real.startswith(prefix):
        return None
    return os.fsencode(real[len(prefix):])


def mount_points(rootfs: Path, mountinfo: str = "/proc/self/mountinfo") -> list[bytes]:
    """Mount points strictly inside ``rootfs``, as image paths (none if unreadable)."""
    try:
        with open(mountinfo, "rb") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    root = os.fsencode(os.path.realpath(rootfs))
    prefix = root if root.endswith(b"/") else root + b"/"
    found: set[bytes] = set()
    for line in lines:
        fields = line.split(b" ")
        if len(fields) < 5:
            continue
        point = _MOUNT_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), fields[4])
        if point.startswith(prefix) and point != prefix:
            found.add(point[len(prefix):].rstrip(b"/"))
    return sorted(found)


def live_prune(rootfs: Path, own: Iterable[tuple[str | os.PathLike[str], str]]) -> LivePrune:
    """The prune rules for ``rootfs``: the fixed ones, its mount points, and ``own`` (host
    paths with their rule) where they lie inside it."""
    extra: dict[bytes, str] = {}
    for point in mount_points(rootfs):
        extra.setdefault(point, "live-mount")
    for host, rule in own:
        rel = image_rel(host, rootfs)
        if rel:
            extra.setdefault(rel, rule)
        elif rel == b"":
            raise InvalidInputError(f"the rootfs {str(rootfs)!r} is itself the {rule} "
                                    f"({os.fspath(host)!r}): nothing would be left to export")
    return LivePrune(extra)


def start_time_ns(proc: str = "/proc") -> int | None:
    """When process 1 of this PID namespace started (the container, the machine), minus
    one second (boot time has whole seconds); None when /proc does not say."""
    try:
        with open(f"{proc}/1/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        with open(f"{proc}/stat", "rb") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith(b"btime "))
        ticks = int(fields[19])
        hertz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return (btime - 1) * 1_000_000_000 + ticks * 1_000_000_000 // hertz


def is_live_root(rootfs: Path) -> bool:
    return os.path.realpath(rootfs) == "/"


@dataclass(frozen=True)
class ProcessEnv:
    env: list[tuple[str, str, str]]            # (name, value, "pid")
    dropped: list[EnvDecision]


def process_env(pid: int, proc: str = "/proc") -> ProcessEnv:
    """The environment of process ``pid`` (``/proc/PID/environ``: NUL-separated bytes).

    Variables that are not UTF-8, not NAME=VALUE, or set for one session only are
    dropped here, each named in ``dropped`` with its rule; the policy judges the rest.
    """
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise InvalidInputError(f"--env-from-pid takes a process id, not {pid!r}")
    path = f"{proc}/{pid}/environ"
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_ENVIRON + 1)
    except FileNotFoundError:
        raise InvalidInputError(f"--env-from-pid {pid}: no such process") from None
    except OSError as exc:
        raise InvalidInputError(f"--env-from-pid {pid}: cannot read its environment "
                                f"({exc.strerror})") from None
    if len(data) > _MAX_ENVIRON:
        raise InvalidInputError(f"--env-from-pid {pid}: its environment is larger than "
                                f"{_MAX_ENVIRON} bytes")
    env: dict[str, str] = {}
    dropped: dict[str, EnvDecision] = {}
    for item in data.split(b"\0"):
        if not item:
            continue
        raw_name, sep, raw_value = item.partition(b"=")
        shown = raw_name.decode("utf-8", "surrogateescape")
        try:
            name, value = raw_name.decode("utf-8"), raw_value.decode("utf-8")
        except UnicodeDecodeError:
            _drop(env, dropped, shown, "env-not-utf8", "invalid")
            continue
        if not sep or not _NAME_RE.match(name):
            _drop(env, dropped, shown, "env-not-a-name", "invalid")
        elif name in _SESSION_VARIABLES or name.startswith("SSH_"):
            _drop(env, dropped, name, "session-variable", "session")
        else:
            dropped.pop(name, None)
            env[name] = value
    return ProcessEnv([(k, v, "pid") for k, v in env.items()],
                      sorted(dropped.values(), key=lambda d: d.name))


def _drop(env: dict[str, str], dropped: dict[str, EnvDecision], name: str, rule: str,
          kind: str) -> None:
    env.pop(name, None)
    dropped[name] = EnvDecision(name, rule, kind, "pid")


# -- the base's index and inventory, read once or kept ------------------------------------

def base_inventory(original: Image, base: Image) -> InventoryTaker | None:
    """An inventory the rootfs index can take of the base layers as it reads them: only
    where those are the layers the image ships (none rewritten).  A foreign layer, which
    neither reads, is named as not inventoried (as ``take_inventory`` names it)."""
    if any(was.digest != kept.digest
           for was, kept in zip(original.layers, base.layers, strict=True)):
        return None
    return InventoryTaker()


INVENTORY_READERS = tuple(f"ociforge.app.inventory.{name}" for name in (
    "scan", "merged", "model", "persist", "reader", "licenses", "dpkg", "apk", "python",
    "conda", "rlang", "npm", "osrelease", "products", "purl"))


def changed_after(rootfs: Path) -> int | None:
    """When the root filesystem was made from its base, where that is known: the start of
    the running system whose root it is (see ``needs_hash`` in layers/delta.py)."""
    return start_time_ns() if is_live_root(rootfs) else None


class BaseRead:
    """The base's rootfs index and inventory, reading each base layer once.

    Kept in the cache by the base layers' digests, they need no read.  Else the
    license and secret scan (baselayers.py), which reads every base layer of a
    first export anyway, hands each layer's entries to ``observe``, and the index
    and the inventory are taken on that read.  A layer the scan does not read (its
    verdict kept in the cache) is read here: before the scan's next read where
    one follows (a layer's inventory depends on the layers below it), else by
    ``index``.  (A layer the base names twice is read again for its second place.)
    """

    def __init__(self, cache: Cache | None, layers: Sequence[Layer], rootfs: Path,
                 compare: str):
        self._cache = cache
        self._layers = list(layers)
        self._rootfs = os.fsencode(rootfs)
        self._options = DeltaOptions(compare=compare, changed_after_ns=changed_after(rootfs))
        self._key = rootfs_cache.index_key(self._layers, INVENTORY_READERS) \
            if cache is not None else None
        self._kept: BaseIndex | None = None
        self._kept_inventory: list[tuple[LayerChanges, list[str]]] | None = None
        self._load()
        self._scratch = BaseIndex(self._rootfs, self._options, self._layers)
        self._inventory = InventoryTaker()       # the fed layers' merged view, for the next
        self._fed: list[tuple[IndexFeed, InventoryFeed] | None] = []   # lowest first

    def _load(self) -> None:
        if self._cache is None or self._key is None:
            return
        kept = rootfs_cache.load(self._cache, self._key)
        if kept is None:
            return
        try:
            index = BaseIndex.from_bytes(kept.index, self._rootfs, self._options, self._layers)
            found = None if kept.inventory is None else \
                kept_inventory(kept.inventory, len(self._layers))
        except ValueError as exc:
            log.warning("dropped a damaged rootfs index from the cache (%s)", exc)
            self._cache.drop_record("rootfs", self._key)
            return
        index.warnings = list(kept.warnings)
        self._kept, self._kept_inventory = index, found

    def observe(self, i: int, layer: Layer) -> LayerObserver | None:
        """An observer of base layer ``i``'s entries for the scan reading it, when the
        index and inventory still need that layer (the layers below it are read first
        where the scan did not read them)."""
        if self._kept is not None and self._kept_inventory is not None:
            return None
        if i < len(self._fed) or layer.digest != self._layers[i].digest:
            return None                          # (a layer named twice: read again later)
        while len(self._fed) < i:
            self._read(len(self._fed))
        log.info("indexing base layer %d/%d (%s) on the scan's read", i + 1,
                 len(self._layers), layer.digest)
        return self._feed(i)

    def _feed(self, i: int) -> IndexFeed:
        inventory = self._inventory.feed(LayerRef(i, str(self._layers[i].digest), "base"))
        feed = self._scratch.feed(inventory)
        self._fed.append((feed, inventory))
        return feed

    def _read(self, i: int) -> None:
        """Layer ``i``, which no scan reads, into the index and inventory."""
        layer = self._layers[i]
        if not indexable(layer):
            self._fed.append(None)
            return
        what = f"base layer {i + 1}/{len(self._layers)} ({layer.digest})"
        log.info("indexing %s", what)
        feed = self._feed(i)
        with layer.open() as raw:
            self._scratch.stream(raw, what, feed)  # type: ignore[arg-type]

    def index(self, layers: list[Layer], refs: list[LayerRef], options: DeltaOptions,
              taker: InventoryTaker | None, progress: Progress | None = None) -> BaseIndex:
        """The base's index (and with ``taker`` its inventory) of ``layers`` (the layers
        given at the start, or the same blobs elsewhere): kept, else fed and read, then
        kept."""
        if [layer.digest for layer in layers] != [layer.digest for layer in self._layers]:
            raise ValueError("the rootfs index is asked for other layers than it was made for")
        kept = self._kept
        if kept is not None and (taker is None or self._kept_inventory is not None):
            kept.layers = layers
            if taker is not None and self._kept_inventory is not None:
                for ref, (changes, warnings) in zip(refs, self._kept_inventory, strict=True):
                    taker.replay(ref, changes, warnings)
            return kept
        found: list[tuple[LayerChanges, list[str]]] = []     # one per layer, lowest first

        def replay(i: int, changes: LayerChanges, warnings: list[str]) -> None:
            found.append((changes, warnings))
            if taker is not None:
                taker.replay(refs[i], changes, warnings)

        def unread_below(stop: int) -> None:
            """The layers below ``stop`` not taken yet: ones neither reads (foreign)."""
            for j in range(len(found), stop):
                assert not indexable(layers[j])
                replay(j, LayerChanges(), [not_inventoried(refs[j], layers[j])])

        parsed = {}
        for i, fed in enumerate(self._fed):
            if fed is None:
                unread_below(i + 1)
                continue
            feed, taken = fed
            parsed[i] = feed.parsed
            replay(i, taken.changes, taken.warnings)

        def observe(i: int, layer: Layer) -> InventoryFeed:
            assert taker is not None
            unread_below(i)
            feed = taker.feed(refs[i])
            found.append((feed.changes, feed.warnings))
            return feed

        index = BaseIndex(self._rootfs, options, layers)
        index.add_layers(layers, observe if taker is not None else None, progress, parsed)
        if taker is not None:
            unread_below(len(layers))
        if self._cache is not None and self._key is not None:
            inventory = None
            if taker is not None:
                inventory = json.dumps([{"changes": changes_to_json(changes),
                                         "warnings": warnings} for changes, warnings in found],
                                       sort_keys=True, separators=(",", ":")).encode()
            rootfs_cache.store(self._cache, self._key, index.to_bytes(), index.warnings,
                               inventory)
        return index


def kept_inventory(data: bytes | None, layers: int
                    ) -> list[tuple[LayerChanges, list[str]]]:
    """The base layers' inventory findings as an earlier export kept them (ValueError if
    they are not that)."""
    try:
        doc = json.loads(data or b"")
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"kept base inventory: {exc}") from None
    if not isinstance(doc, list) or len(doc) != layers:
        raise ValueError("kept base inventory: not one entry per layer")
    out = []
    for item in doc:
        if not isinstance(item, dict) or not isinstance(item.get("warnings"), list):
            raise ValueError("kept base inventory: malformed")
        out.append((changes_from_json(item.get("changes")), [str(w) for w in item["warnings"]]))
    return out
