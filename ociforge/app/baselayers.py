"""Base image layers go through the same file rules as the layers the export builds.

Each base layer is streamed (never held in memory) and its entries are checked
against the export's Policy.  A layer where nothing matches keeps its bytes and
digest, so a registry can still mount it.  A layer where something matches is
rewritten without those entries: every other entry keeps its place and its
original header blocks (PAX and GNU long-name headers included) and data, and
the stream is compressed with the export's compression.  Only the left-out
entries and the bytes after the end of the archive differ.

Left out: an entry whose path matches a file rule; a regular file whose content a
content rule matches, judged exactly as an app's file is (``Policy.judging``: a text
file in windows up to 64 MiB, a longer one named in the scan's warnings); everything
under a left-out folder; a hardlink to a left-out entry (it would carry the same
bytes).  Whiteouts are never left out: they carry no content, and dropping one would
bring a lower file back.  Each blob is scanned on its own, so a license file that an
upper layer deletes with a whiteout is still removed from the lower blob, where it
would otherwise ship.

Reading: a scan pass first (decompressing only), and a second pass only for a
layer that must be rewritten.  Whoever else needs a base layer's entries (the
rootfs index and the base's inventory) may observe them on the scan's read
(``_Judged``: the content rules take each byte as the observer reads it).  A
registry blob is copied to the workspace during the scan so it is downloaded
once.  A layer the base names more than once (same digest) is downloaded,
scanned and rewritten once; every further occurrence uses that result (its
left-out files are listed under the first occurrence only), so a manifest
repeating one blob thousands of times costs one read of it.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from ..cache import bases as scan_cache
from ..cache.keys import key_text
from ..cache.store import Cache
from ..errors import DigestMismatchError
from ..fsutil import new_file
from ..layers import tarformat as tf
from ..layers.blobwriter import TeeReader
from ..layers.decompress import ReadAhead, content_digest, open_decompressed
from ..layers.delta import LayerObserver, Observe
from ..layers.tarsafe import Limits, TarEntry, TarReader
from ..layers.workspace import new_blob_path
from ..model.digest import Digest
from ..model.image import Image
from ..model.layer import Layer
from ..model.mediatypes import LAYERS
from ..model.mutate import replace_layers
from ..progress.events import NULL_TASK, Progress, Task
from .policy import ContentRule, Judging, Policy
from .tarblob import TarWrite, write_tar_blob

log = logging.getLogger("ociforge.export")

# The modules whose code decides a scanned base layer (the scan cache key holds their source).
SCAN_DECIDERS = (__name__, "ociforge.app.tarblob", "ociforge.app.policy",
                 "ociforge.app.tokens", "ociforge.app.placeholders")

_CHUNK = 1 << 20
_META_TYPES = (tf.XHDTYPE, tf.XGLTYPE, tf.GNU_LONGNAME, tf.GNU_LONGLINK)


@dataclass(frozen=True)
class LeftOut:
    path: str               # as in the image: "/opt/tool/site.lic", a folder "/root/"
    rule: str


@dataclass
class BaseLayerScan:
    """What the scan decided for one base layer."""

    index: int
    original: Layer
    layer: Layer                                        # the layer the export uses
    left_out: list[LeftOut] = field(default_factory=list)
    scanned: bool = True
    original_diff_id: Digest | None = None              # of the content, as scanned
    warnings: list[str] = field(default_factory=list)   # files read for tokens in part

    @property
    def rewritten(self) -> bool:
        return self.layer.digest != self.original.digest


@dataclass(frozen=True)
class RewriteSettings:
    compression: str
    docker: bool
    threads: int | None = None


def filter_base_layers(image: Image, policy: Policy, settings: RewriteSettings,
                       limits: Limits | None = None, cache: Cache | None = None,
                       shared: dict[tuple[str, str], BaseLayerScan] | None = None,
                       progress: Progress | None = None, observe: Observe | None = None
                       ) -> tuple[Image, list[BaseLayerScan]]:
    """The image with every base layer scanned, and rewritten where something matched.

    With a cache, a layer's scan (and rewrite) is done once per digest and rule set.
    ``shared`` carries scans from one image to the next (the platforms of one export,
    same rules): a layer another image had is not read again, and its left-out files
    are listed for this image too.  Each scan is a ``scan`` progress task (the blob's
    bytes), each rewrite a ``build``.  ``observe(i, layer)`` may give an observer of the
    entries of layer ``i`` where the scan reads it (not where a result is reused), so that
    what else wants the layer's entries (the rootfs index) takes them on the same read.
    """
    progress = progress or Progress()
    scans: list[BaseLayerScan] = []
    replacements: dict[int, Layer] = {}
    done: dict[tuple[str, str], BaseLayerScan] = {}    # (digest, media type) -> first scan
    total = len(image.layers)
    rules = _scan_rules(policy) if cache is not None else None
    for index, layer in enumerate(image.layers):
        what = f"base layer {index + 1}/{total} ({layer.digest})"
        if layer.media_type not in LAYERS or _foreign(layer.media_type):
            log.warning("%s: media type %s is not scanned", what, layer.media_type)
            scans.append(BaseLayerScan(index, layer, layer, scanned=False))
            continue
        first = done.get((str(layer.digest), layer.media_type))
        if first is not None:
            scans.append(_again(index, layer, first, what))
            if first.index in replacements:
                replacements[index] = replacements[first.index]
            continue
        earlier = None if shared is None else shared.get((str(layer.digest), layer.media_type))
        key = _scan_key(layer, rules, settings) if rules is not None else None
        label = f"base layer {index + 1}/{total}"
        fresh = False
        if earlier is not None:
            scan = _again(index, layer, earlier, what, keep=True)
        else:
            with progress.task("scan", str(layer.digest), layer.size, label) as task:
                reused = _reused_scan(cache, key, index, layer, policy, settings, what,
                                      limits)
                fresh = reused is None
                if reused is None:
                    log.info("scanning %s", what)
                    observer = observe(index, layer) if observe is not None else None
                    scan = _scan(index, layer, policy, what, limits, task, observer)
                else:
                    scan = reused
                    task.set(status="reused", done=layer.size)
        if fresh:
            if scan.left_out:
                log.info("rewriting %s without %d entries", what, len(scan.left_out))
                with progress.task("build", f"{label} without {len(scan.left_out)} entries",
                                   scan.layer.size) as task:
                    scan.layer = _rewrite(scan.layer, policy, settings, what, limits, task)
            if cache is not None and key is not None and scan.original_diff_id is not None:
                scan_cache.store_scan(cache, key, scan.original_diff_id,
                                      scan.layer.file_count or 0,
                                      [(item.path, item.rule) for item in scan.left_out],
                                      scan.layer if scan.rewritten else None, scan.warnings)
        if scan.rewritten or scan.layer.path != layer.path:
            replacements[index] = scan.layer  # rewritten, or the same blob now a local copy
        scans.append(scan)
        done[(str(layer.digest), layer.media_type)] = scan
        if shared is not None:
            shared.setdefault((str(layer.digest), layer.media_type), scan)
    return replace_layers(image, replacements), scans


def _again(index: int, layer: Layer, first: BaseLayerScan, what: str,
           keep: bool = False) -> BaseLayerScan:
    """A layer already scanned (at an earlier index, or ``keep``: in another image): its
    result without a second read, its left-out files and warnings listed again only with
    ``keep``.

    The config's diff_id for this index is still checked against the content."""
    scanned_diff_id = first.original_diff_id
    if layer.diff_id is not None and layer.diff_id != scanned_diff_id:
        raise DigestMismatchError(f"{what}: its content has diff_id {scanned_diff_id}, but the "
                                  f"base image config says {layer.diff_id}")
    return BaseLayerScan(index, layer, first.layer, list(first.left_out) if keep else [],
                         scanned=True, original_diff_id=scanned_diff_id,
                         warnings=list(first.warnings) if keep else [])


