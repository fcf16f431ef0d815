"""Exporting what is installed: ``ociforge export --rootfs`` end to end (without a runtime).

The base is built by ociforge from a small tree, unpacked with GNU tar into a
folder as an application's root filesystem (owners and modes kept), and changed
the way a user of a live system changes one.  The exported image is read back
from its OCI layout; the runtimes run it in test_export_rootfs_run.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import secretgen
from pkgmeta import copy_dist_infos, write_python
from tools import require_module, require_root, require_tool, run

from ociforge.app.inventory import LayerRef, take_inventory
from ociforge.layers.build import BuildSettings, LayerSource, build_layer
from ociforge.model.descriptor import Descriptor
from ociforge.model.image import Image
from ociforge.model.layer import Layer
from ociforge.model.mutate import ConfigChanges, append_layers, configure, scratch
from ociforge.model.platform import Platform
from ociforge.options import Options
from ociforge.stores.locations import parse_location

PLATFORM = Platform.host()
SITE = "usr/local/lib/python3.11/dist-packages"


def make_base(tmp: Path) -> str:
    """A small system: config, docs, logs, caches, personal folders; as an oci: layout."""
    tree = tmp / "base-tree"
    files = {
        "etc/app.conf": "mode=one\n",
        "etc/hostname": "base\n",
        "usr/bin/tool": "#!/bin/sh\necho tool\n",
        "usr/share/doc/pkg/README": "docs\n",
        "usr/share/doc/pkg/changelog": "1.0\n",
        "var/log/dpkg.log": "installed\n",
        "var/cache/apt/pkgcache.bin": "cache\n",
        "var/lib/apt/lists/deb.debian.org_Packages": "lists\n",
        "root/.profile": "# profile\n",
        "home/user/.bashrc": "# bashrc\n",
        "srv/app/main.py": "print('app')\n",
    }
    for name, text in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    for folder in ("tmp", "run", "proc", "sys", "dev", "var/tmp", "opt"):
        (tree / folder).mkdir(parents=True, exist_ok=True)
    layer = build_layer([LayerSource(tree, "/")], BuildSettings()).layer
    image = configure(append_layers(scratch(PLATFORM), [layer], created_by=["base"]),
                      ConfigChanges(env={"PATH": "/usr/bin:/bin"}, cmd=("/bin/sh",)))
    location = f"oci:{tmp / 'base-layout'}:1"
    parse_location(location).write(image, Options(platform=PLATFORM))
    return location


def unpack_base(location: str, rootfs: Path) -> Path:
    """The base's layers unpacked as a running application's root filesystem."""
    require_root("an unpacked root filesystem keeps its owners only as root")
    tar = require_tool("tar")
    image = read_image(location)
    rootfs.mkdir()
    for i, layer in enumerate(image.layers):
        blob = rootfs.parent / f"layer-{i}.tar.gz"
        with layer.open() as reader:
            blob.write_bytes(reader.read())
        run([tar, "-xzpf", str(blob), "-C", str(rootfs), "--numeric-owner"])
    return rootfs


def read_image(location: str) -> Image:
    image = parse_location(location).read(Options(platform=PLATFORM))
    assert isinstance(image, Image)
    return image


def layer_names(image: Image, index: int) -> dict[str, tarfile.TarInfo]:
    with image.layers[index].open() as blob, \
            tarfile.open(fileobj=blob, mode="r|*") as tar:  # type: ignore[call-overload]
        return {info.name.rstrip("/"): info for info in tar}


def layer_file(image: Image, index: int, name: str) -> bytes:
    with image.layers[index].open() as blob, \
            tarfile.open(fileobj=blob, mode="r|*") as tar:  # type: ignore[call-overload]
        for info in tar:
            if info.name == name:
                handle = tar.extractfile(info)
                assert handle is not None
                return handle.read()
    raise AssertionError(f"{name} is not in layer {index}")


def write_app(folder: Path, base: str, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ociforge.toml").write_text(f"""\
[app]
name = "live"
base = "{base}"
platform = "{PLATFORM}"
{extra}""")
    return folder


@pytest.fixture
def live(tmp_path: Path) -> tuple[str, Path]:
    base = make_base(tmp_path)
    return base, unpack_base(base, tmp_path / "rootfs")


def export(cli: Any, app: Path, out: Path, *args: object) -> tuple[Image, dict[str, Any]]:
    report = out.parent / f"{out.name}-report.json"
    code, _, stderr = cli("export", app, "-o", f"oci:{out}:1", "--report", report, *args)
    assert code == 0, stderr
    return read_image(f"oci:{out}:1"), json.loads(report.read_text())


def count_layer_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The digests of the layers opened from now on, in order (one entry per open)."""
    opened: list[str] = []
    real_open = Layer.open

    def counting(self: Layer) -> Any:
        opened.append(str(self.digest))
        return real_open(self)

    monkeypatch.setattr(Layer, "open", counting)
    return opened


