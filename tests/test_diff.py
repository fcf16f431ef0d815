"""``ociforge diff A B``: layers, files (whiteouts applied) and runtime config.

The file comparison is checked against trees unpacked by a real unpacker (umoci);
"each layer streamed once" by counting where diff reads a layer, on images in a
real registry (whose access log shows every layer was fetched from it).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import tarfile
from pathlib import Path
from typing import Any

import pytest
from tools import require_tool, run


def _append(cli: Any, base: str, out: str, *args: str) -> None:
    code, _, err = cli("append", base, *args, "-o", out, "--platform", "linux/amd64")
    assert code == 0, err


def _tar(path: Path, entries: list[tuple[str, bytes | None, str]]) -> Path:
    """A layer tar: (name, data or None for a folder, "file"|"dir"|"opaque")."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))
    return path


def _images(cli: Any, tmp_path: Path) -> tuple[str, str]:
    one = tmp_path / "one"
    (one / "keep").mkdir(parents=True)
    (one / "keep" / "same.txt").write_text("same\n")
    (one / "keep" / "edit.txt").write_text("before\n")
    (one / "gone.txt").write_text("bye\n")
    (one / "cache").mkdir()
    (one / "cache" / "a.bin").write_bytes(b"a")
    (one / "cache" / "b.bin").write_bytes(b"b")
    os.symlink("keep/same.txt", one / "link")
    (one / "mode.sh").write_text("#!/bin/sh\n")
    os.chmod(one / "mode.sh", 0o644)
    a = f"oci:{tmp_path / 'a'}:1"
    _append(cli, "scratch", a, "--layer", f"{one}:/srv", "--env", "MODE=dev", "--env",
            "KEEP=1", "--env", "OLD=x", "--cmd", "run dev", "--label", "team=a",
            "--expose", "80", "--volume", "/data", "--workdir", "/srv")
    two = tmp_path / "two"
    (two / "keep").mkdir(parents=True)
    (two / "keep" / "edit.txt").write_text("after\n")
    (two / "new.txt").write_text("hello\n")
    os.symlink("keep/edit.txt", two / "link")
    (two / "mode.sh").write_text("#!/bin/sh\n")
    os.chmod(two / "mode.sh", 0o755)
    opaque = _tar(tmp_path / "opaque.tar", [("srv/cache/", None, "dir"),
                                             ("srv/cache/.wh..wh..opq", b"", "file"),
                                             ("srv/cache/c.bin", b"c", "file")])
    b = f"oci:{tmp_path / 'b'}:1"
    _append(cli, a, b, "--remove", "/srv/gone.txt", "--layer", f"{two}:/srv",
            "--layer", str(opaque), "--env", "MODE=prod", "--env", "NEW=1",
            "--cmd", "run prod", "--label", "team=b", "--label", "tier=web",
            "--expose", "443")
    return a, b


