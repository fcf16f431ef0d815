"""Writer processes for the many-writers-one-layout tests (real processes, the library).

``stress_writer`` runs in a spawned process: each round it waits at a barrier
with the other writers, then writes its own image under its own tag into that
round's fresh layout.  Run as a script, this module is a writer whose one
gated layer is read from a FIFO: it prints ``blocked`` once it is inside the
write (the layout created, earlier blobs written) and then waits until the test
feeds the FIFO, so a test can interrupt another writer at exactly that moment.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from ociforge.model.image import Image
from ociforge.model.layer import Layer
from ociforge.options import Options
from ociforge.stores.layoutlocation import LayoutLocation


def stress_writer(number: int, source: str, roots: list[str], barrier: Any,
                  results: Any) -> None:
    image = LayoutLocation(source, "t").read(Options())
    for round_, root in enumerate(roots):
        barrier.wait(120)
        try:
            digest = LayoutLocation(root, f"w{number}").write(image, Options()).digest
            results.put((round_, number, "ok", digest))
        except Exception as exc:  # reported to the test, which fails on it
            results.put((round_, number, "error", f"{type(exc).__name__}: {exc}"))


def _gated(layer: Layer, fifo: str) -> Layer:
    def opener() -> IO[bytes]:
        print("blocked", flush=True)
        return open(fifo, "rb")

    return Layer(layer.descriptor, layer.diff_id, opener, None, layer.source)


def gated_write(source: str, dest: str, tag: str, fifo: str) -> str:
    """Write the image at ``source`` into ``dest`` with its last layer read from ``fifo``."""
    image = LayoutLocation(source, "t").read(Options())
    assert isinstance(image, Image)
    layers = (*image.layers[:-1], _gated(image.layers[-1], fifo))
    gated = Image(image.manifest_bytes, image.config_bytes, layers, image.source)
    return LayoutLocation(dest, tag).write(gated, Options()).digest


if __name__ == "__main__":
    print(gated_write(*sys.argv[1:5]), flush=True)
    sys.exit(0)

