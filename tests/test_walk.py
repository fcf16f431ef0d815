"""The one walk over an image tree: order, each manifest and blob once, skips."""

from __future__ import annotations

from pathlib import Path

from image_factory import make_image

from ociforge.model import walk
from ociforge.model.index import build_index


def _tree(tmp: Path):  # type: ignore[no-untyped-def]
    amd = make_image(tmp, "a", 2, platform="linux/amd64")
    arm = make_image(tmp, "b", 1, platform="linux/arm64")
    inner = build_index([(arm, None), (amd, None)])
    top = build_index([(amd, None), (inner, None), (amd, None)])  # amd named three times
    return amd, arm, inner, top


def test_manifests_children_first_each_once_root_last(tmp_path: Path) -> None:
    amd, arm, inner, top = _tree(tmp_path)
    assert [m.digest for m in walk.manifests(top)] == [amd.digest, arm.digest, inner.digest,
                                                       top.digest]
    assert [m.digest for m in walk.children(top)] == [amd.digest, arm.digest, inner.digest]
    assert [m.digest for m in walk.manifests(top, {inner.digest})] == [amd.digest, top.digest]
    assert list(walk.manifests(top, {top.digest})) == []
    assert [i.digest for i in walk.images(top)] == [amd.digest, arm.digest]


def test_blobs_config_first_and_each_once_unless_asked(tmp_path: Path) -> None:
    amd, arm, _, top = _tree(tmp_path)
    expected = [amd.config_descriptor.digest, *(x.digest for x in amd.layers),
                arm.config_descriptor.digest, *(x.digest for x in arm.layers)]
    assert [b.digest for b in walk.blobs(top)] == expected
    assert [b.digest for b in walk.blobs(top, unique=False)] == expected  # images once anyway
    config = next(walk.image_blobs(amd))
    with config.open() as reader:
        assert reader.read() == amd.config_bytes


def test_descriptors_name_everything_a_store_must_hold(tmp_path: Path) -> None:
    amd, arm, inner, top = _tree(tmp_path)
    found = [d.digest for d in walk.descriptors(top)]
    assert len(found) == len(set(found))
    assert found[-1] == top.digest
    for needed in [amd.digest, arm.digest, inner.digest, *(b.digest for b in walk.blobs(top))]:
        assert needed in found
    assert found.index(inner.digest) > found.index(arm.digest)  # a child before its parent


def test_visits_top_down_descending_into_each_manifest_once(tmp_path: Path) -> None:
    amd, arm, inner, top = _tree(tmp_path)
    steps = [(v.artifact.digest, v.position, v.first) for v in walk.visits(top)]
    assert steps == [(top.digest, None, True), (amd.digest, 0, True), (inner.digest, 1, True),
                     (arm.digest, 0, True), (amd.digest, 1, False), (amd.digest, 2, False)]
