"""The inventories of several images taken together (the platforms of one export): each
the same as taken alone, and a layer several images hold read once for them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pkgmeta
from image_factory import make_layer

from ociforge.app.inventory import LayerRef, take_inventories, take_inventory
from ociforge.model.layer import Layer


def counted(layer: Layer, opened: list[str], name: str) -> Layer:
    def opener() -> Any:
        opened.append(name)
        return layer.opener()

    return dataclasses.replace(layer, opener=opener)


def python_layer(tmp: Path, name: str, version: str) -> dict[str, bytes]:
    folder = pkgmeta.write_python(tmp / name, name, version, "License: MIT\n")
    return {f"usr/lib/python3/dist-packages/{folder.name}/METADATA":
            (folder / "METADATA").read_bytes()}


def stack(*layers: tuple[str, Layer]) -> list[tuple[LayerRef, Layer]]:
    return [(LayerRef(i, str(layer.digest), name), layer) for i, (name, layer) in
            enumerate(layers)]


def test_a_shared_layer_is_read_once_and_each_inventory_is_as_alone(tmp_path: Path) -> None:
    opened: list[str] = []
    base_a = counted(make_layer(tmp_path / "b", python_layer(tmp_path, "alpha", "1.0")),
                     opened, "base-a")
    base_b = counted(make_layer(tmp_path / "b", python_layer(tmp_path, "beta", "2.0")),
                     opened, "base-b")
    shared = counted(make_layer(tmp_path / "b", {
        **python_layer(tmp_path, "shared", "3.0"),
        # replaces alpha's metadata in the first image only: the views differ
        "usr/lib/python3/dist-packages/alpha-1.0.dist-info": b"not a folder any more"}),
        opened, "shared")
    images = [stack(("base", base_a), ("app", shared)), stack(("base", base_b), ("app", shared))]
    together = take_inventories(images)
    assert sorted(opened) == ["base-a", "base-b", "shared"]
    opened.clear()
    alone = [take_inventory(image) for image in images]
    assert together == alone
    assert [sorted(p.name for p in inv.packages) for inv in together] == [
        ["shared"], ["beta", "shared"]]


def test_layers_in_different_orders_are_read_apart(tmp_path: Path) -> None:
    opened: list[str] = []
    one = counted(make_layer(tmp_path / "b", python_layer(tmp_path, "one", "1")), opened, "1")
    two = counted(make_layer(tmp_path / "b", python_layer(tmp_path, "two", "2")), opened, "2")
    images = [stack(("a", one), ("b", two)), stack(("a", two), ("b", one))]
    together = take_inventories(images)
    # neither waits for ever: one is read alone, then both reach two together
    assert sorted(opened) == ["1", "1", "2"]
    assert together == [take_inventory(image) for image in images]
