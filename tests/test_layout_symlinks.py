"""A layout is a closed world: nothing inside it (oci-layout, index.json, blobs/,
blobs/sha256/, a blob, the lock file) is followed through a symlink, on read or
on write.  The root itself may be a link the user named."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from image_factory import make_image
from progresslines import messages

from ociforge.errors import HostileInputError
from ociforge.options import Options
from ociforge.stores.layout import LOCK_NAME, Layout
from ociforge.stores.layoutlocation import LayoutLocation

SECRET = "TOPSECRETVALUE"
TRICKS = ["blobs", "blobs-sha256", "blob", "index.json", "oci-layout"]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (b"<dir>" if p.is_dir() else p.read_bytes())
            for p in sorted(folder.rglob("*"))}


def _layer_blob(layout: Path) -> Path:
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" /
                           index["manifests"][0]["digest"].split(":")[1]).read_text())
    return layout / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]


def _plant(trick: str, layout: Path, outside: Path) -> None:
    """Move one part of ``layout`` to ``outside`` and leave a symlink in its place."""
    outside.mkdir()
    if trick == "blobs":
        (layout / "blobs").rename(outside / "blobs")
        (layout / "blobs").symlink_to(outside / "blobs")
    elif trick == "blobs-sha256":
        (layout / "blobs" / "sha256").rename(outside / "sha256")
        (layout / "blobs" / "sha256").symlink_to(outside / "sha256")
    elif trick == "blob":  # a copy of the right size and bytes, so stat() alone says "present"
        blob = _layer_blob(layout)
        (outside / blob.name).write_bytes(blob.read_bytes())
        blob.unlink()
        blob.symlink_to(outside / blob.name)
    elif trick == "index.json":
        doc = json.loads((layout / "index.json").read_text())
        doc["manifests"][0]["digest"] = f"sha256:{SECRET}"
        (outside / "index.json").write_text(json.dumps(doc))
        (layout / "index.json").unlink()
        (layout / "index.json").symlink_to(outside / "index.json")
    elif trick == "oci-layout":
        (outside / "oci-layout").write_text(json.dumps({"imageLayoutVersion": SECRET}))
        (layout / "oci-layout").unlink()
        (layout / "oci-layout").symlink_to(outside / "oci-layout")
    else:
        raise AssertionError(trick)


def _one_line_exit_2(code: int, stdout: str, err: str) -> None:
    assert code == 2, (code, err)
    assert "Traceback" not in err
    assert len(messages(err)) == 1, err
    assert SECRET not in err and SECRET not in stdout


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path]:
    """A layout ociforge wrote (tag v1), and a second image to write into it (tag t)."""
    lay = tmp_path / "lay"
    LayoutLocation(lay, "v1").write(make_image(tmp_path / "one"), Options())
    src = tmp_path / "src"
    LayoutLocation(src, "t").write(make_image(tmp_path / "two", name="two"), Options())
    return lay, src


@pytest.mark.parametrize("trick", TRICKS)
def test_reading_a_layout_with_a_planted_symlink_is_refused(
        trick: str, built: tuple[Path, Path], tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    lay, _ = built
    outside = tmp_path / "outside"
    _plant(trick, lay, outside)
    for argv in (("inspect", f"oci:{lay}:v1"), ("copy", f"oci:{lay}:v1", f"oci:{tmp_path}/out:t")):
        code, stdout, err = cli(*argv)
        _one_line_exit_2(code, stdout, err)
        assert "symlink" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("trick", TRICKS)
def test_writing_into_a_layout_with_a_planted_symlink_is_refused(
        trick: str, built: tuple[Path, Path], tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    lay, src = built
    orig = tmp_path / "orig"
    shutil.copytree(lay, orig)
    outside = tmp_path / "outside"
    _plant(trick, lay, outside)
    before_outside, before_layout = _snapshot(outside), _snapshot(lay)
    # the same image under a new tag (its blobs look "present"), then one with new blobs
    writes = [("copy", f"oci:{orig}:v1", f"oci:{lay}:v2")]
    if trick != "blob":  # the planted blob is the v1 image's; another image never meets it
        writes.append(("copy", f"oci:{src}:t", f"oci:{lay}:v3"))
    for argv in writes:
        code, stdout, err = cli(*argv)
        _one_line_exit_2(code, stdout, err)
        assert "symlink" in err, err
    assert _snapshot(outside) == before_outside
    assert _snapshot(lay) == before_layout


def test_a_planted_blob_symlink_of_the_right_size_is_not_present(
        built: tuple[Path, Path], tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    lay, _ = built
    image = LayoutLocation(lay, "v1").read(Options())
    _plant("blob", lay, tmp_path / "outside")
    before = _snapshot(tmp_path / "outside")
    layout = Layout(lay)
    with pytest.raises(HostileInputError, match="symlink"):
        layout.has_blob(image.layers[0].descriptor)  # type: ignore[union-attr]
    with pytest.raises(HostileInputError, match="symlink"):
        layout.put(image, "again")
    assert _snapshot(tmp_path / "outside") == before
    assert "again" not in (lay / "index.json").read_text()


@pytest.mark.parametrize("trick", ["blobs", "blobs-sha256", "lock"])
def test_init_and_set_tag_refuse_links_before_writing(
        trick: str, built: tuple[Path, Path], tmp_path: Path) -> None:
    lay, _ = built
    outside = tmp_path / "outside"
    if trick == "lock":
        outside.mkdir()
        (lay / LOCK_NAME).unlink(missing_ok=True)
        (lay / LOCK_NAME).symlink_to(outside / "lockfile")
    else:
        _plant(trick, lay, outside)
    layout = Layout(lay)
    desc = layout.find("v1")
    index_before = (lay / "index.json").read_bytes()
    with pytest.raises(HostileInputError, match="symlink"):
        layout.init()
    with pytest.raises(HostileInputError, match="symlink"):
        layout.set_tag(desc, "v9")
    if trick != "lock":  # writing a blob takes no lock
        with pytest.raises(HostileInputError, match="symlink"):
            layout.write_bytes_blob(b"{}", "application/json")
    assert (lay / "index.json").read_bytes() == index_before
    assert not (outside / "lockfile").exists()
    assert not any(p.name.endswith(".tmp") for p in outside.rglob("*"))


def test_a_fifo_index_json_is_refused_without_hanging(
        built: tuple[Path, Path], cli) -> None:  # type: ignore[no-untyped-def]
    lay, _ = built
    (lay / "index.json").unlink()
    os.mkfifo(lay / "index.json")
    code, stdout, err = cli("inspect", f"oci:{lay}:v1")
    _one_line_exit_2(code, stdout, err)
    assert "regular file" in err, err


def test_the_root_may_be_a_symlink_the_user_named(
        built: tuple[Path, Path], tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    lay, src = built
    link = tmp_path / "link"
    link.symlink_to(lay)
    code, _, err = cli("copy", f"oci:{src}:t", f"oci:{link}:v2")
    assert code == 0, err
    code, out, err = cli("inspect", f"oci:{link}:v2")
    assert code == 0 and out.strip(), err
    assert set(Layout(lay).tags()) == {"v1", "v2"}
    assert link.is_symlink()
