"""Write a tar stream into a layer blob in one pass: diff_id, compression, digest, size.

build.build_layer does the same for trees on disk; this is the same pipeline for
a tar stream produced by a callback (the export rewrites base layers with it).
The compressors are compress.py's deterministic ones, so the same tar bytes give
the same blob bytes with any thread count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from ..compress import BackgroundWriter, compressor
from ..descriptor import Descriptor
from ..digest import Digest, HashingWriter
from ..layer import Layer
from ..mediatypes import layer_type
from ..workspace import new_blob_path

_FLUSH_AT = 1 << 20

TarWrite = Callable[[bytes], None]


class _Gather:
    """Groups small header writes into ~1 MiB chunks (each handed over, never reused)."""

    def __init__(self, sink: Callable[[bytes | bytearray], None]):
        self._sink = sink
        self._buf = bytearray()

    def write(self, data: bytes) -> None:
        if len(data) >= _FLUSH_AT:
            self.flush()
            self._sink(bytes(data))
            return
        self._buf += data
        if len(self._buf) >= _FLUSH_AT:
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
    blob_path = new_blob_path()
    diff = hashlib.sha256()
    try:
        with open(blob_path, "xb", buffering=_FLUSH_AT) as fh:
            blob = HashingWriter(fh)
            out = BackgroundWriter(blob.write)
            diff_feed = BackgroundWriter(diff.update)
            comp = compressor(compression, out, threads=threads)
            try:
                def sink(chunk: bytes | bytearray) -> None:
                    diff_feed.write(chunk)
                    comp.write(chunk)

                gather = _Gather(sink)
                count = fill(gather.write)
                gather.flush()
                comp.finish()
                diff_feed.close()
                out.close()
            except BaseException:
                comp.abort()
                diff_feed.abandon()
                out.abandon()
                raise
    except BaseException:
        blob_path.unlink(missing_ok=True)
        raise
    descriptor = Descriptor(layer_type(compression, docker), blob.digest, blob.size)
    return Layer.from_file(blob_path, descriptor, Digest("sha256", diff.hexdigest()), count)
