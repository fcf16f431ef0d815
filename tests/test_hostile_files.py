"""Where ociforge reads a file the user named, only a regular file is read.

A FIFO there would block the run for ever (nothing ever writes to it), a device
such as /dev/zero would be read without end, and a folder is a mistake: each is
refused at once (exit 2, one line naming the file) and never opened for
reading.  Every test has a hang guard (pytest-timeout): before the fix the FIFO
cases blocked in open() until it fired.
"""

from __future__ import annotations

import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
from tools import require_root

from ociforge.errors import InvalidInputError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello"
HANG_GUARD = pytest.mark.timeout(60)


def _special(kind: str, path: Path) -> Path:
    """Make ``path`` a FIFO, a link to a character device (/dev/zero, /dev/null), a
    device node of its own (the same devices, made with mknod), or a folder."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "null":
        path.symlink_to("/dev/null")
    elif kind in ("zero-node", "null-node"):
        require_root("a character device node is made with mknod")
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5 if kind == "zero-node" else 3))
    else:
        path.mkdir()
    return path


KINDS = {"fifo": "FIFO", "device": "character device", "null": "character device",
         "zero-node": "character device", "null-node": "character device",
         "folder": "directory"}


def _refused(cli, args: list, needle: str, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = cli(*args)
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert needle in err, err
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing is written"
    return err


@HANG_GUARD
@pytest.mark.parametrize("kind", ["fifo", "zero-node", "null-node", "folder"])
def test_env_file_that_is_not_a_file(cli, app: Path, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    (app / "runtime.env").unlink()
    _special(kind, app / "runtime.env")
    err = _refused(cli, ["export", app, "-o", tmp_path / "out.tar"], KINDS[kind], tmp_path)
    assert "env_file 'runtime.env'" in err


@HANG_GUARD
@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_ociforge_toml_that_is_not_a_file(cli, app: Path, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    (app / "ociforge.toml").unlink()
    _special(kind, app / "ociforge.toml")
    err = _refused(cli, ["export", app, "-o", tmp_path / "out.tar"], KINDS[kind], tmp_path)
    assert "ociforge.toml" in err


@HANG_GUARD
@pytest.mark.parametrize("kind", ["fifo", "device", "null", "zero-node", "folder"])
def test_verify_report_that_is_not_a_file(cli, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("append", "scratch", "-o", f"oci:{tmp_path / 'lay'}:v1")
    assert code == 0, err
    report = _special(kind, tmp_path / "report.json")
    err = _refused(cli, ["verify", f"oci:{tmp_path / 'lay'}:v1", "--report", report],
                   KINDS[kind], tmp_path)
    assert "--report" in err and str(report) in err


@HANG_GUARD
def test_verify_report_naming_a_device_directly(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("append", "scratch", "-o", f"oci:{tmp_path / 'lay'}:v1")
    assert code == 0, err
    for device in ("/dev/null", "/dev/zero"):
        err = _refused(cli, ["verify", f"oci:{tmp_path / 'lay'}:v1", "--report", device],
                       "character device", tmp_path)
        assert device in err


@HANG_GUARD
@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_signing_key_that_is_not_a_file(cli, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    key = _special(kind, tmp_path / "cosign.key")
    err = _refused(cli, ["export", EXAMPLE, "-o", f"oci:{tmp_path / 'lay'}", "--sign", key],
                   KINDS[kind], tmp_path)
    assert "private key" in err


@HANG_GUARD
@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_public_key_that_is_not_a_file(cli, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    key = _special(kind, tmp_path / "cosign.pub")
    code, _, err = cli("append", "scratch", "-o", f"oci:{tmp_path / 'lay'}:v1")
    assert code == 0, err
    code, _, err = cli("verify-signature", f"oci:{tmp_path / 'lay'}:v1", "--key", key)
    assert code == 2 and KINDS[kind] in err and "public key" in err, err


@HANG_GUARD
@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_ca_certificate_that_is_not_a_file(cli, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    ca = _special(kind, tmp_path / "ca.pem")
    err = _refused(cli, ["append", "scratch", "-o", f"oci:{tmp_path / 'lay'}", "--ca-cert", ca],
                   KINDS[kind], tmp_path)
    assert "CA certificate file" in err


@HANG_GUARD
@pytest.mark.parametrize("scheme", ["oci-archive", "docker-archive"])
@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_archive_source_that_is_not_a_file(cli, tmp_path: Path, kind: str,  # type: ignore[no-untyped-def]
                                           scheme: str) -> None:
    source = _special(kind, tmp_path / "in.tar")
    err = _refused(cli, ["copy", f"{scheme}:{source}", f"oci:{tmp_path / 'lay'}"],
                   KINDS[kind], tmp_path)
    assert str(source) in err


@HANG_GUARD
@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_layer_tar_that_is_not_a_file(tmp_path: Path, kind: str) -> None:
    from ociforge.layers.build import BuildSettings, layer_from_tar
    from ociforge.layers.workspace import blob_dir

    source = _special(kind, tmp_path / "layer.tar")
    before = set(os.listdir(blob_dir()))
    with pytest.raises(InvalidInputError, match=KINDS[kind]):
        layer_from_tar(source, BuildSettings())
    assert set(os.listdir(blob_dir())) == before, "no blob is left behind"


@HANG_GUARD
@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_credentials_file_that_is_not_a_file(tmp_path: Path, monkeypatch, kind: str) -> None:  # type: ignore[no-untyped-def]
    from ociforge.remote import credentials

    _special(kind, tmp_path / "config.json")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    with pytest.raises(InvalidInputError, match=KINDS[kind]):
        credentials.lookup("reg.test:5000")


@HANG_GUARD
def test_a_file_swapped_for_a_fifo_after_the_check_is_refused_not_read(
        tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The kind is checked again on the open descriptor: a swap between the first
    look and the open cannot make ociforge block on a FIFO."""
    from ociforge import fsutil

    path = tmp_path / "key.pem"
    path.write_bytes(b"x")
    real_open = os.open

    def swap_then_open(target, flags, *args):  # type: ignore[no-untyped-def]
        if str(target) == str(path):
            path.unlink()
            os.mkfifo(path)
        return real_open(target, flags, *args)

    monkeypatch.setattr(fsutil.os, "open", swap_then_open)
    with pytest.raises(InvalidInputError, match="FIFO"):
        fsutil.read_regular(path, "private key")


