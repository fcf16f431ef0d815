"""Just enough OCI-layout reading to check what the measured tools wrote.

Deliberately independent of ociforge's own reader: the harness checks its
subject's output with its own eyes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _blob(layout: Path, digest: str) -> Path:
    algo, _, hexpart = digest.partition(":")
    return layout / "blobs" / algo / hexpart


def manifest_descriptor(layout: Path, tag: str | None = None) -> dict[str, Any]:
    """The index.json descriptor for ``tag`` (or the only one)."""
    index = json.loads((layout / "index.json").read_text())
    manifests = index.get("manifests", [])
    if tag is not None:
        for desc in manifests:
            if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
                return dict(desc)
    if len(manifests) == 1:
        return dict(manifests[0])
    raise LookupError(f"{layout}: no manifest tagged {tag!r}")


def manifest(layout: Path, tag: str | None = None) -> dict[str, Any]:
    desc = manifest_descriptor(layout, tag)
    doc = json.loads(_blob(layout, desc["digest"]).read_bytes())
    if "manifests" in doc:  # an index: take its first image manifest
        doc = json.loads(_blob(layout, doc["manifests"][0]["digest"]).read_bytes())
    return dict(doc)


def layer_digests(layout: Path, tag: str | None = None) -> list[str]:
    return [str(layer["digest"]) for layer in manifest(layout, tag).get("layers", [])]


def largest_layer(layout: Path, tag: str | None = None) -> tuple[Path, str, int]:
    """(blob path, digest, size) of the biggest layer: what a bare curl upload sends."""
    layers = manifest(layout, tag).get("layers", [])
    if not layers:
        raise LookupError(f"{layout}: image has no layers")
    big = max(layers, key=lambda desc: int(desc["size"]))
    return _blob(layout, big["digest"]), str(big["digest"]), int(big["size"])


def total_blob_bytes(layout: Path, tag: str | None = None) -> int:
    doc = manifest(layout, tag)
    return sum(int(d["size"]) for d in doc.get("layers", [])) + int(doc["config"]["size"])
