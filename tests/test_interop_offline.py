"""Our offline outputs read by tools nobody here wrote: oci-image-tool, skopeo, umoci, podman.

Outside CI a missing tool skips its test; in CI (CI=true) it fails (tests/tools.py).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
from image_factory import make_index
from tools import require_root, require_tool, run

from ociforge.model.image import Image
from ociforge.stores.layout import Layout

AMD64 = ("--platform", "linux/amd64")


def _source_tree(root: Path) -> Path:
    """Contents, modes, a symlink (relative and absolute), a hardlink and an empty dir."""
    (root / "bin").mkdir(parents=True)
    (root / "etc" / "app").mkdir(parents=True)
    (root / "empty" / "nested").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\necho tool\n")
    (root / "bin" / "tool").chmod(0o755)
    (root / "etc" / "app" / "conf.ini").write_text("[a]\nb = c\n")
    (root / "etc" / "app" / "secret-ish").write_text("mode 600\n")
    (root / "etc" / "app" / "secret-ish").chmod(0o600)
    (root / "bin" / "alias").symlink_to("tool")
    (root / "etc" / "abs-link").symlink_to("/etc/app/conf.ini")
    os.link(root / "bin" / "tool", root / "bin" / "tool-hardlink")
    (root / "data.bin").write_bytes(os.urandom(1) * 0 + bytes(range(256)) * 64)
    (root / "ünïcode-名前.txt").write_text("non-ascii name\n")
    long_dir = root / ("d" * 60) / ("e" * 60)
    long_dir.mkdir(parents=True)
    (long_dir / "long-name-file.txt").write_text("over 100 bytes of path\n")
    return root


def _build(cli: Any, tmp: Path, *outputs: str, extra: tuple[str, ...] = ()) -> str:
    src = _source_tree(tmp / "tree")
    argv = ["append", "scratch", "--layer", f"{src}:/", *AMD64, "--env", "GREETING=hi",
            "--cmd", "/bin/tool", "--json", *extra]
    for out in outputs:
        argv += ["-o", out]
    code, out, err = cli(*argv)
    assert code == 0, err
    return str(json.loads(out)["digest"])


def _skopeo_json(skopeo: str, *args: str) -> Any:
    return json.loads(run([skopeo, "--insecure-policy", *args]).stdout)


def test_oci_image_tool_accepts_our_layouts(cli, tmp_path: Path) -> None:
    tool = require_tool("oci-image-tool")
    _build(cli, tmp_path, f"oci:{tmp_path}/lay:v1")
    Layout(tmp_path / "lay").put(make_index(tmp_path / "idx"), "multi")
    for compression in ("none",):
        code, _, err = cli("append", f"oci:{tmp_path}/lay:v1", "--compression", compression,
                           "--layer", f"{tmp_path}/tree/etc:/etc2", "-o", f"oci:{tmp_path}/lay:v2")
        assert code == 0, err
    proc = run([tool, "validate", "--type", "image", str(tmp_path / "lay")])
    assert "Validation succeeded" in proc.stdout + proc.stderr


def test_skopeo_reads_every_output_format(cli, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    digest = _build(cli, tmp_path, f"oci:{tmp_path}/lay:v1", f"oci-archive:{tmp_path}/o.tar:v1",
                    f"docker-archive:{tmp_path}/d.tar:me/app:1")
    image = Layout(tmp_path / "lay").read("v1")
    assert isinstance(image, Image)
    for where in (f"oci:{tmp_path}/lay:v1", f"oci-archive:{tmp_path}/o.tar:v1"):
        info = _skopeo_json(skopeo, "inspect", where)
        assert info["Digest"] == digest
        assert info["Layers"] == [str(layer.digest) for layer in image.layers]
        assert "GREETING=hi" in info["Env"]
    # docker-archive: skopeo reads manifest.json and synthesises its own manifest,
    # so compare what it cannot change: the config and the uncompressed layers.
    raw = _skopeo_json(skopeo, "inspect", "--raw", f"docker-archive:{tmp_path}/d.tar")
    assert raw["config"]["digest"] == str(image.config_descriptor.digest)
    info = _skopeo_json(skopeo, "inspect", f"docker-archive:{tmp_path}/d.tar")
    assert info["Layers"] == image.diff_ids
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    assert "GREETING=hi" in info["Env"]


@pytest.mark.parametrize("fmt", ["oci", "oci-archive", "docker-archive"])
def test_skopeo_copies_our_outputs(cli, tmp_path: Path, fmt: str) -> None:
    skopeo = require_tool("skopeo")
    where = {"oci": f"oci:{tmp_path}/src:v1", "oci-archive": f"oci-archive:{tmp_path}/s.tar:v1",
             "docker-archive": f"docker-archive:{tmp_path}/s.tar:app:1"}[fmt]
    digest = _build(cli, tmp_path, where)
    run([skopeo, "--insecure-policy", "copy", where, f"oci:{tmp_path}/copied:v1"])
    copied = Layout(tmp_path / "copied").read("v1")
    assert isinstance(copied, Image)
    if fmt != "docker-archive":
        assert str(copied.digest) == digest  # nothing to convert: bytes kept
    code, out, err = cli("verify", f"oci:{tmp_path}/copied:v1")
    assert code == 0, err
    code, out, err = cli("inspect", f"oci:{tmp_path}/copied:v1", "--config")
    assert json.loads(out)["config"]["Env"] == ["GREETING=hi"]


def test_we_read_what_skopeo_writes(cli, tmp_path: Path) -> None:
    """skopeo's docker-archive is the classic format (no oci-layout): our legacy reader."""
    skopeo = require_tool("skopeo")
    _build(cli, tmp_path, f"oci:{tmp_path}/src:v1")
    run([skopeo, "--insecure-policy", "copy", f"oci:{tmp_path}/src:v1",
         f"docker-archive:{tmp_path}/sk.tar:theirs:1"])
    run([skopeo, "--insecure-policy", "copy", f"oci:{tmp_path}/src:v1",
         f"oci-archive:{tmp_path}/sk-oci.tar:v1"])
    ours = Layout(tmp_path / "src").read("v1")
    assert isinstance(ours, Image)
    theirs = (f"docker-archive:{tmp_path}/sk.tar:theirs:1", f"oci-archive:{tmp_path}/sk-oci.tar")
    for where in theirs:
        code, out, err = cli("verify", where)
        assert code == 0, err
        code, out, err = cli("inspect", where, "--config")
        assert json.loads(out)["rootfs"]["diff_ids"] == ours.diff_ids
    code, out, err = cli("copy", f"{tmp_path}/sk.tar", f"oci:{tmp_path}/back:v1", "--json")
    assert code == 0, err


