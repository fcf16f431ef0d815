"""Small test images built with the core alone (no CLI): random-content gzip layers.

The reliability tests need images whose layers are big enough to be cut in
the middle of an upload but small enough to keep the suite fast; random bytes
make every layer distinct (no accidental blob sharing between tests) and
incompressible (the blob is as big as asked).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

from ociforge.model import mediatypes as mt
from ociforge.model.descriptor import Descriptor
from ociforge.model.digest import Digest
from ociforge.model.image import Image
from ociforge.model.layer import Layer
from ociforge.model.mutate import append_layers, scratch
from ociforge.model.platform import Platform

PLATFORM = Platform("linux", "amd64")


def make_layer(directory: Path, size: int = 1024, name: str = "data.bin",
               content: bytes | None = None) -> Layer:
    """A gzip layer holding one file of ``size`` random bytes, stored in ``directory``."""
    data = content if content is not None else os.urandom(size)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    blob = gzip.compress(tar_bytes, compresslevel=1, mtime=0)
    digest = hashlib.sha256(blob).hexdigest()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{digest}.tar.gz"
    path.write_bytes(blob)
    desc = Descriptor(mt.OCI_LAYER_GZIP, Digest("sha256", digest), len(blob))
    return Layer.from_file(path, desc, Digest.of_bytes(tar_bytes), 1)


def make_image(directory: Path, sizes: Sequence[int]) -> Image:
    layers = [make_layer(directory, size, name=f"layer{i}.bin") for i, size in enumerate(sizes)]
    return append_layers(scratch(PLATFORM), layers, epoch=0)


def write_layout(image: Image, root: Path, tag: str = "t") -> str:
    """Write ``image`` into an OCI layout; returns the oci: location text."""
    from ociforge.options import Options
    from ociforge.stores.layoutlocation import LayoutLocation

    LayoutLocation(root, tag).write(image, Options(platform=PLATFORM))
    return f"oci:{root}:{tag}"


def layout_with_image(root: Path, sizes: Sequence[int], tag: str = "t") -> tuple[str, Image]:
    image = make_image(root.parent / (root.name + "-src"), sizes)
    return write_layout(image, root, tag), image
