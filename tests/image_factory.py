"""Small, fixed images for the offline tests (layouts, archives, verify, CLI).

Layers are built here with tarfile + gzip (not with ociforge.layers.build) so that
source/sink tests do not depend on the layer builder.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

from ociforge.model import mediatypes as mt
from ociforge.model import mutate
from ociforge.model.descriptor import Descriptor
from ociforge.model.digest import Digest
from ociforge.model.image import Image
from ociforge.model.index import Index, build_index
from ociforge.model.layer import Layer
from ociforge.model.platform import Platform


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_layer(tmp: Path, files: dict[str, bytes], compression: str = "gzip",
               docker: bool = False) -> Layer:
    raw = tar_bytes(files)
    if compression == "gzip":
        blob = gzip.compress(raw, mtime=0)
    elif compression == "zstd":
        import zstandard

        blob = zstandard.ZstdCompressor(level=3).compress(raw)
    else:
        blob = raw
    digest = Digest.of_bytes(blob)
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"layer-{digest.hex[:16]}"
    path.write_bytes(blob)
    desc = Descriptor(mt.layer_type(compression, docker), digest, len(blob))
    return Layer.from_file(path, desc, Digest.of_bytes(raw))


def make_image(tmp: Path, name: str = "one", layers: int = 2, docker: bool = False,
               platform: str = "linux/amd64", compression: str = "gzip") -> Image:
    tmp.mkdir(parents=True, exist_ok=True)
    image = mutate.scratch(Platform.parse(platform), docker=docker)
    made = [
        make_layer(tmp, {f"{name}/file{i}.txt": f"{name} {platform} layer {i}\n".encode()},
                   compression, docker)
        for i in range(layers)
    ]
    image = mutate.append_layers(image, made)
    return mutate.configure(image, mutate.ConfigChanges(env={"NAME": name}))


def make_index(tmp: Path, platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64")) -> Index:
    return build_index([(make_image(tmp, "multi", 1, platform=p), None) for p in platforms])
