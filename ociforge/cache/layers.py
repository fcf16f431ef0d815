"""Built layers reused when nothing that decides their bytes has changed.

The key is a sha256 of: the cache format; the source of the code that writes
layers and the versions of the compressors (compressed bytes follow them); the
build settings (compression, epoch, owner, media types, mode policy -- not the
thread count, which never changes a byte); the caller's rules (platform,
license and secret rules: whatever its skip callback decides by); every
source's path, destination and excludes; the paths removed; and the stat of
every file of the sources (fingerprint.py).  The record holds the layer's
descriptor, diff_id and entry count, and what the walk left out and warned
about, so a reused layer restores the same report as a build.

An entry is stored only when the sources did not change while the layer was
built (their stat before and after agree) and no file had changed within
RACY_NS before the build read it (a later change in the same clock tick could
keep every stat field; the build waits that long out instead).  A reused
blob is hashed before its first use; a damaged or missing one is dropped and
the layer built again, which must give the same digest.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from ..errors import InvalidInputError, OperationError
from ..layers.build import BuildResult, BuildSettings, build_layer
from ..layers.layerfiles import Kept, LayerSource, SkipCallback
from ..model.descriptor import Descriptor
from ..model.digest import Digest
from ..model.jsonutil import JSONValue
from ..model.layer import Layer
from ..progress.events import NULL_TASK, Task
from .fingerprint import TreeState, Unreadable, code_fingerprint, tree_state
from .keys import plain, record_name
from .store import Cache

log = logging.getLogger("ociforge.cache")

FORMAT = "layer-1"
RACY_NS = 50_000_000        # 50 ms: several ticks of the coarse clock file times come from
LAYER_WRITERS = ("ociforge.layers.build", "ociforge.layers.layerfiles",
                 "ociforge.layers.tarformat", "ociforge.layers.blobwriter",
                 "ociforge.layers.compress", "ociforge.model.mediatypes")

Replay = Callable[[str, str], None]


def compressor_versions(compression: str) -> str:
    """The library versions the compressed bytes of ``compression`` follow."""
    if compression == "gzip":
        from ..layers.compress import HAVE_ISAL

        if HAVE_ISAL:
            import isal

            return f"isal {isal.__version__}"
        import zlib

        return f"zlib {zlib.ZLIB_RUNTIME_VERSION}"
    if compression == "zstd":
        import zstandard

        return f"zstandard {zstandard.__version__} libzstd {zstandard.ZSTD_VERSION}"
    return compression


def settings_data(settings: object, leave_out: tuple[str, ...] = ("threads",)) -> JSONValue:
    """Every build setting but those that never change a byte, as plain data for a key."""
    doc = plain(settings)
    assert isinstance(doc, dict)
    return {k: v for k, v in doc.items() if k not in leave_out}


# -- layer values in records ----------------------------------------------------------------

def stored_layer(cache: Cache, layer: Layer) -> dict[str, Any] | None:
    """Put a freshly built layer's blob into the cache; its description for a record."""
    if layer.path is None or layer.diff_id is None:
        return None
    if not cache.add_blob_file(layer.path, layer.digest, layer.size):
        return None
    return {"descriptor": layer.descriptor.to_dict(), "diff_id": str(layer.diff_id),
            "file_count": layer.file_count}


def reused_layer(cache: Cache, doc: Any, rebuild: Callable[[], Layer], what: str) -> Layer | None:
    """The layer a record describes, its blob opened from the cache (checked on first use).

    None when the record is unreadable or its blob is gone (the caller builds).
    """
    try:
        descriptor = Descriptor.from_dict(doc["descriptor"], "cached layer")
        diff_id = Digest.parse(doc["diff_id"])
        count = doc.get("file_count")
        if count is not None and not isinstance(count, int):
            raise TypeError("file_count")
    except (KeyError, TypeError, InvalidInputError):
        return None
    if not cache.has_blob(descriptor.digest, descriptor.size):
        log.warning("%s (%s) is missing from the cache; it is built again", what,
                    descriptor.digest.short)
        return None
    cache.touch(cache.blob_path(descriptor.digest))
    opener = _CheckedOpener(cache, descriptor, rebuild, what)
    return Layer(descriptor, diff_id, opener, None, None, count)


class _CheckedOpener:
    """Opens a reused blob; the first open hashes it, and a damaged one is built again.

    Sinks that already hold the blob (a layout written before, a registry that
    has it) never open it, so an unchanged re-export reads none of its layers.
    """

    def __init__(self, cache: Cache, descriptor: Descriptor, rebuild: Callable[[], Layer],
                 what: str):
        self._cache = cache
        self._descriptor = descriptor
        self._rebuild = rebuild
        self._what = what
        self._path: Path | None = None
        self._lock = threading.Lock()

    def __call__(self) -> IO[bytes]:
        with self._lock:
            if self._path is None:
                desc = self._descriptor
                path = self._cache.verified_blob(desc.digest, desc.size, self._what)
                if path is None:
                    layer = self._rebuild()
                    if layer.digest != desc.digest or layer.path is None:
                        raise OperationError(
                            f"{self._what} changed while it was being exported: it was "
                            f"{desc.digest} when it was checked and {layer.digest} when it "
                            "was built again")
                    self._cache.add_blob_file(layer.path, layer.digest, layer.size)
                    path = layer.path
                self._path = path
        return open(self._path, "rb")