def _foreign(media_type: str) -> bool:
    """Layers the registry does not serve (fetched by the runtime from their own URLs)."""
    return "foreign" in media_type or "nondistributable" in media_type


# -- the two passes ------------------------------------------------------------------------

def _scan(index: int, layer: Layer, policy: Policy, what: str, limits: Limits | None,
          progress: Task = NULL_TASK, observer: LayerObserver | None = None
          ) -> BaseLayerScan:
    copy_path = new_blob_path() if layer.path is None and layer.source is not None else None
    try:
        with layer.open() as verified:
            raw: IO[bytes] = progress.reading(verified)  # type: ignore[arg-type]
            if copy_path is None:
                found = filter_entries(raw, policy, what, None, limits, observer,
                                       layer.digest)
            else:
                with new_file(copy_path, f"layer blob {copy_path}") as fh:
                    copying: IO[bytes] = TeeReader(raw, fh)  # type: ignore[assignment]
                    found = filter_entries(copying, policy, what, None, limits, observer,
                                           layer.digest)
    except BaseException:
        if copy_path is not None:
            copy_path.unlink(missing_ok=True)
        raise
    diff_id = found.diff_id
    if layer.diff_id is not None and diff_id != layer.diff_id:
        raise DigestMismatchError(f"{what}: its content has diff_id {diff_id}, but the base "
                                  f"image config says {layer.diff_id}")
    used = dataclasses.replace(layer, file_count=found.kept)
    if copy_path is not None:
        used = Layer.from_file(copy_path, layer.descriptor, diff_id,
                               found.kept).with_source(layer.source)
    return BaseLayerScan(index, layer, used, found.left_out, original_diff_id=diff_id,
                         warnings=found.warnings)


