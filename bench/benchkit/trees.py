"""Seeded benchmark trees: the same seed and sizes give byte-identical trees.

Two shapes, as issue 5 describes them: a *mixed* tree of large files, half
compressible text and half incompressible random bytes, and a tree of many
small (1-4 KiB) text files that exposes per-file overhead; and for issue 14 a
*rootfs* tree: many files of every size, as a system's /usr holds them.  Text comes from a
pool of 65,536 seeded pseudo-sentences picked at random, so it compresses like
logs or source code (gzip about 1:3) without long-range repeats a compressor
could exploit unrealistically.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

_MARKER = ".benchtree.json"
_WORDS_SEED_SALT = 7919


@dataclass(frozen=True)
class TreeSpec:
    """What a tree holds; stored next to it so a kept work dir can be reused."""

    kind: str            # "mixed", "small" or "rootfs"
    files: int
    total_bytes: int     # mixed: the total size; small: ignored (sizes are 1-4 KiB)
    seed: int


@dataclass(frozen=True)
class Tree:
    path: Path
    spec: TreeSpec
    bytes: int           # bytes of file content actually written
    files: int


def _text_pool(rng: random.Random) -> list[bytes]:
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    weights = [12, 9, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    words = []
    for _ in range(4096):
        n = rng.randint(2, 10)
        words.append("".join(rng.choices(letters, weights, k=n)))
    zipf = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(words))))
    lines = []
    for _ in range(65536):
        n = rng.randint(4, 14)
        body = " ".join(rng.choices(words, cum_weights=zipf, k=n))
        lines.append(f"{body} {rng.randint(0, 999)}\n".encode())
    return lines


def _text(rng: random.Random, pool: list[bytes], size: int) -> bytes:
    out: list[bytes] = []
    have = 0
    mask = len(pool) - 1
    raw = rng.randbytes(2 * (size // 40 + 8))
    idx = memoryview(raw).cast("H")
    i = 0
    while have < size:
        if i >= len(idx):
            raw = rng.randbytes(2 * (size // 40 + 8))
            idx = memoryview(raw).cast("H")
            i = 0
        line = pool[idx[i] & mask]
        out.append(line)
        have += len(line)
        i += 1
    return b"".join(out)[:size]


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)


def _mixed_sizes(rng: random.Random, files: int, total: int) -> list[int]:
    lo, hi = math.log(4096), math.log(8 << 20)
    raw = [math.exp(rng.uniform(lo, hi)) for _ in range(files)]
    scale = total / sum(raw)
    sizes = [max(1, int(s * scale)) for s in raw]
    sizes[-1] += total - sum(sizes)
    return sizes


def _make_mixed(root: Path, spec: TreeSpec) -> int:
    rng = random.Random(spec.seed)
    pool = _text_pool(random.Random(spec.seed * _WORDS_SEED_SALT))
    written = 0
    chunk = 8 << 20
    for i, size in enumerate(_mixed_sizes(rng, spec.files, spec.total_bytes)):
        folder = root / f"d{i % 20:02d}" / f"s{(i // 20) % 10}"
        is_text = rng.random() < 0.5
        name = f"f{i:05d}.{'txt' if is_text else 'bin'}"
        mode = 0o755 if i % 10 == 0 else 0o644
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / name, "wb") as fh:
            left = size
            while left > 0:
                n = min(chunk, left)
                fh.write(_text(rng, pool, n) if is_text else rng.randbytes(n))
                left -= n
        os.chmod(folder / name, mode)
        written += size
    (root / "links").mkdir(exist_ok=True)
    os.symlink("../d00/s0/f00000.bin" if (root / "d00/s0/f00000.bin").exists()
               else "../d00/s0/f00000.txt", root / "links" / "first")
    (root / "empty").mkdir(exist_ok=True)
    return written


def _make_small(root: Path, spec: TreeSpec) -> int:
    rng = random.Random(spec.seed)
    pool = _text_pool(random.Random(spec.seed * _WORDS_SEED_SALT))
    written = 0
    for i in range(spec.files):
        size = rng.randint(1024, 4096)
        _write(root / f"p{i // 500:03d}" / f"m{i:06d}.txt", _text(rng, pool, size))
        written += size
    return written


def _make_rootfs(root: Path, spec: TreeSpec) -> int:
    """Many files of every size (log-uniform, 128 B to 4 MiB, scaled to the total), half
    text, half random, 100 to a folder, some executables and symlinks: a system's /usr."""
    rng = random.Random(spec.seed)
    pool = _text_pool(random.Random(spec.seed * _WORDS_SEED_SALT))
    lo, hi = math.log(128), math.log(4 << 20)
    raw = [math.exp(rng.uniform(lo, hi)) for _ in range(spec.files)]
    scale = spec.total_bytes / sum(raw)
    written = 0
    for i, weight in enumerate(raw):
        size = max(1, int(weight * scale))
        folder = root / f"p{i // 1000:03d}" / f"d{(i // 100) % 10}"
        is_text = rng.random() < 0.5
        name = f"f{i:06d}.{'txt' if is_text else 'bin'}"
        _write(folder / name, _text(rng, pool, size) if is_text else rng.randbytes(size),
               0o755 if i % 10 == 0 else 0o644)
        if i % 500 == 1:
            os.symlink(name, folder / f"l{i:06d}")
        written += size
    return written


def make_tree(path: Path, spec: TreeSpec) -> Tree:
    """Create (or reuse, when the marker matches) a seeded tree at ``path``."""
    marker = path.parent / f"{path.name}{_MARKER}"
    if path.is_dir() and marker.is_file():
        saved = json.loads(marker.read_text())
        if saved.get("spec") == asdict(spec):
            return Tree(path, spec, int(saved["bytes"]), spec.files)
    if path.exists():
        shutil.rmtree(path)
    marker.unlink(missing_ok=True)
    path.mkdir(parents=True)
    makers = {"mixed": _make_mixed, "small": _make_small, "rootfs": _make_rootfs}
    written = makers[spec.kind](path, spec)
    marker.write_text(json.dumps({"spec": asdict(spec), "bytes": written}))
    return Tree(path, spec, written, spec.files)
