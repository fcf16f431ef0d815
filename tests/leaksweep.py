"""Find secrets anywhere in what a run wrote or printed, including inside compressed
layers and tar members, so a leak cannot hide behind an encoding."""

from __future__ import annotations

import contextlib
import gzip
import io
import tarfile
from collections.abc import Iterator

import zstandard


def contents(data: bytes, depth: int = 0) -> Iterator[bytes]:
    """The bytes and, recursively, what they hold: gzip, zstd, tar members."""
    yield data
    if depth > 4:
        return
    if data[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError, EOFError):
            yield from contents(gzip.decompress(data), depth + 1)
        return
    if data[:4] == b"\x28\xb5\x2f\xfd":
        with contextlib.suppress(zstandard.ZstdError):
            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
            yield from contents(reader.read(), depth + 1)
        return
    if len(data) >= 512 and data[257:262] == b"ustar":
        with contextlib.suppress(tarfile.TarError), \
                tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar:
                yield (member.name + "\0" + member.linkname).encode()
                if member.isfile():
                    handle = tar.extractfile(member)
                    if handle is not None:
                        yield from contents(handle.read(), depth + 1)


def sweep(outputs: dict[str, bytes], needles: dict[str, str]) -> list[str]:
    """"<needle's name> in <output's name>" for every needle found in any output."""
    found = []
    for where, data in outputs.items():
        for part in contents(data):
            for what, value in needles.items():
                if value and value.encode() in part:
                    found.append(f"{what} in {where}")
    return sorted(set(found))