def _scan_rules(policy: Policy) -> str:
    """What a scan decides by: the whole policy (its allow_files too), as key text."""
    return key_text(policy)


def _scan_key(layer: Layer, rules: str, settings: RewriteSettings) -> str:
    return scan_cache.scan_key(layer, rules, settings.compression, {"docker": settings.docker},
                               SCAN_DECIDERS)


def _reused_scan(cache: Cache | None, key: str | None, index: int, layer: Layer,
                 policy: Policy, settings: RewriteSettings, what: str,
                 limits: Limits | None) -> BaseLayerScan | None:
    """The scan of an earlier export with the same rules, from the cache."""
    if cache is None or key is None:
        return None
    found = scan_cache.reused_scan(
        cache, key, lambda: _rewrite(layer, policy, settings, what, limits), what)
    if found is None:
        return None
    if layer.diff_id is not None and found.diff_id != layer.diff_id:
        raise DigestMismatchError(f"{what}: its content has diff_id {found.diff_id}, but the "
                                  f"base image config says {layer.diff_id}")
    used = found.rewritten or dataclasses.replace(layer, diff_id=layer.diff_id or found.diff_id,
                                                  file_count=found.entries)
    return BaseLayerScan(index, layer, used, [LeftOut(p, r) for p, r in found.left_out],
                         original_diff_id=found.diff_id, warnings=list(found.warnings))


def _rewrite(layer: Layer, policy: Policy, settings: RewriteSettings, what: str,
             limits: Limits | None, progress: Task = NULL_TASK) -> Layer:
    def fill(write: TarWrite) -> int:
        with layer.open() as verified:
            kept = filter_entries(progress.reading(verified),  # type: ignore[arg-type]
                                  policy, what, write, limits).kept
        write(tf.END_OF_ARCHIVE)
        return kept

    rewritten = write_tar_blob(fill, settings.compression, settings.docker, settings.threads)
    progress.set(digest=str(rewritten.digest))
    return rewritten


@dataclass(frozen=True)
class Filtered:
    """What streaming a layer through the policy found."""

    left_out: list[LeftOut]
    diff_id: Digest                 # of the ORIGINAL uncompressed stream
    kept: int                       # files kept (entries neither folders nor whiteouts)
    warnings: list[str]             # text files longer than the token scan reads


def filter_entries(raw: IO[bytes], policy: Policy, what: str, write: TarWrite | None,
                   limits: Limits | None = None, observer: LayerObserver | None = None,
                   blob_digest: Digest | None = None) -> Filtered:
    """Stream a layer's entries through the policy.

    With ``write``, the kept entries' original bytes are written to it (without
    the end-of-archive blocks).  The raw stream is read to its end, so a verifying
    reader gets to check its digest.  ``observer`` (only without ``write``) sees every
    entry and its data from the start (the content rules take each byte as it reads it,
    then read on by themselves), and ``done()`` at the end.
    ``blob_digest``: the digest ``raw`` verifies as it is read, the diff_id of a layer
    that is not compressed (not hashed twice).
    """
    if observer is not None and write is not None:
        raise ValueError("an observer only watches a scan, not a rewrite")
    lim = limits or Limits()
    plain = open_decompressed(raw, limit=lim.max_total_bytes, what=what, hashed=True,
                              blob_digest=blob_digest, ahead=True)
    try:
        return _filter(raw, plain, policy, what, write, lim, observer)
    finally:
        plain.close()           # ends the decompressing thread (raw stays open)