def _snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything umoci must reproduce: type, permission bits, contents, link targets."""
    out: dict[str, tuple[Any, ...]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", mode)
        else:
            out[rel] = ("file", mode, path.read_bytes())
    return out


def _hardlink_groups(root: Path) -> set[frozenset[str]]:
    groups: dict[tuple[int, int], set[str]] = {}
    for path in root.rglob("*"):
        st = path.lstat()
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            groups.setdefault((st.st_dev, st.st_ino), set()).add(str(path.relative_to(root)))
    return {frozenset(g) for g in groups.values() if len(g) > 1}


def test_umoci_unpack_reproduces_the_tree(cli, tmp_path: Path) -> None:
    umoci = require_tool("umoci")
    require_root("umoci unpack without --rootless")
    _build(cli, tmp_path, f"oci:{tmp_path}/lay:v1")
    bundle = tmp_path / "bundle"
    run([umoci, "unpack", "--image", f"{tmp_path}/lay:v1", str(bundle)])
    rootfs = bundle / "rootfs"
    source = tmp_path / "tree"
    assert _snapshot(rootfs) == _snapshot(source)
    assert _hardlink_groups(rootfs) == _hardlink_groups(source) == {
        frozenset({"bin/tool", "bin/tool-hardlink"})}
    assert (rootfs / "empty" / "nested").is_dir()
    config = json.loads((bundle / "config.json").read_text())
    assert "GREETING=hi" in config["process"]["env"]


def test_podman_loads_our_docker_archive(cli, tmp_path: Path) -> None:
    podman = require_tool("podman")
    digest = _build(cli, tmp_path, f"{tmp_path}/app.tar", extra=("--tag", "me/demo:3"))
    runroot = Path(tempfile.mkdtemp(prefix="ofrr-", dir="/tmp"))  # podman: at most 50 chars
    base = [podman, "--root", str(tmp_path / "root"), "--runroot", str(runroot),
            "--storage-driver", "vfs", "--events-backend", "file"]
    try:
        _podman_checks(base, tmp_path, digest)
    finally:
        shutil.rmtree(runroot, ignore_errors=True)


def _podman_checks(base: list[str], tmp_path: Path, digest: str) -> None:
    proc = run([*base, "load", "-i", str(tmp_path / "app.tar")], timeout=300)
    assert "me/demo:3" in proc.stdout + proc.stderr
    info = json.loads(run([*base, "image", "inspect", "docker.io/me/demo:3"]).stdout)[0]
    assert "docker.io/me/demo:3" in info["RepoTags"]
    assert info["Config"]["Env"] == ["GREETING=hi"]
    assert info["Config"]["Cmd"] == ["/bin/tool"]
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    assert info["Digest"] == digest


def test_umoci_applies_our_whiteouts(cli, tmp_path: Path) -> None:
    umoci = require_tool("umoci")
    require_root("umoci unpack without --rootless")
    _build(cli, tmp_path, f"oci:{tmp_path}/lay:v1")
    code, _, err = cli("append", f"oci:{tmp_path}/lay:v1", "--remove", "/etc/app/conf.ini",
                       "--remove", "/empty", "-o", f"oci:{tmp_path}/lay:v2")
    assert code == 0, err
    run([umoci, "unpack", "--image", f"{tmp_path}/lay:v2", str(tmp_path / "bundle")])
    rootfs = tmp_path / "bundle" / "rootfs"
    assert not (rootfs / "etc" / "app" / "conf.ini").exists()
    assert not (rootfs / "empty").exists()
    assert (rootfs / "etc" / "app" / "secret-ish").read_text() == "mode 600\n"
    assert not list(rootfs.rglob(".wh.*"))