# -- layers built from files ------------------------------------------------------------------

def build_layer_cached(cache: Cache | None, sources: Sequence[LayerSource],
                       settings: BuildSettings, *, skip: SkipCallback | None = None,
                       replay: Replay | None = None, rules: object = "",
                       deciders: tuple[str, ...] = (), removes: Sequence[str] = (),
                       what: str = "layer", progress: Task = NULL_TASK) -> BuildResult:
    """``build_layer``, answered from the cache when the sources are unchanged.

    ``skip`` decides (and may record) what the walk leaves out; on reuse
    ``replay(image_path, reason)`` is called instead, once for each entry the
    build's ``skip`` left out, so the caller's report comes out the same.
    ``rules`` must name everything ``skip`` decides by (plain data, or values such
    as the rules' dataclasses that ``keys.plain`` turns into it), and ``deciders``
    the modules (by name) whose code decides.  ``progress`` follows the build, or hears
    that the layer was ``reused``.
    """
    if cache is None:
        return build_layer(sources, settings, removes=removes, skip=skip, progress=progress)
    try:
        before = tree_state(sources)
    except Unreadable as exc:
        log.info("%s not looked up (%s)", what, exc)
        return build_layer(sources, settings, removes=removes, skip=skip, progress=progress)
    head = _head(settings, sources, removes, rules, deciders)
    key = record_name(FORMAT, head, before.digest)
    reused = _reuse(cache, key, sources, settings, removes, replay, what)
    if reused is not None:
        progress.set(status="reused", digest=str(reused.layer.digest),
                     files=reused.layer.file_count or 0)
        return reused
    storable = wait_out_racy(before.newest_ctime_ns)
    decisions: list[tuple[str, str]] = []

    def recording(image_path: str, host_path: Path) -> str | Kept | None:
        reason = skip(image_path, host_path) if skip is not None else None
        if isinstance(reason, str) and reason:  # left out (a Kept warning is a build's)
            decisions.append((image_path, reason))
        return reason

    result = build_layer(sources, settings, removes=removes,
                         skip=recording if skip is not None else None, progress=progress)
    if storable and _unchanged(sources, before, what):
        entry = stored_layer(cache, result.layer)
        if entry is not None:
            cache.put_record("layers", key, {
                "format": FORMAT, "what": what, "layer": entry,
                "decisions": [list(d) for d in decisions],
                "skipped": [list(s) for s in result.skipped],
                "warnings": list(result.warnings),
                "blobs": [str(result.layer.digest)],
            })
    return result


def _head(settings: BuildSettings, sources: Sequence[LayerSource], removes: Sequence[str],
          rules: object, deciders: tuple[str, ...]) -> JSONValue:
    return [
        code_fingerprint(LAYER_WRITERS + deciders), compressor_versions(settings.compression),
        settings_data(settings), plain(rules),
        [[os.path.abspath(s.src), s.dest, list(s.exclude)] for s in sources], list(removes),
    ]


def _reuse(cache: Cache, key: str, sources: Sequence[LayerSource], settings: BuildSettings,
           removes: Sequence[str], replay: Replay | None, what: str) -> BuildResult | None:
    doc = cache.record("layers", key)
    if doc is None:
        return None
    try:
        decisions = [(str(p), str(r)) for p, r in doc["decisions"]]
        skipped = [(str(p), str(r)) for p, r in doc["skipped"]]
        warnings = [str(w) for w in doc["warnings"]]
    except (KeyError, TypeError, ValueError):
        cache.drop_record("layers", key)
        return None
    if decisions and replay is None:
        return None
    recorded = dict(decisions)

    def rebuild() -> Layer:
        log.info("building %s again", what)
        return build_layer(sources, settings, removes=removes,
                           skip=lambda image_path, _host: recorded.get(image_path)).layer

    layer = reused_layer(cache, doc.get("layer"), rebuild, what)
    if layer is None:
        cache.drop_record("layers", key)
        return None
    for image_path, reason in decisions:
        assert replay is not None
        replay(image_path, reason)
    log.info("%s: reused %s from the cache", what, layer.digest.short)
    return BuildResult(layer, skipped, warnings)


def wait_out_racy(newest_ctime_ns: int) -> bool:
    """Wait until every file's ctime lies RACY_NS in the past; False (do not store) when a
    ctime lies in the future (a clock that jumped, a file server with another clock)."""
    now = time.time_ns()
    if newest_ctime_ns > now + RACY_NS:
        log.info("a file's change time is in the future; not caching this layer")
        return False
    wait = newest_ctime_ns + RACY_NS - now
    if wait > 0:
        time.sleep(wait / 1e9)
    return True


def _unchanged(sources: Sequence[LayerSource], before: TreeState, what: str) -> bool:
    try:
        after = tree_state(sources)
    except Unreadable:
        return False
    if after.digest != before.digest:
        log.info("%s changed while it was built; not cached", what)
        return False
    return True