def _filter(raw: IO[bytes], plain: io.BufferedReader | ReadAhead, policy: Policy, what: str,
            write: TarWrite | None, lim: Limits, observer: LayerObserver | None
            ) -> Filtered:
    tap = _Tap(plain, write) if write is not None else None
    reader = TarReader(tap if tap is not None else plain, lim, what)  # type: ignore[arg-type]
    decide = _Decider(policy)
    left_out: list[LeftOut] = []
    kept = 0
    for entry in reader:
        region_end = 0 if tap is None else tap.pos + entry.size + (-entry.size % tf.BLOCK)
        verdict, wanting = decide.by_name(entry)
        if observer is not None:
            data = _Judged(reader, decide.judging(entry, wanting) if wanting else None)
            observer.entry(entry, data)
            if wanting:
                verdict = decide.judged(entry, data.verdict())
        elif wanting:
            verdict = decide.judged(entry, decide.judge(entry, wanting, reader.read))
        if tap is not None:
            tap.settle(keep=verdict is None, until=region_end)
        if verdict is None:
            if entry.type != "dir" and not entry.is_whiteout:
                kept += 1
        elif verdict[1]:
            left_out.append(LeftOut("/" + entry.name + "/" * (entry.type == "dir"), verdict[0]))
    if tap is not None:
        tap.stop_output()
    while plain.read(_CHUNK):  # bytes after the archive's end count for the diff_id
        pass
    diff_id = content_digest(plain)
    while raw.read(_CHUNK):  # and the blob's digest is checked at its very end
        pass
    if observer is not None:
        observer.done()
    return Filtered(left_out, diff_id, kept, decide.warnings)


class _Judged:
    """An entry's data read once for two readers: an observer (``read``, each ``read(n)``
    as whole as the tar reader's own) and the content rules (a ``Policy.judging``
    coroutine), which take each byte as the observer reads it, then read on by themselves
    for their ``verdict``.  Nothing is kept for either: the rules hold one window."""

    def __init__(self, reader: TarReader, judging: Judging | None):
        self._reader = reader
        self._judging = judging
        self._want = 0                      # bytes the rules ask for next
        self._found: ContentRule | None = None
        if judging is not None:
            self._step(None)

    def _step(self, data: bytes | None) -> None:
        """Start the rules (``None``), or hand them the bytes they asked for."""
        judging = self._judging
        if judging is None:
            return
        try:
            self._want = next(judging) if data is None else judging.send(data)
        except StopIteration as done:
            self._found = done.value
            self._judging = None

    def read(self, n: int = -1) -> bytes:
        data = self._reader.read(n)
        if self._judging is not None:
            if not data and n != 0:
                self._step(b"")             # the entry's end
            pos = 0
            while self._judging is not None and pos < len(data):
                piece = data if not pos and self._want >= len(data) else \
                    data[pos:pos + self._want]
                pos += len(piece)
                self._step(piece)
        return data

    def verdict(self) -> ContentRule | None:
        """The rule the content matches (None: none), read on to where the rules stop."""
        while self._judging is not None:
            self._step(self._reader.read(self._want))
        return self._found


