"""Package metadata for inventory tests.

Python metadata is real: dist-info folders copied from the environment the tests
run in (``site_packages``).  Debian metadata is real too (``debian_rootfs_tar``
of base_fixtures.py).
apk, conda, R and npm metadata is written here in each tool's own format, as
those tools write it (field names, layout, paths), since the test machine has
no Alpine, conda, R or npm installation to copy from.
"""

from __future__ import annotations

import json
import shutil
import sysconfig
from pathlib import Path

SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])

# real distributions of the test environment and the license their metadata declares
REAL_PYTHON = {
    "requests": "Apache-2.0",       # License: Apache-2.0 (+ the Apache classifier)
    "certifi": "MPL-2.0",           # License: MPL-2.0
    "urllib3": "MIT",               # License-Expression: MIT
    "idna": "BSD-3-Clause",
    "packaging": "Apache-2.0 OR BSD-2-Clause",
    "zstandard": "BSD-3-Clause",
    "python_debian": "GPL-2.0-or-later",
    "license_expression": "Apache-2.0",
}


def dist_info(name: str) -> Path:
    found = sorted(SITE_PACKAGES.glob(f"{name}-*.dist-info"))
    assert found, f"{name} is not installed in the test environment ({SITE_PACKAGES})"
    return found[0]


def copy_dist_infos(names: list[str] | dict[str, str], site: Path) -> dict[str, str]:
    """Copy real dist-info folders into ``site``; returns {name: version}."""
    site.mkdir(parents=True, exist_ok=True)
    versions = {}
    for name in names:
        source = dist_info(name)
        shutil.copytree(source, site / source.name)
        versions[name] = source.name[len(name) + 1:-len(".dist-info")]
    return versions


def write_python(site: Path, name: str, version: str, headers: str) -> Path:
    """A dist-info as pip writes it for a wheel whose metadata has these headers."""
    folder = site / f"{name}-{version}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{headers}\n"
        f"Long description of {name}.\n")
    (folder / "RECORD").write_text("")
    (folder / "INSTALLER").write_text("pip\n")
    return folder


def gurobipy(site: Path, version: str = "11.0.3") -> Path:
    """gurobipy's metadata as its wheels declare it."""
    return write_python(site, "gurobipy", version,
                        "Summary: The Gurobi Optimizer Python interface\n"
                        "Home-page: https://www.gurobi.com\nLicense: Proprietary\n"
                        "Classifier: License :: Other/Proprietary License\n"
                        "Classifier: Programming Language :: Python :: 3\n")


APK_INSTALLED = """C:Q1AbC0Ixj7h5e2CYg4sP6RiZbN0ew=
P:musl
V:1.2.4-r2
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1696264441
c:8dd3d8a2b8cbb6f19d8f3b2a1b3b1c2c2e8a9f76
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755

C:Q1zDfmTmB41Y0eAF2K+a9ZSNw7cvI=
P:busybox
V:1.36.1-r15
A:x86_64
L:GPL-2.0-only
o:busybox
F:bin
R:busybox

C:Q1Xy1xTc4pAl3C6R8KzQq7nMhUQ0o=
P:ca-certificates-bundle
V:20230506-r0
A:x86_64
L:MPL-2.0 AND MIT
o:ca-certificates

"""


def write_apk(root: Path) -> None:
    path = root / "lib" / "apk" / "db" / "installed"
    path.parent.mkdir(parents=True)
    path.write_text(APK_INSTALLED)


def write_conda(env: Path, name: str, version: str, build: str, license_: str | None,
                channel: str = "https://conda.anaconda.org/conda-forge/linux-64") -> Path:
    """A conda-meta record as conda writes it (files and paths_data trimmed)."""
    meta = env / "conda-meta"
    meta.mkdir(parents=True, exist_ok=True)
    doc: dict[str, object] = {
        "build": build, "build_number": 0, "channel": channel, "constrains": [],
        "depends": ["libgcc-ng >=12"], "fn": f"{name}-{version}-{build}.conda",
        "license_family": "BSD", "md5": "0" * 32, "name": name, "subdir": "linux-64",
        "timestamp": 1700000000000, "version": version,
        "files": [f"lib/lib{name}.so"], "paths_data": {"paths": [], "paths_version": 1},
        "requested_spec": name, "url": f"{channel}/{name}-{version}-{build}.conda",
    }
    if license_ is not None:
        doc["license"] = license_
    path = meta / f"{name}-{version}-{build}.json"
    path.write_text(json.dumps(doc, indent=2))
    (meta / "history").write_text("==> 2024-01-01 00:00:00 <==\n")
    return path


def write_r(library: Path, name: str, version: str, license_: str, built: bool = True
            ) -> Path:
    """An installed R package's DESCRIPTION (R adds Built: when it installs one)."""
    folder = library / name
    folder.mkdir(parents=True)
    text = (f"Package: {name}\nType: Package\nTitle: {name} for tests\nVersion: {version}\n"
            f"Authors@R: person(\"A\", \"B\", role = c(\"aut\", \"cre\"))\n"
            f"Description: A package.\nLicense: {license_}\nEncoding: UTF-8\n"
            "NeedsCompilation: no\n")
    if built:
        text += "Built: R 4.3.1; ; 2024-01-01 00:00:00 UTC; unix\n"
    (folder / "DESCRIPTION").write_text(text)
    return folder


def write_npm(node_modules: Path, name: str, version: str, license_: object) -> Path:
    folder = node_modules / name
    folder.mkdir(parents=True)
    doc: dict[str, object] = {"name": name, "version": version, "main": "index.js"}
    if license_ is not None:
        doc["license"] = license_
    (folder / "package.json").write_text(json.dumps(doc, indent=2))
    return folder