def test_live_rules_keep_volatile_private_and_mounted_things_out(
        cli: Any, live: tuple[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    base, rootfs = live
    (rootfs / "etc" / "app.conf").write_text("mode=two\n")
    for name in ("tmp/session", "var/tmp/x", "run/app.pid", "var/log/app.log",
                 "var/cache/apt/archives/x.deb", "var/lib/apt/lists/new_Packages",
                 "root/.bash_history", "home/user/notes.txt", "srv/app/.cache/pip/wheel",
                 "opt/conda/pkgs/numpy-1.0.tar.bz2", "opt/conda/conda-meta/history"):
        (rootfs / name).parent.mkdir(parents=True, exist_ok=True)
        (rootfs / name).write_text("x\n")
    (rootfs / "var" / "log" / "dpkg.log").unlink()       # a log gone is not a deletion
    own_cache = rootfs / "var" / "lib" / "ociforge-cache"
    monkeypatch.setenv("OCIFORGE_CACHE_DIR", str(own_cache))
    mount = require_tool("mount")
    volume = rootfs / "srv" / "volume"
    volume.mkdir()
    run([mount, "-t", "tmpfs", "-o", "size=1m", "ociforge-test", str(volume)])
    try:
        (volume / "data.db").write_text("volume\n")
        app = write_app(tmp_path / "app", base, f'rootfs = "{rootfs}"\n')
        # the output itself lies in the rootfs: it is not read while it is written
        (rootfs / "srv" / "out").mkdir()
        image, report = export(cli, app, rootfs / "srv" / "out")
    finally:
        run([require_tool("umount"), str(volume)])
    base_image = read_image(base)
    assert [str(layer.digest) for layer in image.layers[:-1]] == \
        [str(layer.digest) for layer in base_image.layers]     # the base's own layers
    names = {name for name, info in layer_names(image, -1).items() if not info.isdir()}
    assert names == {"etc/app.conf", "opt/conda/conda-meta/history"}
    assert layer_file(image, -1, "etc/app.conf") == b"mode=two\n"
    rules = {entry["path"]: entry["rule"] for entry in report["left_out_files"]}
    assert rules["/tmp"] == rules["/var/tmp"] == "live-volatile"
    assert rules["/run"] == rules["/proc"] == "live-virtual"
    assert rules["/var/log"] == "logs"
    assert rules["/var/cache/apt"] == rules["/var/lib/apt/lists"] == "package-cache"
    assert rules["/opt/conda/pkgs"] == "package-cache"
    assert rules["/srv/app/.cache"] == "cache-folder"
    assert rules["/root"] == rules["/home/user"] == "personal-folder"
    assert rules["/srv/volume"] == "live-mount"
    assert rules["/srv/out"] == rules["/var/lib/ociforge-cache"] == "ociforge-files"
    assert {"live-volatile", "personal-folder", "live-mount"} <= set(report["rules"])
    # added: opt/conda, opt/conda/conda-meta and its history; changed: etc/app.conf
    assert report["rootfs"] == {"compare": "metadata", "added": 3, "changed": 1, "deleted": 0}
    assert report["layers"][-1]["role"] == "rootfs"


def test_workspace_and_layers_that_name_paths_in_the_rootfs(
        cli: Any, live: tuple[str, Path], tmp_path: Path) -> None:
    base, rootfs = live
    (rootfs / "files").mkdir()
    (rootfs / "files" / "inputs.csv").write_text("a,b\n1,2\n")
    (rootfs / "root" / "notebooks").mkdir()
    (rootfs / "root" / "notebooks" / "model.ipynb").write_text("{}\n")
    (rootfs / "root" / ".bash_history").write_text("export TOKEN=x\n")
    (rootfs / "srv" / "app" / "main.py").write_text("print('changed')\n")
    app = write_app(tmp_path / "app", base, f"""rootfs = "{rootfs}"

[[layers]]
src = "/root/notebooks"
dest = "/notebooks"
""")
    image, report = export(cli, app, tmp_path / "no-files")
    roles = [layer["role"] for layer in report["layers"]]
    assert roles == ["base", "rootfs", "runtime"]
    delta = layer_names(image, 1)
    assert "srv/app/main.py" in delta
    assert not [n for n in delta if n.startswith(("files", "root"))]
    assert set(layer_names(image, 2)) >= {"notebooks", "notebooks/model.ipynb"}
    assert {"path": "/files", "rule": "workspace", "layer": "rootfs",
            "folder": True} in report["left_out_files"]

    image, report = export(cli, app, tmp_path / "with-files", "--with-files")
    assert [layer["role"] for layer in report["layers"]] == ["base", "rootfs", "runtime",
                                                              "files"]
    assert layer_file(image, 3, "files/inputs.csv") == b"a,b\n1,2\n"
    assert not [n for n in layer_names(image, 1) if n.startswith("files")]
    assert "/files" not in {entry["path"] for entry in report["left_out_files"]}

    # [files] src, absolute: a folder of the rootfs is the workspace
    (rootfs / "data").mkdir()
    (rootfs / "data" / "big.parquet").write_bytes(b"PAR1")
    app2 = write_app(tmp_path / "app2", base, f"""rootfs = "{rootfs}"

[files]
src = "/data"
dest = "/data"
""")
    image, report = export(cli, app2, tmp_path / "data-ws", "--with-files")
    assert layer_file(image, 2, "data/big.parquet") == b"PAR1"
    assert not [n for n in layer_names(image, 1) if n.startswith("data")]
    assert "files/inputs.csv" in layer_names(image, 1)   # /files is no workspace here


def test_license_and_secret_rules_judge_the_delta(cli: Any, live: tuple[str, Path],
                                                  tmp_path: Path) -> None:
    base, rootfs = live
    token = secretgen.TOKENS["github-token"]()
    (rootfs / "opt" / "solver").mkdir()
    (rootfs / "opt" / "solver" / "site.lic").write_text("SERVER lic 27000\n")
    (rootfs / "srv" / "app" / "settings.py").write_text(f"TOKEN = '{token}'\n")
    # the operating system's own trees are not read for tokens (docs are full of examples)
    (rootfs / "usr" / "share" / "doc" / "pkg" / "EXAMPLES").write_text(f"token: {token}\n")
    app = write_app(tmp_path / "app", base, f'rootfs = "{rootfs}"\n')
    image, report = export(cli, app, tmp_path / "out")
    names = set(layer_names(image, -1))
    assert "opt/solver/site.lic" not in names and "srv/app/settings.py" not in names
    assert "usr/share/doc/pkg/EXAMPLES" in names
    rules = {entry["path"]: entry["rule"] for entry in report["left_out_files"]}
    assert rules["/opt/solver/site.lic"] == "license-key-file"
    assert rules["/srv/app/settings.py"] == "github-token"


def test_environment_of_a_running_process(cli: Any, live: tuple[str, Path],
                                          tmp_path: Path) -> None:
    base, rootfs = live
    token = secretgen.TOKENS["github-token"]()
    password = secretgen.password()
    env = {b"PATH": b"/usr/bin:/bin", b"APP_MODE": b"production", b"APP_SETTING": token.encode(),
           b"DATABASE_URL": f"postgres://app:{password}@db/app".encode(),
           b"HOSTNAME": b"3f2a1b", b"PWD": b"/srv/app", b"LATIN": b"caf\xe9",
           b"LM_LICENSE_FILE": b"27000@licserver"}
    proc = subprocess.Popen([require_tool("sleep"), "120"], env=env)
    try:
        app = write_app(tmp_path / "app", base, f"""rootfs = "{rootfs}"

[config.env]
APP_MODE = "from-config"
""")
        image, report = export(cli, app, tmp_path / "out", "--env-from-pid", proc.pid)
    finally:
        proc.kill()
        proc.wait()
    config_env = dict(item.split("=", 1) for item in image.config["config"]["Env"])
    assert config_env == {"PATH": "/usr/bin:/bin", "APP_MODE": "from-config"}
    dropped = {entry["name"]: (entry["rule"], entry["origin"]) for entry in report["dropped_env"]}
    assert dropped["APP_SETTING"] == ("secret-token-value", "pid")
    assert dropped["DATABASE_URL"] == ("credential-in-url", "pid")
    assert dropped["LM_LICENSE_FILE"][1] == "pid"
    assert dropped["HOSTNAME"] == dropped["PWD"] == ("session-variable", "pid")
    assert dropped["LATIN"] == ("env-not-utf8", "pid")
    written = (tmp_path / "out-report.json").read_text() + json.dumps(image.config)
    assert token not in written and password not in written


def test_inventory_and_licensed_software_cover_the_delta(cli: Any, live: tuple[str, Path],
                                                         tmp_path: Path) -> None:
    require_module("spdx_tools")
    base, rootfs = live
    versions = copy_dist_infos(["idna"], rootfs / SITE)
    app = write_app(tmp_path / "app", base, f'rootfs = "{rootfs}"\n')
    sbom = tmp_path / "sbom.json"
    image, report = export(cli, app, tmp_path / "out", "--sbom", sbom)
    packages = {p["name"]: p for p in json.loads(sbom.read_text())["packages"]}
    assert packages["idna"]["versionInfo"] == versions["idna"]
    # taken while the rootfs index read the base: the same as reading every layer again
    again = take_inventory([(LayerRef(i, str(layer.digest), "x"), layer)
                            for i, layer in enumerate(image.layers)])
    assert report["inventory"] == {"packages": len(again.packages),
                                   "ecosystems": again.ecosystem_counts(),
                                   "licenses": again.license_overview()}
    assert [(p.name, p.version, p.layer.index) for p in again.packages] == \
        [("idna", versions["idna"], 1)]
    write_python(rootfs / SITE, "vendorsolver", "2.0",
                 "Classifier: License :: Other/Proprietary License\n")
    code, _, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'refused'}:1")
    assert code == 2 and "vendorsolver" in stderr and "rootfs /" in stderr
    assert not (tmp_path / "refused").exists()


def test_same_rootfs_same_digest_and_comparing_by_content(cli: Any, live: tuple[str, Path],
                                                          tmp_path: Path) -> None:
    base, rootfs = live
    (rootfs / "srv" / "app" / "new.py").write_text("print('new')\n")
    app = write_app(tmp_path / "app", base, f'rootfs = "{rootfs}"\n')
    digests = set()
    for i, compare in enumerate(("metadata", "metadata", "content")):
        code, stdout, stderr = cli("export", app, "-o", f"oci:{tmp_path / f'o{i}'}:1", "--json",
                                   "--compare", compare)
        assert code == 0, stderr
        digests.add((compare, json.loads(stdout)["digest"]))
    assert len({d for c, d in digests if c == "metadata"}) == 1
    # content mode finds the same single change (mtimes are not shipped anyway)
    assert len({d for _, d in digests}) == 2
    image = read_image(f"oci:{tmp_path / 'o2'}:1")
    assert {n for n, i in layer_names(image, -1).items() if not i.isdir()} == {"srv/app/new.py"}


def test_bad_rootfs_input_is_refused_before_anything_is_written(
        cli: Any, live: tuple[str, Path], tmp_path: Path) -> None:
    base, rootfs = live
    out = tmp_path / "out"
    app = write_app(tmp_path / "app", base)
    code, _, stderr = cli("export", app, "--rootfs", tmp_path / "missing", "-o", f"oci:{out}")
    assert code == 2 and "--rootfs" in stderr and "does not exist" in stderr
    app2 = write_app(tmp_path / "app2", base, 'rootfs = "ociforge.toml"\n')
    code, _, stderr = cli("export", app2, "-o", f"oci:{out}")
    assert code == 2 and "ociforge.toml:5: app.rootfs" in stderr
    for platforms in ("all", "linux/amd64,linux/arm64"):
        code, _, stderr = cli("export", app, "--rootfs", rootfs, "--platform", platforms,
                              "-o", f"oci:{out}")
        assert code == 2 and "one platform" in stderr, stderr
    several = write_app(tmp_path / "several", base, f'rootfs = "{rootfs}"\n').joinpath(
        "ociforge.toml")
    several.write_text(several.read_text().replace(f'platform = "{PLATFORM}"',
                                                    'platform = ["linux/amd64", "linux/arm64"]'))
    code, _, stderr = cli("export", several.parent, "-o", f"oci:{out}")
    assert code == 2 and "one platform" in stderr, stderr
    code, _, stderr = cli("export", app, "--rootfs", rootfs, "--env-from-pid", 2**22 + 12345,
                          "-o", f"oci:{out}")
    assert code == 2 and "no such process" in stderr
    (rootfs / "srv" / "escape").symlink_to(tmp_path)
    app3 = write_app(tmp_path / "app3", base, f"""rootfs = "{rootfs}"
[[layers]]
src = "/srv/escape"
dest = "/x"
""")
    code, _, stderr = cli("export", app3, "-o", f"oci:{out}")
    assert code == 2 and "leads out of the rootfs" in stderr
    app4 = write_app(tmp_path / "app4", base, """[[layers]]
src = "/srv"
dest = "/x"
""")
    code, _, stderr = cli("export", app4, "-o", f"oci:{out}")
    assert code == 2 and "relative to the application folder" in stderr
    assert not out.exists()
    code, _, stderr = cli("export", app, "--rootfs", rootfs, "--compare", "bytes")
    assert code == 2 and "--compare" in stderr


def test_the_next_export_of_the_same_base_reads_no_base_layer(
        cli: Any, live: tuple[str, Path], tmp_path: Path) -> None:
    base, rootfs = live
    copy_dist_infos(["idna"], rootfs / SITE)
    (rootfs / "etc" / "app.conf").write_text("mode=two\n")
    app = write_app(tmp_path / "app", base, f'rootfs = "{rootfs}"\n')
    runs = []
    for i, extra in enumerate([(), (), ("--no-cache",)]):
        report = tmp_path / f"r{i}.json"
        code, stdout, stderr = cli("-v", "export", app, "-o", f"oci:{tmp_path / f'o{i}'}:1",
                                   "--json", "--report", report, *extra)
        assert code == 0, stderr
        content = json.loads(report.read_text())
        content.pop("image")                         # where it was written differs
        runs.append((json.loads(stdout)["digest"], content, stderr))
    first, second, uncached = runs
    assert "indexing base layer" in first[2] and "indexing base layer" in uncached[2]
    assert "indexing base layer" not in second[2]
    assert "rootfs index reused from the cache" in second[2]
    assert first[0] == second[0] == uncached[0]
    assert first[1] == second[1] == uncached[1]
    assert second[1]["inventory"]["packages"] == 1
    # a damaged kept index is dropped, and the base read again, to the same image
    cache = Path(os.environ["OCIFORGE_CACHE_DIR"]) / "v1"
    (record,) = (cache / "rootfs").iterdir()
    blob = json.loads(record.read_text())["index"]["digest"].split(":")[1]
    path = cache / "blobs" / "sha256" / blob
    os.chmod(path, 0o644)
    path.write_bytes(b"\0" * path.stat().st_size)
    code, stdout, stderr = cli("-v", "export", app, "-o", f"oci:{tmp_path / 'o3'}:1", "--json")
    assert code == 0, stderr
    assert "indexing base layer" in stderr and json.loads(stdout)["digest"] == first[0]


@pytest.mark.parametrize("rootfs", [False, True], ids=["folder", "rootfs"])
def test_entrypoint_cmd_workdir_and_user_come_from_the_base_when_the_toml_names_none(
        cli: Any, tmp_path: Path, rootfs: bool) -> None:
    plain = read_image(make_base(tmp_path))
    image = configure(plain, ConfigChanges(entrypoint=("/usr/bin/tool", "--serve"),
                                           cmd=("--port", "8080"), workdir="/srv/app",
                                           user="1000:1000"))
    base = f"oci:{tmp_path / 'started'}:1"
    parse_location(base).write(image, Options(platform=PLATFORM))
    if rootfs:
        root = unpack_base(base, tmp_path / "rootfs")
        (root / "srv" / "app" / "added.py").write_text("print('added')\n")
        extra = f'rootfs = "{root}"\n'
    else:
        (tmp_path / "app" / "site").mkdir(parents=True)
        (tmp_path / "app" / "site" / "index.html").write_text("<p>hi</p>\n")
        extra = '\n[[layers]]\nsrc = "site"\ndest = "/srv/www"\n'
    app = write_app(tmp_path / "app", base, extra)
    exported, _ = export(cli, app, tmp_path / "out")
    assert len(exported.layers) == len(image.layers) + 1
    runtime = exported.config["config"]
    assert runtime["Entrypoint"] == ["/usr/bin/tool", "--serve"]
    assert runtime["Cmd"] == ["--port", "8080"]
    assert runtime["WorkingDir"] == "/srv/app"
    assert runtime["User"] == "1000:1000"


def add_layer(location: str, tmp: Path) -> str:
    """``location``'s image with a second layer (a Python package, an edited file), as
    another oci: layout: the two bases share their lowest layer."""
    tree = tmp / "upper-tree"
    copy_dist_infos(["idna"], tree / SITE)
    (tree / "etc").mkdir()
    (tree / "etc" / "app.conf").write_text("mode=upper\n")
    layer = build_layer([LayerSource(tree, "/")], BuildSettings()).layer
    image = append_layers(read_image(location), [layer], created_by=["upper"])
    upper = f"oci:{tmp / 'upper-layout'}:1"
    parse_location(upper).write(image, Options(platform=PLATFORM))
    return upper


def test_a_first_export_reads_each_base_layer_once(cli: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The license and secret scan, the rootfs index and the base's inventory take each
    base layer on one read (counted where a layer's blob is opened), whether the scan
    reads it or its verdict was kept (then the index reads it, before the scan's next
    read); the next export reads none; every way gives the same image and report."""
    lower = make_base(tmp_path)
    base = add_layer(lower, tmp_path)
    rootfs = unpack_base(base, tmp_path / "rootfs")
    (rootfs / "etc" / "app.conf").write_text("mode=live\n")
    shutil.rmtree(rootfs / "usr" / "share" / "doc" / "pkg")
    app = write_app(tmp_path / "app", base, f'rootfs = "{rootfs}"\n')
    digests = [str(layer.digest) for layer in read_image(base).layers]
    layout = base.rsplit(":", 1)[0]        # written into the base's own layout: no copies
    opened = count_layer_opens(monkeypatch)

    def export_counting(name: str, *extra: str) -> tuple[str, dict[str, Any], list[int]]:
        opened.clear()
        report = tmp_path / f"{name}.json"
        code, stdout, stderr = cli("-v", "export", app, "-o", f"{layout}:{name}", "--json",
                                   "--report", report, *extra)
        assert code == 0, stderr
        content = json.loads(report.read_text())
        content.pop("image")
        return json.loads(stdout)["digest"], content, [opened.count(d) for d in digests]

    first = export_counting("first")
    assert first[2] == [1, 1]
    assert first[1]["rootfs"] == {"compare": "metadata", "added": 0, "changed": 1,
                                  "deleted": 1}
    assert first[1]["inventory"]["packages"] == 1        # idna, from the upper base layer
    again = export_counting("again")
    assert again[2] == [0, 0]
    uncached = export_counting("uncached", "--no-cache")
    assert uncached[2] == [1, 1]
    cache = Path(os.environ["OCIFORGE_CACHE_DIR"])
    shutil.rmtree(cache / "v1" / "rootfs")                # the scan's verdicts stay kept
    unscanned = export_counting("unscanned")
    assert unscanned[2] == [1, 1]
    # a fresh cache that keeps only the lower layer's verdict (an export on the lower base)
    monkeypatch.setenv("OCIFORGE_CACHE_DIR", str(tmp_path / "cache2"))
    folder_app = write_app(tmp_path / "folder-app", lower, '[files]\nsrc = "files"\n')
    (folder_app / "files").mkdir()
    (folder_app / "files" / "data.txt").write_text("data\n")
    code, _, stderr = cli("export", folder_app, "-o", f"oci:{tmp_path / 'folder-out'}:1")
    assert code == 0, stderr
    partly = export_counting("partly")
    assert partly[2] == [1, 1]
    for other in (again, uncached, unscanned, partly):
        assert other[:2] == first[:2]


NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"


def add_foreign_layer(location: str, tmp: Path, name: str) -> str:
    """``location``'s image with a nondistributable layer on top (a vendor's files, which
    neither the scan, the rootfs index nor the inventory reads), as another oci: layout."""
    tree = tmp / f"{name}-tree"
    (tree / "opt" / name).mkdir(parents=True)
    (tree / "opt" / name / "vendor.bin").write_text(f"{name}\n")
    layer = build_layer([LayerSource(tree, "/")], BuildSettings()).layer
    plain = layer.descriptor
    layer = layer.with_descriptor(Descriptor(NONDISTRIBUTABLE, plain.digest, plain.size))
    image = append_layers(read_image(location), [layer], created_by=[name])
    out = f"oci:{tmp / f'{name}-layout'}:1"
    parse_location(out).write(image, Options(platform=PLATFORM))
    return out


def test_a_base_with_foreign_layers_is_read_once_and_kept_whole(
        cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Foreign layers below, between and above the base's readable ones: the base's index
    and inventory are kept with one entry per layer, so the next export reuses them and
    reads no base layer; every way (uncached, the index reading what the scan did not)
    gives the same image and report, the foreign layers named as not inventoried."""
    lower = make_base(tmp_path)
    base = add_foreign_layer(add_layer(add_foreign_layer(lower, tmp_path, "middle"),
                                       tmp_path), tmp_path, "top")
    image = read_image(base)
    assert [layer.media_type == NONDISTRIBUTABLE for layer in image.layers] == \
        [False, True, False, True]
    rootfs = unpack_base(base, tmp_path / "rootfs")
    (rootfs / "etc" / "app.conf").write_text("mode=live\n")
    app = write_app(tmp_path / "app", base, f'rootfs = "{rootfs}"\n')
    digests = [str(layer.digest) for layer in image.layers]
    opened = count_layer_opens(monkeypatch)

    def export_counting(name: str, *extra: str) -> tuple[str, dict[str, Any], list[int], str]:
        opened.clear()
        report = tmp_path / f"{name}.json"
        code, stdout, stderr = cli("-v", "export", app, "-o", f"oci:{tmp_path / name}:1",
                                   "--json", "--report", report, *extra)
        assert code == 0, stderr
        content = json.loads(report.read_text())
        content.pop("image")
        return (json.loads(stdout)["digest"], content, [opened.count(d) for d in digests],
                stderr)

    first = export_counting("first")
    assert first[2] == [1, 0, 1, 0]
    assert first[1]["inventory"]["packages"] == 1        # idna, from base layer 3
    for i in (2, 4):
        assert any(f"layer {i} ({digests[i - 1][:19]}) was not inventoried" in warning
                   for warning in first[1]["warnings"]), first[1]["warnings"]
    again = export_counting("again")
    assert "rootfs index reused from the cache" in again[3]
    assert "damaged" not in again[3]
    assert again[2] == [0, 0, 0, 0]
    uncached = export_counting("uncached", "--no-cache")
    assert uncached[2] == [1, 0, 1, 0]
    shutil.rmtree(Path(os.environ["OCIFORGE_CACHE_DIR"]) / "v1" / "rootfs")
    unscanned = export_counting("unscanned")            # the index reads, the scan's kept
    assert unscanned[2] == [1, 0, 1, 0]
    reused = export_counting("reused")
    assert "damaged" not in reused[3] and reused[2] == [0, 0, 0, 0]
    for other in (again, uncached, unscanned, reused):
        assert other[:2] == first[:2]