class _Decider:
    """Remembers what is gone in this layer, so that what depends on it goes too."""

    def __init__(self, policy: Policy):
        self._policy = policy
        self._gone: dict[str, str] = {}         # entry name -> rule
        self._gone_dirs: list[tuple[str, str]] = []   # ("name/", rule)
        self.warnings: list[str] = []           # text files longer than the token scan reads

    def by_name(self, entry: TarEntry
                ) -> tuple[tuple[str, bool] | None, tuple[ContentRule, ...]]:
        """(verdict, content rules): the verdict that needs no reading (None to keep: a
        verdict is (rule, whether to list it in the report)), else the content rules that
        must read the entry (``judging``) to decide."""
        if entry.is_whiteout:
            return None, ()
        name = entry.name
        for prefix, rule_name in self._gone_dirs:
            if name.startswith(prefix):
                return (rule_name, False), ()   # the folder is listed; its contents go with it
        if entry.type == "hardlink":
            target_rule = self._gone.get(entry.linkname) or next(
                (rule_name for prefix, rule_name in self._gone_dirs
                 if entry.linkname.startswith(prefix)), None)
            if target_rule is not None:
                return self._mark(name, target_rule, entry), ()
        rule = self._policy.file_rule(name, files_layer=False)
        if rule is not None:
            return self._mark(name, rule.name, entry), ()
        if entry.type == "file":
            return None, self._policy.content_rules_for(name)
        return None, ()

    def judge(self, entry: TarEntry, wanting: tuple[ContentRule, ...],
              read: Callable[[int], bytes]) -> ContentRule | None:
        """The content rules' judgement of the entry, as of an app's file, read through
        ``read``."""
        return self._policy.judge_content(entry.name, wanting, read, self.warnings.append)

    def judging(self, entry: TarEntry, wanting: tuple[ContentRule, ...]) -> Judging:
        """The same judgement, handed the entry's bytes by whoever reads them."""
        return self._policy.judging(entry.name, wanting, self.warnings.append)

    def judged(self, entry: TarEntry, found: ContentRule | None) -> tuple[str, bool] | None:
        """The verdict once the content rules found ``found`` (None: nothing)."""
        return None if found is None else self._mark(entry.name, found.name, entry)

    def _mark(self, name: str, rule_name: str, entry: TarEntry) -> tuple[str, bool]:
        if entry.type == "dir":
            self._gone_dirs.append((name + "/", rule_name))
        else:
            self._gone[name] = rule_name
        return rule_name, True


class _Tap:
    """Sits between the uncompressed stream and the tar reader; routes every byte.

    The bytes of an entry's header blocks (and what the content rules read of its
    data: up to 64 MiB of a text file) are held, as read, until the entry is decided;
    then they and the rest of the entry's data go to the output (kept) or nowhere (left
    out).  Global PAX headers are always kept: they apply to the entries that follow.
    """

    def __init__(self, inner: IO[bytes] | ReadAhead, write: TarWrite | None):
        self._inner = inner
        self._write = write
        self.pos = 0
        self._pending: list[bytes] = []
        self._until = 0
        self._keep = False

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        if not data:
            return b""
        start = self.pos
        self.pos += len(data)
        if self._write is None:
            return data
        cut = max(0, min(len(data), self._until - start))
        if cut and self._keep:
            self._write(data if cut == len(data) else data[:cut])
        if cut < len(data):
            self._pending.append(data[cut:] if cut else data)
        return data

    def settle(self, keep: bool, until: int) -> None:
        """The current entry is decided; its bytes run up to offset ``until``."""
        if self._write is not None:
            if keep:
                for chunk in self._pending:
                    self._write(chunk)
            else:
                global_headers = _global_headers(b"".join(self._pending))
                if global_headers:
                    self._write(global_headers)
        self._pending.clear()
        self._keep = keep
        self._until = until

    def stop_output(self) -> None:
        """The archive ended: what follows (end blocks, padding) is not copied."""
        self._write = None
        self._pending.clear()


def _global_headers(chain: bytes) -> bytes:
    """The 'g' header blocks (with their payload) among an entry's header chain."""
    out = bytearray()
    pos = 0
    while pos + tf.BLOCK <= len(chain):
        block = chain[pos:pos + tf.BLOCK]
        flag = block[156:157]
        if flag not in _META_TYPES:
            break
        size = _size_field(block[124:136])
        end = pos + tf.BLOCK + size + (-size % tf.BLOCK)
        if flag == tf.XGLTYPE:
            out += chain[pos:end]
        pos = end
    return bytes(out)


def _size_field(raw: bytes) -> int:
    """A tar size field: octal text, or base-256 (the reader already checked it)."""
    if raw and raw[0] & 0x80:
        value = raw[0] & 0x3F
        for b in raw[1:]:
            value = (value << 8) | b
        return value
    text = raw.split(b"\0", 1)[0].strip(b" \0")
    return int(text, 8) if text else 0
