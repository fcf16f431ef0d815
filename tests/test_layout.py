"""OCI layouts: round trips, shared tags, verification on read, atomicity, concurrency."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
from pathlib import Path

import pytest
from image_factory import make_image, make_index

from ociforge.errors import (
    DigestMismatchError,
    InvalidInputError,
    NotFoundError,
    SelectionError,
    SizeMismatchError,
    ValidationError,
)
from ociforge.fsutil import atomic_write, atomic_write_bytes, file_lock
from ociforge.model import mediatypes as mt
from ociforge.model.annotations import REF_NAME
from ociforge.model.descriptor import Descriptor
from ociforge.model.digest import Digest
from ociforge.model.image import Image
from ociforge.model.index import Index
from ociforge.options import Options
from ociforge.stores.layout import Layout
from ociforge.stores.layoutlocation import LayoutLocation

OPTS = Options()


def _read_all(image: Image) -> None:
    for layer in image.layers:
        with layer.open() as reader:
            while reader.read(65536):
                pass


def test_round_trip_keeps_digest_and_bytes(tmp_path: Path) -> None:
    image = make_image(tmp_path / "src")
    loc = LayoutLocation(tmp_path / "lay", "v1")
    result = loc.write(image, OPTS)
    assert result.digest == str(image.digest)
    back = loc.read(OPTS)
    assert isinstance(back, Image)
    assert back.manifest_bytes == image.manifest_bytes
    assert back.config_bytes == image.config_bytes
    assert [layer.digest for layer in back.layers] == [layer.digest for layer in image.layers]
    assert [layer.diff_id for layer in back.layers] == [layer.diff_id for layer in image.layers]
    _read_all(back)
    layout = json.loads((tmp_path / "lay" / "oci-layout").read_text())
    assert layout == {"imageLayoutVersion": "1.0.0"}


def test_index_round_trip_writes_children_first(tmp_path: Path) -> None:
    index = make_index(tmp_path / "src")
    layout = Layout(tmp_path / "lay")
    layout.put(index, "multi")
    for _, child in index.children:
        assert layout.blob_path(child.digest).is_file()
    back = LayoutLocation(tmp_path / "lay", "multi").read(OPTS)
    assert isinstance(back, Index)
    assert back.index_bytes == index.index_bytes
    assert [c.digest for _, c in back.children] == [c.digest for _, c in index.children]


def test_tags_share_one_layout_and_replace(tmp_path: Path) -> None:
    one = make_image(tmp_path / "a", "one")
    two = make_image(tmp_path / "b", "two")
    layout = Layout(tmp_path / "lay")
    layout.put(one, "a")
    layout.put(two, "b")
    layout.put(two, "a")  # retag: replaces the entry, never duplicates it
    assert sorted(layout.tags()) == ["a", "b"]
    assert layout.find("a").digest == two.digest
    assert layout.find(digest=str(two.digest)).digest == two.digest
    with pytest.raises(NotFoundError):
        layout.find(digest=str(one.digest))  # untagged by the retag
    with pytest.raises(SelectionError, match="tags: ") as missing:
        layout.find("nope")  # bad input (exit 2) that lists the tags there are
    assert missing.value.exit_code == 2 and "tags: b, a" in str(missing.value)
    with pytest.raises(SelectionError, match="holds 2 manifests; name a tag"):
        layout.find(None)
    # the descriptor carries the ref name annotation
    entries = json.loads(layout.index_path.read_text())["manifests"]
    assert {e["annotations"][REF_NAME] for e in entries} == {"a", "b"}


def test_untagged_layout_with_one_manifest_reads_without_tag(tmp_path: Path) -> None:
    image = make_image(tmp_path / "src")
    LayoutLocation(tmp_path / "lay").write(image, OPTS)
    assert LayoutLocation(tmp_path / "lay").read(OPTS).digest == image.digest


def test_existing_blobs_are_skipped(tmp_path: Path) -> None:
    image = make_image(tmp_path / "src")
    layout = Layout(tmp_path / "lay")
    layout.put(image, "x")
    blob = layout.blob_path(image.layers[0].digest)
    before = blob.stat().st_mtime_ns, blob.stat().st_ino
    assert layout.write_blob(image.layers[0].descriptor, image.layers[0].opener) is False
    assert (blob.stat().st_mtime_ns, blob.stat().st_ino) == before


def test_corrupt_config_is_refused_on_read(tmp_path: Path) -> None:
    image = make_image(tmp_path / "src")
    layout = Layout(tmp_path / "lay")
    layout.put(image, "x")
    path = layout.blob_path(image.config_descriptor.digest)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[5] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError, match=str(image.config_descriptor.digest)):
        layout.read("x")


def test_corrupt_layer_is_caught_when_streamed(tmp_path: Path) -> None:
    image = make_image(tmp_path / "src")
    layout = Layout(tmp_path / "lay")
    layout.put(image, "x")
    path = layout.blob_path(image.layers[0].digest)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    back = layout.read("x")
    assert isinstance(back, Image)
    with pytest.raises(DigestMismatchError, match=str(image.layers[0].digest)):
        _read_all(back)


def test_missing_and_truncated_layer_blobs_are_named(tmp_path: Path) -> None:
    image = make_image(tmp_path / "src")
    layout = Layout(tmp_path / "lay")
    layout.put(image, "x")
    path = layout.blob_path(image.layers[1].digest)
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(SizeMismatchError, match=str(image.layers[1].digest)):
        layout.read("x")
    path.unlink()
    with pytest.raises(NotFoundError, match=str(image.layers[1].digest)):
        layout.read("x")


def test_failed_blob_write_leaves_no_blob_and_no_index_entry(tmp_path: Path) -> None:
    image = make_image(tmp_path / "src")
    layer = image.layers[0]
    bad = Descriptor(layer.media_type, Digest.of_bytes(b"something else"), layer.size)
    layout = Layout(tmp_path / "lay")
    layout.init()
    with pytest.raises(DigestMismatchError):
        layout.write_blob(bad, layer.opener)
    assert not layout.blob_path(bad.digest).exists()
    assert [p.name for p in (tmp_path / "lay" / "blobs" / "sha256").iterdir()] == []
    assert not layout.index_path.exists()


def test_layout_version_and_destination_checks(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "oci-layout").write_text('{"imageLayoutVersion":"0.9"}')
    (tmp_path / "old" / "index.json").write_text('{"schemaVersion":2,"manifests":[]}')
    with pytest.raises(ValidationError, match="imageLayoutVersion"):
        Layout(tmp_path / "old").read(None)
    (tmp_path / "notlayout").mkdir()
    (tmp_path / "notlayout" / "x").write_text("x")
    with pytest.raises(InvalidInputError, match="not an OCI layout"):
        LayoutLocation(tmp_path / "notlayout").check_destination()
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="not a directory"):
        LayoutLocation(tmp_path / "file").check_destination()
    with pytest.raises(InvalidInputError, match="not a valid tag"):
        LayoutLocation(tmp_path / "new", "has space").check_destination()
    with pytest.raises(InvalidInputError, match="does not exist"):
        Layout(tmp_path / "missing").read(None)


def test_put_manifest_and_tags_for_signatures(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "lay")
    payload = b'{"critical":{}}'
    blob = Descriptor(mt.COSIGN_SIMPLESIGNING, Digest.of_bytes(payload), len(payload))
    config = b"{}"
    cdesc = Descriptor(mt.OCI_CONFIG, Digest.of_bytes(config), len(config))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                           "config": cdesc.to_dict(), "layers": [blob.to_dict()]}).encode()
    desc = layout.put_manifest(manifest, mt.OCI_MANIFEST,
                               [(cdesc, lambda: io.BytesIO(config)),
                                (blob, lambda: io.BytesIO(payload))],
                               "sha256-abc.sig")
    assert desc.digest == Digest.of_bytes(manifest)
    assert layout.tags() == ["sha256-abc.sig"]
    assert layout.blob_path(desc.digest).read_bytes() == manifest
    assert layout.read_document(desc) == manifest


def _writer(root: str, tag: str, src: str) -> None:
    image = make_image(Path(src), tag)
    for _ in range(5):
        Layout(root).put(image, tag)


def test_two_processes_writing_one_layout_both_succeed(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path / "lay"), tag, str(tmp_path / tag)))
             for tag in ("left", "right")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    layout = Layout(tmp_path / "lay")
    assert sorted(layout.tags()) == ["left", "right"]
    for tag in ("left", "right"):
        image = layout.read(tag)
        assert isinstance(image, Image)
        _read_all(image)
    leftovers = [p for p in (tmp_path / "lay").rglob("*.tmp")]
    assert leftovers == []


# -- fsutil ---------------------------------------------------------------------


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), atomic_write(target) as handle:
            handle.write(b"half")
            raise exc
        assert target.read_bytes() == b"old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_atomic_write_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="is a directory"), atomic_write(tmp_path):
        pass


def test_file_lock_is_exclusive(tmp_path: Path) -> None:
    import fcntl

    lock = tmp_path / "lock"
    with file_lock(lock):
        fd = os.open(lock, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)


def test_without_a_tag_signatures_do_not_count(tmp_path: Path) -> None:
    image = make_image(tmp_path / "src")
    layout = Layout(tmp_path / "lay")
    layout.put(image, None)
    sig = make_image(tmp_path / "sig", "sig", layers=1)
    layout.put(sig, f"sha256-{image.digest.hex}.sig")
    assert layout.find(None).digest == image.digest
    layout.put(make_image(tmp_path / "other", "other"), "other")
    with pytest.raises(InvalidInputError, match="other"):
        layout.find(None)


def test_writing_a_layout_counts_its_bytes(tmp_path: Path) -> None:
    from ociforge.options import Options
    from ociforge.progress import ProgressEvent
    from ociforge.stores.layoutlocation import LayoutLocation

    image = make_image(tmp_path / "src", "counted")
    seen: list[ProgressEvent] = []
    LayoutLocation(tmp_path / "lay", "t").write(image, Options(on_progress=seen.append))
    total = sum(layer.size for layer in image.layers)
    assert seen[0]["event"] == "start" and seen[-1]["event"] == "end"
    assert seen[-1]["phase"] == "write" and seen[-1]["item"] == f"oci:{tmp_path / 'lay'}:t"
    assert seen[-1]["done"] == seen[-1]["total"] == total and seen[-1]["status"] == "ok"


def test_freshly_built_layers_are_linked_not_copied(tmp_path: Path) -> None:
    from ociforge.layers.build import BuildSettings, LayerSource, build_layer
    from ociforge.model import mutate
    from ociforge.model.platform import Platform
    from ociforge.stores.layout import fresh_blob

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("data\n")
    built = build_layer([LayerSource(tmp_path / "src", "/x")], BuildSettings()).layer
    assert fresh_blob(built) == built.path
    image = mutate.append_layers(mutate.scratch(Platform.parse("linux/amd64")), [built])
    layout = Layout(tmp_path / "lay")
    layout.put(image, "t")
    stored = layout.blob_path(built.digest)
    assert built.path is not None
    if stored.stat().st_dev == built.path.stat().st_dev:
        assert stored.stat().st_ino == built.path.stat().st_ino
    back = layout.read("t")
    assert isinstance(back, Image)
    _read_all(back)
    # a layer read back from a layout is not "fresh": it is verified when copied on
    assert fresh_blob(back.layers[0]) is None


# -- tag names and failed writes -------------------------------------------------------


@pytest.mark.parametrize("tag", ["v1", "1.0.0-rc.1", "_x", "A" * 128,
                                 "sha256-" + "a" * 64, "sha256-" + "a" * 64 + ".sig"])
def test_tags_of_the_distribution_grammar_are_written(tmp_path: Path, tag: str) -> None:
    image = make_image(tmp_path / "src", "one")
    location = LayoutLocation(tmp_path / "lay", tag)
    location.check_destination()
    location.write(image, OPTS)
    assert Layout(tmp_path / "lay").tags() == [tag]


@pytest.mark.parametrize("tag", ["-bad", ".bad", "a b", "A" * 129, "a+b", "é", "v1\n"])
def test_tags_outside_the_grammar_are_refused_before_writing(tmp_path: Path, tag: str) -> None:
    image = make_image(tmp_path / "src", "one")
    with pytest.raises(InvalidInputError, match="not a valid tag"):
        LayoutLocation(tmp_path / "lay", tag).check_destination()
    with pytest.raises(InvalidInputError, match="not a valid tag"):
        LayoutLocation(tmp_path / "lay", tag).write(image, OPTS)
    assert not (tmp_path / "lay").exists()


def test_a_ref_name_with_a_trailing_newline_is_not_an_attachment_or_a_ref_name() -> None:
    from ociforge.stores.refnames import check_ref_name, is_attachment_tag

    assert is_attachment_tag("sha256-" + "a" * 64 + ".sig")
    assert not is_attachment_tag("sha256-" + "a" * 64 + ".sig\n")
    with pytest.raises(InvalidInputError, match="not a valid reference name"):
        check_ref_name("v1\n")


def _corrupt_same_size(image: Image, tmp: Path) -> Image:
    """The image with its last layer's bytes flipped in place (size kept, digest broken)."""
    layout = Layout(tmp)
    layout.put(image, "v1")
    path = layout.blob_path(image.layers[-1].digest)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    read = layout.read("v1")
    assert isinstance(read, Image)
    return read