def test_diff_reports_layers_files_and_config(cli, tmp_path: Path) -> None:
    a, b = _images(cli, tmp_path)
    code, out, err = cli("diff", a, b, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["identical"] is False
    layers = result["layers"]
    assert len(layers["kept"]) == 1 and len(layers["added"]) == 3 and layers["removed"] == []
    files = result["files"]
    assert [f["path"] for f in files["added"]] == ["/srv/cache/c.bin", "/srv/new.txt"]
    assert [f["path"] for f in files["removed"]] == ["/srv/cache/a.bin", "/srv/cache/b.bin",
                                                    "/srv/gone.txt"]
    changed = {f["path"]: f["changes"] for f in files["changed"]}
    assert changed == {"/srv/keep/edit.txt": ["content"], "/srv/link": ["target"],
                       "/srv/mode.sh": ["mode"]}
    edit = next(f for f in files["changed"] if f["path"] == "/srv/keep/edit.txt")
    assert edit["digest"] == "sha256:" + hashlib.sha256(b"after\n").hexdigest()
    assert edit["was"]["digest"] == "sha256:" + hashlib.sha256(b"before\n").hexdigest()
    config = result["config"]
    assert config["env"] == {"added": {"NEW": "1"}, "removed": {},
                             "changed": {"MODE": {"from": "dev", "to": "prod"}}}
    assert config["cmd"] == {"from": ["run", "dev"], "to": ["run", "prod"]}
    assert config["labels"]["changed"] == {"team": {"from": "a", "to": "b"}}
    assert config["labels"]["added"] == {"tier": "web"}
    assert config["exposed_ports"] == {"added": ["443/tcp"], "removed": []}
    assert set(config) == {"env", "cmd", "labels", "exposed_ports"}

    code, out, err = cli("diff", a, b)
    assert code == 0, err
    assert "files: 2 added, 3 removed, 3 changed" in out
    assert "  env ~ MODE: dev -> prod" in out and "  - /srv/gone.txt" in out

    code, out, err = cli("diff", b, b, "--json")
    assert code == 0 and json.loads(out)["identical"] is True
    assert json.loads(out)["files"] == {"added": [], "removed": [], "changed": []}


def test_diff_files_agree_with_a_real_unpacker(cli, tmp_path: Path) -> None:
    umoci = require_tool("umoci")
    a, b = _images(cli, tmp_path)
    trees = []
    for location, name in ((a, "ua"), (b, "ub")):
        bundle = tmp_path / name
        run([umoci, "raw", "unpack", "--rootless", "--image", location.removeprefix("oci:"),
             str(bundle)])
        found = {}
        for root, dirs, names in os.walk(bundle):
            for entry in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                path = Path(root) / entry
                rel = "/" + str(path.relative_to(bundle))
                found[rel] = (os.readlink(path) if path.is_symlink()
                              else hashlib.sha256(path.read_bytes()).hexdigest(),
                              os.lstat(path).st_mode & 0o777)
        trees.append(found)
    old, new = trees
    assert len(set(new) - set(old)) == 2 and len(set(old) - set(new)) == 3  # the test bites
    code, out, err = cli("diff", a, b, "--json")
    assert code == 0, err
    files = json.loads(out)["files"]
    assert {f["path"] for f in files["added"]} == set(new) - set(old)
    assert {f["path"] for f in files["removed"]} == set(old) - set(new)
    assert {f["path"] for f in files["changed"]} == {
        p for p in set(old) & set(new) if old[p] != new[p]}


def test_diff_recompressed_layer_is_kept(cli, tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f").write_text("f\n")
    gz, zst = f"oci:{tmp_path / 'gz'}:1", f"oci:{tmp_path / 'zst'}:1"
    _append(cli, "scratch", gz, "--layer", f"{tree}:/t")
    _append(cli, "scratch", zst, "--layer", f"{tree}:/t", "--compression", "zstd")
    code, out, err = cli("diff", gz, zst, "--json", "--no-files")
    assert code == 0, err
    result = json.loads(out)
    (kept,) = result["layers"]["kept"]
    assert kept["recompressed_from"] != kept["digest"]
    assert result["layers"]["added"] == [] and result["files"] is None


def test_diff_reads_each_layer_once(cli, registry, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Each distinct layer of the two images is streamed once, the one both share too
    (counted where diff reads a layer), and every one of them came from the registry."""
    import ociforge.pipeline.diff as diff_module

    a, b = _images(cli, tmp_path)
    repo = f"{registry.host}/diff/once-{secrets.token_hex(3)}"
    assert cli("copy", a, f"{repo}:a")[0] == 0
    assert cli("copy", b, f"{repo}:b")[0] == 0
    streamed: list[str] = []
    real = diff_module.read_changes

    def counting(layer: Any, what: str | None = None) -> Any:
        streamed.append(str(layer.digest))
        return real(layer, what)

    monkeypatch.setattr(diff_module, "read_changes", counting)
    mark = registry.log_mark()
    code, out, err = cli("diff", f"{repo}:a", f"{repo}:b", "--json")
    assert code == 0, err
    result = json.loads(out)
    layers = {e["digest"] for part in result["layers"].values() for e in part}
    assert len(layers) == 4 and len(result["layers"]["kept"]) == 1
    assert sorted(streamed) == sorted(layers)          # 4 distinct layers, each read once
    fetched = {path.rsplit("/", 1)[1] for method, path, status in registry.requests_since(mark)
               if method == "GET" and "/blobs/" in path and status == 200}
    assert layers <= fetched


def test_diff_bad_input(cli, tmp_path: Path) -> None:
    code, out, err = cli("diff", f"oci:{tmp_path}/missing", f"oci:{tmp_path}/missing",
                         "--json")
    assert code == 2 and json.loads(out)["exit_code"] == 2
    code, _, err = cli("diff", "scratch")
    assert code == 2 and "ociforge diff --help" in err
