"""Proof: what a user installed into a running Debian application, exported and run.

The base is base_fixtures.debian_base_layout (Debian bookworm with python3, made
by mmdebstrap).  ``umoci unpack`` makes its root filesystem as a runtime would
(owners, modes, mtimes, device nodes), and the test changes it as a user would:
a Python package installed from a wheel built here into
/usr/local/lib/python3.11/dist-packages, an edited /etc/issue, a package's
documentation folder deleted and another's replaced (an opaque whiteout), a
file capability set, a shell history in /root, a license file in /opt, data in
/files.  ``ociforge export --rootfs`` of that folder on that base runs
in the real Docker Engine and under runc.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sys
import uuid
import zipfile
from pathlib import Path

import secretgen
from base_fixtures import ociforge
from docker_fixtures import DockerEngine
from tools import require_module, require_root, require_tool, run, run_bundle

from ociforge.app.inventory import LayerRef, take_inventory
from ociforge.model.image import Image
from ociforge.model.platform import Platform
from ociforge.options import Options
from ociforge.stores.locations import parse_location

PLATFORM = str(Platform.host())
SITE = "usr/local/lib/python3.11/dist-packages"
PROBE = "ociforge_rootfs_probe"
PROBE_VERSION = "0.3.1"
DELETED_DOC = "usr/share/doc/gzip"
REPLACED_DOC = "usr/share/doc/sed"      # every file in it replaced by one new one
# security.capability, revision 2, effective: cap_net_raw permitted
CAP_NET_RAW = bytes.fromhex("01000002" "00200000" "00000000" "00000000" "00000000")

CHECK = f"""\
import os, {PROBE}
print({PROBE}.GREETING)
print(open("/etc/issue").read().strip().splitlines()[-1])
for path in ("/{DELETED_DOC}", "/usr/share/doc/bash", "/root/.bash_history",
             "/opt/vendor/site.lic", "/opt/vendor/tool.sh", "/files/data.csv"):
    print(path, os.path.exists(path))
print(sorted(os.listdir("/{REPLACED_DOC}")))
print(os.getxattr("/opt/vendor/tool.sh", "security.capability").hex())
"""


def build_wheel(folder: Path, greeting: str) -> Path:
    """A tiny pure-Python wheel (the format pip installs), made here from nothing."""
    wheel = folder / f"{PROBE}-{PROBE_VERSION}-py3-none-any.whl"
    info = f"{PROBE}-{PROBE_VERSION}.dist-info"
    files = {
        f"{PROBE}/__init__.py": f"GREETING = {greeting!r}\n".encode(),
        f"{info}/METADATA": (f"Metadata-Version: 2.1\nName: {PROBE.replace('_', '-')}\n"
                             f"Version: {PROBE_VERSION}\nLicense-Expression: MIT\n").encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: ociforge-test\n"
                         b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


def live_debian(base: str, tmp: Path) -> tuple[Path, str, str]:
    """The base unpacked by umoci as a runtime would, then changed by a user."""
    umoci = require_tool("umoci")
    bundle = tmp / "live-bundle"
    run([umoci, "unpack", "--image", base.removeprefix("oci:"), str(bundle)], timeout=300)
    rootfs = bundle / "rootfs"
    greeting = f"probe {uuid.uuid4().hex[:8]}"
    marker = f"edited {uuid.uuid4().hex[:8]}"
    wheel = build_wheel(tmp, greeting)
    run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--disable-pip-version-check", "--target", str(rootfs / SITE), str(wheel)],
        timeout=300)
    with open(rootfs / "etc" / "issue", "a") as fh:
        fh.write(f"{marker}\n")
    assert (rootfs / DELETED_DOC).is_dir()
    shutil.rmtree(rootfs / DELETED_DOC)
    replaced = rootfs / REPLACED_DOC
    assert len(list(replaced.iterdir())) >= 2
    for child in replaced.iterdir():
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    (replaced / "NOTE").write_text("replaced\n")
    (rootfs / "root" / ".bash_history").write_text(
        f"export GITHUB_TOKEN={secretgen.TOKENS['github-token']()}\npip install {PROBE}\n")
    (rootfs / "opt" / "vendor").mkdir(parents=True)
    (rootfs / "opt" / "vendor" / "site.lic").write_text("SERVER licsrv 0 27000\n")
    (rootfs / "opt" / "vendor" / "tool.sh").write_text("#!/bin/sh\necho vendor\n")
    os.chmod(rootfs / "opt" / "vendor" / "tool.sh", 0o755)
    # a file capability (setcap cap_net_raw+ep): Docker's vfs driver keeps this attribute
    os.setxattr(rootfs / "opt" / "vendor" / "tool.sh", "security.capability", CAP_NET_RAW)
    (rootfs / "files").mkdir()
    (rootfs / "files" / "data.csv").write_text("x,y\n1,2\n")
    return rootfs, greeting, marker


def expected(greeting: str, marker: str, with_files: bool) -> list[str]:
    return [greeting, marker, f"/{DELETED_DOC} False", "/usr/share/doc/bash True",
            "/root/.bash_history False", "/opt/vendor/site.lic False",
            "/opt/vendor/tool.sh True", f"/files/data.csv {with_files}", "['NOTE']",
            CAP_NET_RAW.hex()]


def read_image(location: str) -> Image:
    image = parse_location(location).read(Options(platform=Platform.parse(PLATFORM)))
    assert isinstance(image, Image)
    return image


def test_installed_changes_run_in_docker_and_runc(debian_base_layout: str,
                                                  docker_engine: DockerEngine,
                                                  tmp_path: Path) -> None:
    require_root("umoci unpack and runc run")
    require_module("spdx_tools")
    umoci, runc = require_tool("umoci"), require_tool("runc")
    rootfs, greeting, marker = live_debian(debian_base_layout, tmp_path)
    app = tmp_path / "app"
    app.mkdir()
    (app / "ociforge.toml").write_text(f"""\
