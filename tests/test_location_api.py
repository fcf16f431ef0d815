"""The Location interface: what every location answers, so callers never probe or re-parse."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from image_factory import make_image, make_index

from ociforge.errors import InvalidInputError, NotFoundError
from ociforge.model.mediatypes import OCI_LAYER_ZSTD
from ociforge.model.reference import Reference
from ociforge.options import Options
from ociforge.stores.archive import DockerArchiveLocation, OciArchiveLocation
from ociforge.stores.artifactstore import LayoutStore, RegistryStore, open_store
from ociforge.stores.layout import Layout
from ociforge.stores.layoutlocation import LayoutLocation
from ociforge.stores.locations import Location, Scratch, parse_destination, parse_location
from ociforge.stores.registry import RegistryLocation
from ociforge.stores.store import ArtifactStore, BlobStore
from ociforge.stores.tarblobs import TarBlobs

OPTS = Options()


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(("text", "kind", "has_path", "attachable"), [
    ("scratch", "scratch", False, False),
    ("oci:{t}/lay:v1", "oci", True, True),
    ("oci-archive:{t}/a.tar", "oci-archive", True, False),
    ("docker-archive:{t}/d.tar:me/app:1", "docker-archive", True, False),
    ("{t}/bare.tar", "docker-archive", True, False),
    ("127.0.0.1:5000/team/app:1", "registry", False, True),
])
def test_every_location_answers_the_same_questions(text: str, kind: str, has_path: bool,
                                                   attachable: bool, tmp_path: Path) -> None:
    location = parse_location(text.replace("{t}", str(tmp_path)))
    assert isinstance(location, Location)
    assert location.kind == kind
    assert (location.path is not None) == has_path
    assert (location.reference is not None) == (kind == "registry")
    assert location.supports_attachments == attachable
    assert str(parse_location(str(location))) == str(location)  # reads back as itself


def test_check_destination_writes_nothing(tmp_path: Path) -> None:
    before = _snapshot(tmp_path)
    for text in (f"oci:{tmp_path}/new/deeper/lay:v1", f"oci-archive:{tmp_path}/a.tar",
                 f"{tmp_path}/d.tar", "127.0.0.1:5000/team/app:1"):
        parse_destination(text, "me/app:1")
    assert _snapshot(tmp_path) == before


def test_check_destination_refuses_what_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "stranger").mkdir()
    (tmp_path / "stranger" / "notes.txt").write_text("x")
    for location, message in [
        (Scratch(), "can only be a source"),
        (LayoutLocation(tmp_path / "lay", "has space"), "not a valid tag"),
        (LayoutLocation(tmp_path / "file"), "not a directory"),
        (LayoutLocation(tmp_path / "stranger"), "not an OCI layout"),
        (OciArchiveLocation(tmp_path / "file" / "a.tar"), "is not a directory"),
        (DockerArchiveLocation(tmp_path / "d.tar", "@1"), "@N selects an image"),
        (parse_location("x.zip", base_dir=tmp_path), "not an archive name"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            location.check_destination()


def test_defaults_name_only_what_names_nothing(tmp_path: Path) -> None:
    lay = LayoutLocation(tmp_path / "lay").with_default_name("me/app:2")
    assert str(lay) == f"oci:{tmp_path}/lay:2"
    assert LayoutLocation(tmp_path / "lay", "1").with_default_name("me/app:2").tag == "1"
    docker = DockerArchiveLocation(tmp_path / "d.tar").with_default_name("me/app:2")
    assert docker.image_name().repo_tag == "me/app:2"  # type: ignore[attr-defined]
    registry = RegistryLocation(Reference.parse("127.0.0.1:5000/a:1"))
    assert registry.with_default_name("me/app:2") is registry


def test_only_docker_archives_refuse_zstd_and_indexes(tmp_path: Path) -> None:
    index = make_index(tmp_path / "idx")
    zstd = make_image(tmp_path / "z", compression="zstd")
    assert zstd.layers[0].media_type == OCI_LAYER_ZSTD
    docker = DockerArchiveLocation(tmp_path / "d.tar")
    with pytest.raises(InvalidInputError, match="zstd"):
        docker.check_compression("zstd")
    with pytest.raises(InvalidInputError, match="zstd"):
        docker.check_artifact(zstd)
    with pytest.raises(InvalidInputError, match="single-platform"):
        docker.check_artifact(index)
    for other in (LayoutLocation(tmp_path / "lay"), OciArchiveLocation(tmp_path / "o.tar")):
        other.check_compression("zstd")
        other.check_artifact(zstd)
        other.check_artifact(index)


def test_sources_must_exist(tmp_path: Path) -> None:
    for location in (LayoutLocation(tmp_path / "none"), OciArchiveLocation(tmp_path / "x.tar")):
        with pytest.raises(InvalidInputError, match="does not exist"):
            location.check_source()
    Scratch().check_source()
    RegistryLocation(Reference.parse("127.0.0.1:5000/a:1")).check_source()


def test_artifact_stores_come_from_the_location(tmp_path: Path) -> None:
    assert isinstance(LayoutLocation(tmp_path / "lay").artifact_store(), LayoutStore)
    registry = RegistryLocation(Reference.parse("127.0.0.1:5000/a:1"))
    assert isinstance(registry.artifact_store(OPTS), RegistryStore)
    assert isinstance(open_store(f"oci:{tmp_path}/lay"), LayoutStore)
    for location in (OciArchiveLocation(tmp_path / "a.tar"), Scratch(),
                     DockerArchiveLocation(tmp_path / "d.tar")):
        with pytest.raises(InvalidInputError, match="not in a tar archive"):
            location.artifact_store()


def test_one_store_abstraction_reads_layouts_and_archives_alike(tmp_path: Path) -> None:
    image = make_image(tmp_path / "src")
    LayoutLocation(tmp_path / "lay", "v1").write(image, OPTS)
    OciArchiveLocation(tmp_path / "a.tar", "v1").write(image, OPTS)
    layout = Layout(tmp_path / "lay")
    archive = TarBlobs(tmp_path / "a.tar")
    store = LayoutLocation(tmp_path / "lay", "v1").artifact_store()
    for found in (layout, archive, store):
        assert isinstance(found, BlobStore)
        assert found.load(image.descriptor()).digest == image.digest
        config = image.config_descriptor
        assert found.read_blob(config, 1 << 20) == image.config_bytes
        with pytest.raises(InvalidInputError, match="over the"):
            found.read_blob(config, config.size - 1)
    assert isinstance(store, ArtifactStore)


def test_documents_only_and_the_named_digest_survive_a_missing_layer(tmp_path: Path) -> None:
    image = make_image(tmp_path / "src")
    location = LayoutLocation(tmp_path / "lay", "v1")
    location.write(image, OPTS)
    os.unlink(Layout(tmp_path / "lay").blob_path(image.layers[0].digest))
    assert location.read_documents(OPTS).digest == image.digest
    assert location.named_digest() == image.digest
    assert LayoutLocation(tmp_path / "lay", "nope").named_digest() is None
    with pytest.raises(NotFoundError, match="missing"):
        location.read(OPTS)


def test_a_run_shares_its_registry_client_and_two_runs_share_nothing() -> None:
    """Connections and tokens belong to the run (Options.session), not to the process:
    options derived with replace() share the client, a new Options() gets its own."""
    from dataclasses import replace

    from ociforge.stores.registry import client_for

    options = Options()
    client = client_for("127.0.0.1:5000", options)
    assert client_for("127.0.0.1:5000", replace(options, all_platforms=True)) is client
    assert client_for("127.0.0.1:5001", options) is not client
    assert client_for("127.0.0.1:5000", Options()) is not client
    assert replace(options, all_platforms=True).session is options.session
