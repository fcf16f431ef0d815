"""Why two builds that should be byte-identical are not: a report for a failing assertion.

``explain(layout_a, layout_b, trees)`` compares the images of two OCI layouts
document by document: a unified diff of the manifests and of the configs, then
for every layer that differs, whether the tar itself differs (diff_id) or only
its compression (digest), the tar entries that differ (name, type, mode, owner,
size, mtime, link, PAX records, a hash of the data) or, when every entry agrees,
the first differing byte; and the stat of the source trees side by side, with
the process facts that could change bytes (umask, compressor, threads).
Independent of ociforge's readers: only json, tarfile and gzip.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MAX_LINES = 40


def explain(first: Path, second: Path, trees: Sequence[Path] = ()) -> str:
    """A multi-line report of how the images in two OCI layouts differ."""
    lines = [f"comparing {first} and {second}"]
    try:
        a, b = _image(first), _image(second)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        lines.append(f"cannot read the layouts: {exc!r}")
    else:
        lines += _documents(a, b)
        lines += _layers(first, second, a, b)
    if len(trees) == 2:
        lines += _trees(Path(trees[0]), Path(trees[1]))
    lines += _process_facts()
    return "\n".join(lines)


def first_difference(one: bytes, two: bytes) -> str:
    """Where two byte strings part: offset, lengths and 16 bytes of each from there."""
    if one == two:
        return "identical"
    at = next((i for i, (x, y) in enumerate(zip(one, two, strict=False)) if x != y),
              min(len(one), len(two)))
    return (f"{len(one)} vs {len(two)} bytes, first difference at offset {at}: "
            f"{one[at:at + 16].hex()} vs {two[at:at + 16].hex()}")


# -- documents -----------------------------------------------------------------------------

def _blob(layout: Path, digest: str) -> bytes:
    algorithm, _, hexdigest = digest.partition(":")
    return (layout / "blobs" / algorithm / hexdigest).read_bytes()


def _image(layout: Path) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads(_blob(layout, digest))
    config = json.loads(_blob(layout, manifest["config"]["digest"]))
    return {"digest": digest, "manifest": manifest, "config": config}


def _json_diff(name: str, one: Any, two: Any) -> list[str]:
    if one == two:
        return [f"{name}: equal"]
    text_one = json.dumps(one, indent=1, sort_keys=True).splitlines()
    text_two = json.dumps(two, indent=1, sort_keys=True).splitlines()
    diff = list(difflib.unified_diff(text_one, text_two, f"{name} (first)", f"{name} (second)",
                                     lineterm="", n=1))
    return [f"{name}: differs", *diff[:MAX_LINES]]


def _documents(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    lines = [f"image: {a['digest']} vs {b['digest']}"]
    lines += _json_diff("manifest", a["manifest"], b["manifest"])
    lines += _json_diff("config", a["config"], b["config"])
    return lines


# -- layers ---------------------------------------------------------------------------------

def _layers(first: Path, second: Path, a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    layers_a, layers_b = a["manifest"].get("layers", []), b["manifest"].get("layers", [])
    diffs_a = a["config"].get("rootfs", {}).get("diff_ids", [])
    diffs_b = b["config"].get("rootfs", {}).get("diff_ids", [])
    if len(layers_a) != len(layers_b):
        lines.append(f"layer count: {len(layers_a)} vs {len(layers_b)}")
    for i, (la, lb) in enumerate(zip(layers_a, layers_b, strict=False)):
        if la["digest"] == lb["digest"]:
            lines.append(f"layer {i}: equal ({la['digest']})")
            continue
        diff_a = diffs_a[i] if i < len(diffs_a) else "?"
        diff_b = diffs_b[i] if i < len(diffs_b) else "?"
        lines.append(f"layer {i}: digest {la['digest']} vs {lb['digest']}, "
                     f"size {la['size']} vs {lb['size']}, diff_id {diff_a} vs {diff_b}")
        try:
            blob_a, blob_b = _blob(first, la["digest"]), _blob(second, lb["digest"])
            tar_a, tar_b = _uncompressed(blob_a), _uncompressed(blob_b)
        except (OSError, EOFError, ValueError) as exc:
            lines.append(f"  cannot read the layer blobs: {exc!r}")
            continue
        if tar_a == tar_b:
            lines.append("  the tars are equal: only the compressed bytes differ, "
                         + first_difference(blob_a, blob_b))
            continue
        lines += ["  " + line for line in _tar_diff(tar_a, tar_b)]
    return lines


def _uncompressed(blob: bytes) -> bytes:
    if blob[:2] == b"\x1f\x8b":
        return gzip.decompress(blob)
    if blob[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    return blob


def _entries(tar_bytes: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        for member in tar:
            data = b""
            if member.isfile():
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
            pax = {k: v for k, v in member.pax_headers.items() if k != "path"}
            out[member.name] = (
                f"type={member.type!r} mode={member.mode:o} uid={member.uid} gid={member.gid} "
                f"uname={member.uname!r} gname={member.gname!r} size={member.size} "
                f"mtime={member.mtime} link={member.linkname!r} pax={pax} "
                f"data={hashlib.sha256(data).hexdigest()[:12]}")
    return out


def _tar_diff(tar_a: bytes, tar_b: bytes) -> list[str]:
    try:
        entries_a, entries_b = _entries(tar_a), _entries(tar_b)
    except tarfile.TarError as exc:
        return [f"the tars differ and one does not read: {exc!r}",
                first_difference(tar_a, tar_b)]
    lines = [f"the tars differ ({len(entries_a)} vs {len(entries_b)} entries, "
             f"order {'equal' if list(entries_a) == list(entries_b) else 'differs'}):"]
    for name in sorted(set(entries_a) | set(entries_b)):
        one, two = entries_a.get(name), entries_b.get(name)
        if one != two:
            lines.append(f"{name}:")
            lines.append(f"  first:  {one or 'absent'}")
            lines.append(f"  second: {two or 'absent'}")
    if len(lines) == 1:
        lines.append("every entry agrees; the tar bytes part at: "
                     + first_difference(tar_a, tar_b))
    return lines[:MAX_LINES]


# -- the source trees and the process ---------------------------------------------------------

def _tree(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            text = (f"{stat.filemode(info.st_mode)} nlink={info.st_nlink} "
                    f"uid={info.st_uid} gid={info.st_gid} size={info.st_size}")
            if stat.S_ISLNK(info.st_mode):
                text += f" -> {os.readlink(path)}"
            elif stat.S_ISREG(info.st_mode):
                with open(path, "rb") as fh:
                    text += f" data={hashlib.sha256(fh.read()).hexdigest()[:12]}"
            out[os.path.relpath(path, root)] = text
    return out


def _trees(first: Path, second: Path) -> list[str]:
    try:
        tree_a, tree_b = _tree(first), _tree(second)
    except OSError as exc:
        return [f"cannot list the source trees: {exc!r}"]
    lines = [f"source trees {first} and {second} (owners and times may differ on purpose):"]
    for name in sorted(set(tree_a) | set(tree_b)):
        lines.append(f"  {name}: {tree_a.get(name, 'absent')} | {tree_b.get(name, 'absent')}")
    return lines[:MAX_LINES]


def _process_facts() -> list[str]:
    from ociforge.layers import compress

    umask = "?"
    try:   # read, not set: setting it, even back, would race with threads making files
        with open("/proc/self/status") as fh:
            umask = next((line.split()[1] for line in fh if line.startswith("Umask:")), "?")
    except OSError:
        pass
    return [f"process: umask {umask}, ISA-L {compress.HAVE_ISAL}, "
            f"compression threads {compress.default_threads()}, "
            f"SOURCE_DATE_EPOCH {os.environ.get('SOURCE_DATE_EPOCH')!r}, euid {os.geteuid()}"]
