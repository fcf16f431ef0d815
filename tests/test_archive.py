"""OCI and docker archives: round trips, the hybrid layout, classic docker save, hostile tars."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from image_factory import make_image, make_index, tar_bytes

from ociforge.errors import (
    DigestMismatchError,
    HostileInputError,
    InvalidInputError,
    InvalidReferenceError,
    NotFoundError,
    OciforgeError,
)
from ociforge.model.image import Image
from ociforge.model.index import Index
from ociforge.options import Options
from ociforge.stores import archive, tarblobs
from ociforge.stores.archive import DockerArchiveLocation, ImageName, OciArchiveLocation, TarBlobs
from ociforge.stores.locations import parse_location

OPTS = Options()


def _drain(image: Image) -> None:
    for layer in image.layers:
        with layer.open() as reader:
            while reader.read(65536):
                pass


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
                for m in tar.getmembers()}


@pytest.mark.parametrize("where", [
    "oci-archive:{d}/a.tar", "oci-archive:{d}/a.tar:v1", "docker-archive:{d}/b.tar",
    "docker-archive:{d}/b.tar:me/app:2", "{d}/bare.tar", "{d}/bare.tar.gz",
])
def test_round_trip_keeps_digests(tmp_path: Path, where: str) -> None:
    image = make_image(tmp_path / "src")
    location = parse_location(where.format(d=tmp_path))
    assert location.write(image, OPTS).digest == str(image.digest)
    back = location.read(OPTS)
    assert isinstance(back, Image)
    assert back.manifest_bytes == image.manifest_bytes
    assert back.config_bytes == image.config_bytes
    _drain(back)


def test_oci_archive_holds_an_index(tmp_path: Path) -> None:
    index = make_index(tmp_path / "src")
    loc = OciArchiveLocation(tmp_path / "i.tar", "multi")
    loc.write(index, OPTS)
    back = loc.read(OPTS)
    assert isinstance(back, Index) and back.index_bytes == index.index_bytes
    with pytest.raises(InvalidInputError, match="single-platform"):
        DockerArchiveLocation(tmp_path / "d.tar").write(index, OPTS)
    assert not (tmp_path / "d.tar").exists()


def test_docker_archive_is_both_oci_layout_and_classic(tmp_path: Path) -> None:
    image = make_image(tmp_path / "src")
    path = tmp_path / "app.tar"
    DockerArchiveLocation(path, "app:1.0").write(image, OPTS)
    members = _members(path)
    assert list(members) == sorted(members)
    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(members["index.json"])
    (entry,) = index["manifests"]
    assert entry["digest"] == str(image.digest)
    assert entry["annotations"] == {"io.containerd.image.name": "docker.io/library/app:1.0",
                                    "org.opencontainers.image.ref.name": "1.0"}
    (classic,) = json.loads(members["manifest.json"])
    assert classic["RepoTags"] == ["app:1.0"]
    assert classic["Config"] == f"blobs/sha256/{image.config_descriptor.digest.hex}"
    assert classic["Layers"] == [f"blobs/sha256/{layer.digest.hex}" for layer in image.layers]
    top = image.diff_ids[-1].split(":")[1]
    assert json.loads(members["repositories"]) == {"app": {"1.0": top}}
    with tarfile.open(path) as tar:
        for info in tar.getmembers():
            assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
            assert info.mode == (0o755 if info.isdir() else 0o644)


def test_default_name_comes_from_the_file_or_the_tag(tmp_path: Path) -> None:
    image = make_image(tmp_path / "src")
    DockerArchiveLocation(tmp_path / "My App.tar").write(image, OPTS)
    (classic,) = json.loads(_members(tmp_path / "My App.tar")["manifest.json"])
    assert classic["RepoTags"] == ["my-app:latest"]
    named = DockerArchiveLocation(tmp_path / "x.tar").with_default_name("ghcr.io/me/tool:3")
    named.write(image, OPTS)
    members = _members(tmp_path / "x.tar")
    assert json.loads(members["manifest.json"])[0]["RepoTags"] == ["ghcr.io/me/tool:3"]
    notes = json.loads(members["index.json"])["manifests"][0]["annotations"]
    assert notes["io.containerd.image.name"] == "ghcr.io/me/tool:3"


@pytest.mark.parametrize("text,full,repo_tag", [
    ("app", "docker.io/library/app:latest", "app:latest"),
    ("user/app:1", "docker.io/user/app:1", "user/app:1"),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t"),
])
def test_image_names(text: str, full: str, repo_tag: str) -> None:
    name = ImageName.parse(text)
    assert (name.full, name.repo_tag) == (full, repo_tag)


def test_image_name_refuses_digests() -> None:
    with pytest.raises(InvalidReferenceError):
        ImageName.parse("app@sha256:" + "a" * 64)


def test_archives_are_deterministic(tmp_path: Path) -> None:
    outputs = []
    for run in ("one", "two"):
        image = make_image(tmp_path / run)
        for name in ("o.tar", "d.tar", "d.tar.gz"):
            loc = (OciArchiveLocation if name == "o.tar" else DockerArchiveLocation)(
                tmp_path / run / name)
            loc.write(image, OPTS)
        outputs.append([(tmp_path / run / n).read_bytes() for n in ("o.tar", "d.tar", "d.tar.gz")])
    assert outputs[0] == outputs[1]


def test_zstd_layers_are_refused_for_docker_archives(tmp_path: Path) -> None:
    image = make_image(tmp_path / "src", compression="zstd")
    with pytest.raises(InvalidInputError, match="zstd"):
        DockerArchiveLocation(tmp_path / "z.tar").write(image, OPTS)
    assert not (tmp_path / "z.tar").exists()
    OciArchiveLocation(tmp_path / "z.tar").write(image, OPTS)
    back = OciArchiveLocation(tmp_path / "z.tar").read(OPTS)
    assert isinstance(back, Image)
    _drain(back)


def test_corrupt_blob_aborts_the_write_and_leaves_nothing(tmp_path: Path) -> None:
    image = make_image(tmp_path / "src")
    path = image.layers[0].path
    assert path is not None
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError):
        DockerArchiveLocation(tmp_path / "out.tar").write(image, OPTS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


# -- classic docker save ------------------------------------------------------------


def _classic_save(path: Path, compress: bool = False) -> tuple[list[str], bytes]:
    """A docker save (Docker <= 24) archive: <id>.json, <v1id>/layer.tar, a linked duplicate."""
    layers = [tar_bytes({"a.txt": b"first\n"}), tar_bytes({"b.txt": b"second\n"})]
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    diff_ids.append(diff_ids[0])  # the same layer twice: docker save symlinks it
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Env": ["A=1"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "x"}, {"created_by": "y"}, {"created_by": "z"}],
    }).encode()
    config_id = hashlib.sha256(config).hexdigest()
    manifest = [{"Config": f"{config_id}.json", "RepoTags": ["legacy:1"],
                 "Layers": ["aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"]}]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add(f"{config_id}.json", config)
        add("aaa/layer.tar", layers[0])
        add("bbb/layer.tar", layers[1])
        link = tarfile.TarInfo("ccc/layer.tar")
        link.type = tarfile.SYMTYPE
        link.linkname = "../aaa/layer.tar"
        tar.addfile(link)
        add("manifest.json", json.dumps(manifest).encode())
        add("repositories", b'{"legacy":{"1":"ccc"}}')
    data = buf.getvalue()
    path.write_bytes(gzip.compress(data) if compress else data)
    return diff_ids, config


@pytest.mark.parametrize("compress", [False, True])
def test_reads_classic_docker_save(tmp_path: Path, compress: bool) -> None:
    diff_ids, config = _classic_save(tmp_path / "legacy.tar", compress)
    image = DockerArchiveLocation(tmp_path / "legacy.tar").read(OPTS)
    assert isinstance(image, Image)
    assert image.is_docker
    assert image.config_bytes == config
    assert [str(layer.digest) for layer in image.layers] == diff_ids
    assert [str(layer.diff_id) for layer in image.layers] == diff_ids
    _drain(image)
    named = DockerArchiveLocation(tmp_path / "legacy.tar", "legacy:1").read(OPTS)
    assert named.digest == image.digest
    assert DockerArchiveLocation(tmp_path / "legacy.tar", "@0").read(OPTS).digest == image.digest
    with pytest.raises(NotFoundError, match="no image named"):
        DockerArchiveLocation(tmp_path / "legacy.tar", "other:1").read(OPTS)
    # and it converts into our own formats with the same digest
    OciArchiveLocation(tmp_path / "o.tar").write(image, OPTS)
    assert OciArchiveLocation(tmp_path / "o.tar").read(OPTS).digest == image.digest


def test_named_selection_in_a_hybrid_archive(tmp_path: Path) -> None:
    image = make_image(tmp_path / "src")
    DockerArchiveLocation(tmp_path / "h.tar", "app:7").write(image, OPTS)
    assert DockerArchiveLocation(tmp_path / "h.tar", "app:7").read(OPTS).digest == image.digest
    assert DockerArchiveLocation(tmp_path / "h.tar", "docker.io/library/app:7").read(
        OPTS).digest == image.digest


# -- hostile archives -----------------------------------------------------------------


def _tar_with(tmp_path: Path, entries: list[tarfile.TarInfo]) -> Path:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        for info in entries:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize("entries,match", [
    ([_info("../escape")], "climbs out"),
    ([_info("a/../../escape")], "climbs out"),
    ([_info("/etc/passwd")], "absolute"),
    ([_info("late", tarfile.LNKTYPE, "nothere")], "not an earlier entry"),
])
def test_hostile_entry_names_are_refused(tmp_path: Path, entries: list[tarfile.TarInfo],
                                         match: str) -> None:
    path = _tar_with(tmp_path, entries)
    with pytest.raises(HostileInputError, match=match):
        DockerArchiveLocation(path).read(OPTS)


def test_too_many_members_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tarblobs, "MAX_MEMBERS", 10)
    path = _tar_with(tmp_path, [_info(f"f{i}") for i in range(11)])
    with pytest.raises(HostileInputError, match="entries"):
        TarBlobs(path)


def test_gzip_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tarblobs, "EXPANSION_SLACK", 0)
    monkeypatch.setattr(tarblobs, "MAX_EXPANSION", 5)
    path = tmp_path / "bomb.tar.gz"
    path.write_bytes(gzip.compress(b"\0" * (4 << 20)))
    with pytest.raises(HostileInputError, match="expands"):
        TarBlobs(path)


def test_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "junk.tar").write_bytes(b"this is not a tar file at all" * 40)
    with pytest.raises(InvalidInputError):
        DockerArchiveLocation(tmp_path / "junk.tar").read(OPTS)
    with pytest.raises(InvalidInputError, match="does not exist"):
        DockerArchiveLocation(tmp_path / "missing.tar").read(OPTS)
    _tar_with(tmp_path, [_info("hello")])
    with pytest.raises(InvalidInputError, match="neither an OCI layout"):
        DockerArchiveLocation(tmp_path / "evil.tar").read(OPTS)


def test_archive_destination_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "out.tar").mkdir()
    with pytest.raises(InvalidInputError, match="is a directory"):
        DockerArchiveLocation(tmp_path / "out.tar").check_destination()
    with pytest.raises(InvalidInputError, match="is a directory"):
        OciArchiveLocation(tmp_path / "out.tar").check_destination()


def test_rewriting_the_archive_being_read(tmp_path: Path) -> None:
    """Layers read from an archive stay valid after the same path is rewritten."""
    image = make_image(tmp_path / "src")
    path = tmp_path / "same.tar"
    DockerArchiveLocation(path, "a:1").write(image, OPTS)
    back = DockerArchiveLocation(path).read(OPTS)
    other = make_image(tmp_path / "other", "other", layers=3)
    DockerArchiveLocation(path, "b:1").write(other, OPTS)
    assert isinstance(back, Image)
    _drain(back)  # still the old file's bytes (the descriptor is held open)


# -- every offline source x every offline sink -------------------------------------------

SINKS = ["oci:{d}/{n}-lay:t", "oci-archive:{d}/{n}-o.tar:t", "docker-archive:{d}/{n}-d.tar:a:1",
         "{d}/{n}-bare.tar.gz"]


@pytest.mark.parametrize("first", SINKS)
@pytest.mark.parametrize("second", SINKS)
def test_every_source_to_every_sink_keeps_digests(tmp_path: Path, first: str,
                                                  second: str) -> None:
    image = make_image(tmp_path / "src")
    source = parse_location(first.format(d=tmp_path, n="a"))
    source.write(image, OPTS)
    loaded = source.read(OPTS)
    sink = parse_location(second.format(d=tmp_path, n="b"))
    assert sink.write(loaded, OPTS).digest == str(image.digest)
    final = sink.read(OPTS)
    assert isinstance(final, Image)
    assert (final.manifest_bytes, final.config_bytes) == (image.manifest_bytes, image.config_bytes)
    _drain(final)


def test_entry_claiming_more_than_the_archive_holds(tmp_path: Path) -> None:
    path = tmp_path / "short.tar"
    info = tarfile.TarInfo("oci-layout")
    info.size = 10 << 30  # 10 GiB claimed, a few bytes present
    header = info.tobuf(tarfile.PAX_FORMAT)
    path.write_bytes(header + b"x" * 512 + b"\0" * 1024)
    with pytest.raises(HostileInputError, match="past the end"):
        TarBlobs(path)


# -- property: no input makes the archive reader raise anything but ociforge's errors ----

_SEED_TAR = tar_bytes({"oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
                       "index.json": b'{"schemaVersion":2,"manifests":[]}',
                       "manifest.json": b"[]"})


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, len(_SEED_TAR) - 1), st.integers(0, 255)),
                      max_size=12),
       cut=st.integers(0, len(_SEED_TAR)), compress=st.booleans())
def test_reader_raises_only_ociforge_errors(tmp_path_factory: pytest.TempPathFactory,
                                            edits: list[tuple[int, int]], cut: int,
                                            compress: bool) -> None:
    data = bytearray(_SEED_TAR)
    for offset, value in edits:
        data[offset] = value
    blob = bytes(data[:cut] if cut else data)
    path = tmp_path_factory.mktemp("fuzz") / "a.tar"
    path.write_bytes(gzip.compress(blob) if compress else blob)
    for selector, docker in ((None, True), (None, False), ("@0", True)):
        with contextlib.suppress(OciforgeError):
            archive.read_archive(str(path), selector, docker)