def test_a_failed_write_into_a_new_layout_leaves_no_folder(tmp_path: Path) -> None:
    corrupt = _corrupt_same_size(make_image(tmp_path / "src", "one"), tmp_path / "corrupt")
    target = tmp_path / "new" / "deeper" / "lay"
    with pytest.raises(DigestMismatchError):
        LayoutLocation(target, "v1").write(corrupt, OPTS)
    assert not (tmp_path / "new").exists()  # the parents it made are gone too


def test_a_failed_write_into_an_existing_layout_keeps_it(tmp_path: Path) -> None:
    good = make_image(tmp_path / "good", "good")
    corrupt = _corrupt_same_size(make_image(tmp_path / "src", "one"), tmp_path / "corrupt")
    LayoutLocation(tmp_path / "lay", "ok").write(good, OPTS)
    with pytest.raises(DigestMismatchError):
        LayoutLocation(tmp_path / "lay", "v1").write(corrupt, OPTS)
    assert Layout(tmp_path / "lay").tags() == ["ok"]
    assert Layout(tmp_path / "lay").read("ok").digest == good.digest


def test_a_layout_in_a_folder_that_cannot_be_written_is_bad_input(unwritable: Path) -> None:
    for target in (unwritable / "lay", unwritable / "new" / "lay"):
        with pytest.raises(InvalidInputError, match="not writable"):
            LayoutLocation(target, "v1").check_destination()
        assert not target.exists()


def test_a_tag_is_written_only_when_every_blob_it_needs_is_present(tmp_path: Path) -> None:
    """set_tag checks each blob under the lock right before index.json is rewritten: a
    layer deleted after the image was written leaves index.json exactly as it was."""
    from ociforge.model import walk

    layout = Layout(tmp_path / "lay")
    image = make_image(tmp_path / "blobs", "guarded", 2)
    layout.put(image, "v1")
    before = layout.index_path.read_bytes()
    gone = image.layers[1].descriptor
    layout.blob_path(gone.digest).unlink()
    with pytest.raises(NotFoundError) as missing:
        layout.set_tag(image.descriptor(), "v2", walk.descriptors(image))
    assert str(gone.digest) in str(missing.value)
    assert "not tagging v2" in str(missing.value)
    assert layout.index_path.read_bytes() == before
    assert layout.tags() == ["v1"]
    # the manifest itself missing: refused the same way, untagged entry included
    layout.blob_path(image.digest).unlink()
    with pytest.raises(NotFoundError, match=f"blob {image.digest} is missing"):
        layout.set_tag(image.descriptor(), None)
    assert layout.index_path.read_bytes() == before