[app]
name = "live-debian"
base = "{debian_base_layout}"
platform = "{PLATFORM}"
rootfs = "{rootfs}"

[config]
entrypoint = ["python3", "-c", {json.dumps(CHECK)}]
""")
    tag = uuid.uuid4().hex[:8]
    outputs = {}
    for with_files in (False, True):
        name = f"ociforge-test/live-debian:{tag}-{int(with_files)}"
        layout = tmp_path / f"layout-{int(with_files)}"
        archive = tmp_path / f"live-{int(with_files)}.tar"
        sbom = tmp_path / f"sbom-{int(with_files)}.json"
        report = tmp_path / f"report-{int(with_files)}.json"
        done = ociforge("-v", "export", app, "--tag", name, "-o", f"oci:{layout}:1",
                        "-o", archive, "--sbom", sbom, "--report", report,
                        *(["--with-files"] if with_files else []))
        # the second export takes the base's index and inventory from the cache
        assert ("rootfs index reused from the cache" in done.stderr) is with_files
        outputs[with_files] = (name, layout, archive, sbom, report)

    base_layers = [str(layer.digest) for layer in read_image(debian_base_layout).layers]
    for with_files, (_, layout, _, sbom, report_path) in outputs.items():
        image = read_image(f"oci:{layout}:1")
        assert [str(layer.digest) for layer in image.layers[:len(base_layers)]] == base_layers
        report = json.loads(report_path.read_text())
        assert [layer["role"] for layer in report["layers"]] == \
            ["base", "rootfs", *(["files"] if with_files else [])]
        assert report["layers"][0]["rewritten"] is False
        left = {entry["path"]: entry["rule"] for entry in report["left_out_files"]}
        assert left["/opt/vendor/site.lic"] == "license-key-file"
        assert left["/root"] == "personal-folder"
        assert ("/files" in left) is not with_files
        # the base's inventory was taken while the rootfs index read it: the same as a
        # separate read of every layer
        again = take_inventory([(LayerRef(i, str(layer.digest), "x"), layer)
                                for i, layer in enumerate(image.layers)])
        assert report["inventory"]["packages"] == len(again.packages) > 100
        assert report["inventory"]["licenses"] == again.license_overview()
        packages = {p["name"]: p for p in json.loads(sbom.read_text())["packages"]}
        probe = packages[PROBE.replace("_", "-")]
        assert probe["versionInfo"] == PROBE_VERSION
        assert probe["licenseDeclared"] == "MIT"

    try:
        for with_files, (name, _, archive, _, _) in outputs.items():
            docker_engine.load(archive)
            assert docker_engine.run_image(name).splitlines() == \
                expected(greeting, marker, with_files)
    finally:
        docker_engine.remove(*(name for name, *_ in outputs.values()))

    for with_files, (_, layout, _, _, _) in outputs.items():
        bundle = tmp_path / f"bundle-{int(with_files)}"
        run([umoci, "unpack", "--image", f"{layout}:1", str(bundle)], timeout=300)
        proc = run_bundle(runc, bundle, f"ociforge-rootfs-{int(with_files)}")
        assert proc.stdout.splitlines() == expected(greeting, marker, with_files)