def test_a_regular_file_through_a_symlink_is_read(tmp_path: Path) -> None:
    from ociforge.fsutil import read_regular

    (tmp_path / "real.pem").write_bytes(b"pem")
    (tmp_path / "link.pem").symlink_to("real.pem")
    assert read_regular(tmp_path / "link.pem", "key") == b"pem"
    with pytest.raises(InvalidInputError, match="larger than 2 bytes"):
        read_regular(tmp_path / "link.pem", "key", limit=2)


def _layout_with_a_folder_blob(cli, tmp_path: Path, name: str) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    layout = tmp_path / name
    code, _, err = cli("append", "scratch", "-o", f"oci:{layout}:v1")
    assert code == 0, err
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    blob = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    blob.unlink()
    blob.mkdir()
    return layout, digest


def test_a_blob_that_is_a_folder_in_a_source_layout(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    layout, digest = _layout_with_a_folder_blob(cli, tmp_path, "src")
    code, _, err = cli("copy", f"oci:{layout}:v1", f"oci:{tmp_path / 'dest'}")
    assert code == 2 and digest in err and "not a regular file" in err, err
    assert err.count("\n") == 1 and not (tmp_path / "dest").exists()


def test_a_blob_that_is_a_folder_in_a_destination_layout(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    layout, digest = _layout_with_a_folder_blob(cli, tmp_path, "dest")
    code, _, err = cli("append", "scratch", "-o", f"oci:{layout}:v2")
    assert code == 2 and digest.split(":", 1)[1] in err and "not a regular file" in err, err


def test_a_blob_that_is_a_folder_in_an_archive(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    layout, digest = _layout_with_a_folder_blob(cli, tmp_path, "lay")
    archive = tmp_path / "image.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(layout, arcname=".")
    code, _, err = cli("copy", f"oci-archive:{archive}:v1", f"oci:{tmp_path / 'out'}")
    assert code == 2 and f"blobs/sha256/{digest.split(':', 1)[1]}" in err, err
    assert "is a folder" in err and not (tmp_path / "out").exists()
