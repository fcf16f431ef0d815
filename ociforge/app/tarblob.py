"""Write a tar stream produced by a callback into a layer blob (rewritten base layers).

Small header writes are gathered into ~1 MiB chunks before they reach the shared
one-pass writer (ociforge.layers.blobwriter), which build.build_layer uses too.
"""

from __future__ import annotations

from collections.abc import Callable

from ..layers.blobwriter import FLUSH_AT, write_layer_blob
from ..model.layer import Layer

TarWrite = Callable[[bytes], None]


class _Gather:
    """Groups small header writes into ~1 MiB chunks (each handed over, never reused)."""

    def __init__(self, sink: Callable[[bytes | bytearray], None]):
        self._sink = sink
        self._buf = bytearray()

    def write(self, data: bytes) -> None:
        if len(data) >= FLUSH_AT:
            self.flush()
            self._sink(bytes(data))
            return
        self._buf += data
        if len(self._buf) >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self._sink(self._buf)
            self._buf = bytearray()


def write_tar_blob(fill: Callable[[TarWrite], int], compression: str, docker: bool,
                   threads: int | None = None) -> Layer:
    """Run ``fill(write)``, which writes a whole tar stream and returns its entry count.

    Returns the layer as a local blob file with its descriptor and diff_id; on any
    error the partial blob is removed.
    """
    def produce(sink: Callable[[bytes | bytearray], None]) -> int:
        gather = _Gather(sink)
        count = fill(gather.write)
        gather.flush()
        return count

    return write_layer_blob(produce, compression, docker, threads)
