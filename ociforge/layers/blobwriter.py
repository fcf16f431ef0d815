"""The one-pass layer writer: tar bytes in; diff_id, compressed blob, digest and size out.

Every layer ociforge makes goes through here (folders in build.py, rewritten base
layers in app/tarblob.py): the uncompressed stream is hashed for the diff_id and
compressed, and the compressed bytes are hashed and written to a blob file, each
on its own thread, in a single pass.  The compressors are compress.py's
deterministic ones, so the same tar bytes always give the same blob.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import IO

from ..fsutil import new_file
from ..model.descriptor import Descriptor
from ..model.digest import Digest, HashingWriter
from ..model.layer import Layer
from ..model.mediatypes import layer_type
from ..threads import BackgroundWriter
from .compress import compressor
from .workspace import new_blob_path

FLUSH_AT = 1 << 20
# The blob file's buffer: small pieces (gzip headers, a short last block) gather here;
# the ~1 MiB compressed chunks are larger and go straight to the file, uncopied.
_FILE_BUFFER = 64 << 10

Sink = Callable[[bytes | bytearray], None]


class TeeReader:
    """Reads a stream while writing every byte to ``copy`` (one read, two uses).

    Lets a blob be copied (and, through a HashingWriter, hashed) while it is being
    decompressed and checked.  Closing it leaves ``raw`` to its owner.
    """

    def __init__(self, raw: IO[bytes], copy: IO[bytes] | HashingWriter):
        self._raw = raw
        self._copy = copy

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n if n is not None and n >= 0 else FLUSH_AT)
        if data:
            self._copy.write(data)
        return data

    def close(self) -> None:
        pass


def write_layer_blob(
    produce: Callable[[Sink], int], compression: str, docker: bool, threads: int | None = None
) -> Layer:
    """Run ``produce(sink)``, which writes a whole tar stream and returns its entry count.

    Chunks handed to ``sink`` must not be changed afterwards (the compressor and
    the hasher read them on other threads).  Returns the layer as a local blob
    file; on any error (Ctrl-C included) the partial blob is removed.
    """
    blob_path = new_blob_path()
    diff = hashlib.sha256()
    try:
        with new_file(blob_path, f"layer blob {blob_path}", buffering=_FILE_BUFFER) as fh:
            blob = HashingWriter(fh)
            out = BackgroundWriter(blob.write)
            diff_feed = BackgroundWriter(diff.update)
            comp = compressor(compression, out, threads=threads)
            try:

                def sink(chunk: bytes | bytearray) -> None:
                    diff_feed.write(chunk)
                    comp.write(chunk)

                count = produce(sink)
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
