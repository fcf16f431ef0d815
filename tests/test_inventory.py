"""The inventory of an image from its layer tar streams (app/inventory).

Real metadata where the machine has it: dist-info folders of the test environment
and a Debian root filesystem built with mmdebstrap (``debian_rootfs_tar`` of
tests/base_fixtures.py).  Layers are built by ociforge (build_layer) or, for what
build_layer refuses to write (opaque whiteouts), by tarfile.
"""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pkgmeta
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ociforge.app.inventory import LayerRef, find_licensed, take_inventory
from ociforge.app.inventory.licenses import Licensing
from ociforge.app.inventory.model import Inventory, Package
from ociforge.app.inventory.rlang import r_statement
from ociforge.layers.build import BuildSettings, LayerSource, build_layer, layer_from_tar
from ociforge.model.layer import Layer

SITE = "usr/local/lib/python3.11/site-packages"


def layer(tree: Path, removes: tuple[str, ...] = ()) -> Layer:
    return build_layer([LayerSource(tree, "/")], BuildSettings(), removes=list(removes)).layer


def whiteouts(tmp: Path, *paths: str) -> Layer:
    """A layer that only deletes these paths from the layers below."""
    empty = tmp / f"empty-{len(list(tmp.glob('empty-*')))}"
    empty.mkdir()
    return layer(empty, removes=paths)


def tar_layer(tmp: Path, members: dict[str, bytes | None]) -> Layer:
    """A layer written by tarfile: name -> bytes (a file) or None (a folder)."""
    path = tmp / f"layer-{len(list(tmp.glob('layer-*')))}.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return layer_from_tar(path, BuildSettings()).layer


def take(*layers: Layer) -> Inventory:
    return take_inventory([(LayerRef(i, str(lay.digest), f"layer{i}"), lay)
                           for i, lay in enumerate(layers)])


def by_name(inventory: Inventory, ecosystem: str) -> dict[str, Package]:
    return {p.name: p for p in inventory.packages if p.ecosystem == ecosystem}


def _header(metadata: Path, key: str) -> str | None:
    match = re.search(rf"^{key}: (.+)$", metadata.read_text(), re.MULTILINE)
    return match.group(1).strip() if match else None


# -- Python ------------------------------------------------------------------------------

def test_python_packages_from_real_dist_info(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    pkgmeta.copy_dist_infos(list(pkgmeta.REAL_PYTHON), tree / SITE)
    lay = layer(tree)
    inventory = take(lay)
    found = {re.sub(r"[-_.]+", "-", p.name).lower(): p for p in inventory.packages}
    checked = 0
    for dist in pkgmeta.REAL_PYTHON:
        metadata = pkgmeta.dist_info(dist) / "METADATA"
        name = re.sub(r"[-_.]+", "-", _header(metadata, "Name") or "").lower()
        package = found[name]
        assert package.ecosystem == "python"
        assert package.version == _header(metadata, "Version")
        assert package.layer.digest == str(lay.digest)
        assert package.path == f"/{SITE}/{pkgmeta.dist_info(dist).name}/METADATA"
        assert package.purl == f"pkg:pypi/{name}@{package.version}"
        declared = _header(metadata, "License-Expression") or _header(metadata, "License")
        if declared and re.fullmatch(r"[A-Za-z0-9.+-]+(?: (?:OR|AND) [A-Za-z0-9.+-]+)*",
                                     declared):
            assert package.license.expression == declared, dist
            checked += 1
    assert checked >= 5, "the environment's metadata declares SPDX licenses"
    assert not find_licensed(inventory)


def test_python_license_sources_in_order(tmp_path: Path) -> None:
    site = tmp_path / "tree" / SITE
    pkgmeta.write_python(site, "exprpkg", "1.0", "License-Expression: mit OR apache-2.0\n"
                                                  "License: ignored when an expression exists\n")
    pkgmeta.write_python(site, "fieldpkg", "1.0", "License: Apache 2.0\n"
                         "Classifier: License :: OSI Approved :: MIT License\n")
    pkgmeta.write_python(site, "classpkg", "1.0",
                         "License: BSD\nClassifier: License :: OSI Approved :: MIT License\n")
    pkgmeta.write_python(site, "textpkg", "1.0",
                         "License: Copyright (c) 2020 ACME\n        \n        Permission is "
                         "hereby granted, free of charge, to any person\n")
    pkgmeta.write_python(site, "nothing", "1.0", "License: UNKNOWN\n")
    egg = site / "legacy.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: legacy\nVersion: 0.9\n"
                                  "License: GPLv3+\n")
    (site / "distutils_pkg-2.0.egg-info").write_text(
        "Metadata-Version: 1.0\nName: distutils-pkg\nVersion: 2.0\nLicense: ISC\n")
    found = by_name(take(layer(tmp_path / "tree")), "python")
    assert found["exprpkg"].license.expression == "MIT OR Apache-2.0"
    assert found["fieldpkg"].license.expression == "Apache-2.0"
    assert found["classpkg"].license.expression == "MIT"  # "BSD" alone has no one meaning
    text = found["textpkg"].license
    assert text.expression.startswith("LicenseRef-") and "Permission is" in text.refs[0].text
    assert found["nothing"].license.expression == "NOASSERTION"
    assert found["legacy"].license.expression == "GPL-3.0-or-later"
    assert found["distutils-pkg"].license.expression == "ISC"


# -- Debian ------------------------------------------------------------------------------

def _status_versions(tar_path: Path) -> tuple[dict[str, str], dict[str, bool]]:
    """(package -> version) from the status file, (package -> copyright is DEP-5)."""
    versions: dict[str, str] = {}
    dep5: dict[str, bool] = {}
    with tarfile.open(tar_path) as tar:
        for member in tar:
            name = member.name.lstrip("./")
            if name == "var/lib/dpkg/status":
                text = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
                for para in text.split("\n\n"):
                    fields = dict(re.findall(r"^(Package|Version): (.+)$", para, re.MULTILINE))
                    if "Package" in fields:
                        versions[fields["Package"]] = fields["Version"]
            elif re.fullmatch(r"usr/share/doc/[^/]+/copyright", name) and member.isfile():
                head = tar.extractfile(member).read(200)  # type: ignore[union-attr]
                dep5[name.split("/")[3]] = head.lstrip().lower().startswith(b"format:")
    return versions, dep5


@pytest.fixture(scope="module")
def debian(debian_rootfs_tar: Path) -> tuple[Layer, dict[str, str], dict[str, bool]]:
    versions, dep5 = _status_versions(debian_rootfs_tar)
    return layer_from_tar(debian_rootfs_tar, BuildSettings()).layer, versions, dep5


def test_dpkg_packages_and_dep5_licenses_of_a_real_debian(
        debian: tuple[Layer, dict[str, str], dict[str, bool]]) -> None:
    base, versions, dep5 = debian
    inventory = take(base)
    debs = by_name(inventory, "deb")
    assert set(debs) == set(versions) and len(debs) > 80
    assert all(debs[name].version == version for name, version in versions.items())
    assert inventory.distro is not None and inventory.distro.id == "debian"
    bash = debs["bash"]
    assert "GPL-3.0-or-later" in bash.license.expression
    assert bash.purl.startswith(f"pkg:deb/debian/bash@{bash.version.replace('+', '%2B')}"
                                "?arch=amd64&distro=debian-12")
    assert bash.path == "/var/lib/dpkg/status" and bash.layer.digest == str(base.digest)
    # every DEP-5 file gives an expression; every free-form one NOASSERTION, never a guess
    for name, package in debs.items():
        if dep5.get(name) is True:
            assert package.license.expression != "NOASSERTION", name
        elif dep5.get(name) is False:
            assert package.license.expression == "NOASSERTION", name
    assert any(v is False for v in dep5.values()) and sum(dep5.values()) > 40
    # names DEP-5 shares with SPDX under other spellings are mapped, the rest declared
    refs = {ref.license_id: ref for p in debs.values() for ref in p.license.refs}
    assert all(ref.text.strip() for ref in refs.values())
    assert not any(re.search(r"LicenseRef-(GPL|LGPL)-[23](\.\d)?\+?$", ref) for ref in refs)


def test_upper_layers_install_remove_and_whiteout(
        debian: tuple[Layer, dict[str, str], dict[str, bool]], tmp_path: Path) -> None:
    base, _, _ = debian
    assert base.path is not None
    with tarfile.open(base.path) as tar:
        status = tar.extractfile("./var/lib/dpkg/status").read().decode()  # type: ignore[union-attr]
    installed = tmp_path / "installed"
    (installed / "var/lib/dpkg").mkdir(parents=True)
    (installed / "var/lib/dpkg/status").write_text(
        status.rstrip("\n") + "\n\nPackage: acme-tool\nStatus: install ok installed\n"
        "Priority: optional\nArchitecture: amd64\nVersion: 2.1-1\n"
        "Description: a tool installed later\n")
    (installed / "usr/share/doc/acme-tool").mkdir(parents=True)
    (installed / "usr/share/doc/acme-tool/copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2024 ACME\nLicense: Expat\n")
    second = layer(installed, removes=("/usr/share/doc/bash",))
    debs = by_name(take(base, second), "deb")
    assert debs["acme-tool"].layer.index == 1 and debs["acme-tool"].license.expression == "MIT"
    assert debs["bash"].layer.index == 0, "unchanged packages keep the layer they came from"
    assert debs["bash"].license.expression == "NOASSERTION", "its copyright was deleted"
    assert debs["dash"].license.expression != "NOASSERTION"
    assert not by_name(take(base, second, whiteouts(tmp_path, "/var/lib/dpkg")), "deb")


# -- whiteouts ---------------------------------------------------------------------------

def test_whiteouts_and_opaque_folders_are_respected(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    pkgmeta.copy_dist_infos(["requests", "certifi", "idna"], lower / SITE)
    first = layer(lower)
    requests = pkgmeta.dist_info("requests").name
    deleted = whiteouts(tmp_path, f"/{SITE}/{requests}")
    inventory = take(first, deleted)
    names = set(by_name(inventory, "python"))
    assert "requests" not in names and {"certifi", "idna"} <= names
    assert [p.name for p in inventory.hidden] == ["requests"]  # its bytes are in layer 0
    urllib3 = pkgmeta.dist_info("urllib3")
    opaque = tar_layer(tmp_path, {
        SITE + "/": None, f"{SITE}/.wh..wh..opq": b"",
        f"{SITE}/{urllib3.name}/": None,
        f"{SITE}/{urllib3.name}/METADATA": (urllib3 / "METADATA").read_bytes()})
    assert set(by_name(take(first, deleted, opaque), "python")) == {"urllib3"}
    # a file put where a lower layer had a package's folder replaces the folder
    replaced = tar_layer(tmp_path, {f"{SITE}/{pkgmeta.dist_info('idna').name}": b"x"})
    assert "idna" not in by_name(take(first, replaced), "python")


def test_a_package_rewritten_unchanged_keeps_its_lower_layer(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    pkgmeta.copy_dist_infos(["certifi"], tree / SITE)
    again = layer(tree)
    other = tmp_path / "other"
    pkgmeta.write_python(other / SITE, "newpkg", "1.0", "License: MIT\n")
    found = by_name(take(again, layer(tree), layer(other)), "python")
    assert found["certifi"].layer.index == 0 and found["newpkg"].layer.index == 2


# -- apk, conda, R, npm ------------------------------------------------------------------

def test_apk_conda_r_and_npm(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    pkgmeta.write_apk(tree)
    (tree / "etc").mkdir()
    (tree / "etc/os-release").write_text('NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n')
    env = tree / "opt/conda"
    pkgmeta.write_conda(env, "numpy", "1.26.4", "py311h64a7726_0", "BSD-3-Clause")
    pkgmeta.write_conda(env / "envs/ml", "mkl", "2023.2.0", "h84fe81f_50496",
                        "LicenseRef-IntelSimplifiedSoftwareOct2022",
                        "https://repo.anaconda.com/pkgs/main/linux-64")
    pkgmeta.write_conda(env, "nolicense", "0.1", "0", None)
    library = tree / "usr/local/lib/R/site-library"
    pkgmeta.write_r(library, "jsonlite", "1.8.8", "MIT + file LICENSE")
    pkgmeta.write_r(library, "ggplot2", "3.4.4", "MIT + file LICENSE")
    pkgmeta.write_r(library, "Matrix", "1.6-5", "GPL (>= 2) | file LICENCE")
    pkgmeta.write_r(library, "base", "4.3.1", "Part of R 4.3.1")
    pkgmeta.write_r(library, "ownterms", "0.1", "file LICENSE")
    pkgmeta.write_r(tmp_path / "tree/src", "notinstalled", "0.1", "MIT", built=False)
    modules = tree / "app/node_modules"
    pkgmeta.write_npm(modules, "express", "4.18.2", "MIT")
    pkgmeta.write_npm(modules / "express/node_modules", "debug", "2.6.9", "MIT")
    pkgmeta.write_npm(modules, "@acme/internal", "1.0.0", "UNLICENSED")
    pkgmeta.write_npm(modules, "legacy", "0.1.0", None)
    (modules / "legacy/package.json").write_text(
        '{"name": "legacy", "version": "0.1.0", "licenses": [{"type": "MIT"}, '
        '{"type": "Apache-2.0"}]}')
    (modules / "express/lib").mkdir()
    (modules / "express/lib/package.json").write_text('{"type": "commonjs"}')
    inventory = take(layer(tree))
    apk = by_name(inventory, "apk")
    assert apk["busybox"].license.expression == "GPL-2.0-only"
    assert apk["ca-certificates-bundle"].license.expression == "MPL-2.0 AND MIT"
    assert apk["musl"].purl == "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1"
    conda = by_name(inventory, "conda")
    assert conda["numpy"].license.expression == "BSD-3-Clause"
    assert conda["numpy"].purl.startswith("pkg:conda/numpy@1.26.4?build=py311h64a7726_0")
    assert conda["mkl"].path == "/opt/conda/envs/ml/conda-meta/mkl-2023.2.0-h84fe81f_50496.json"
    assert conda["nolicense"].license.expression == "NOASSERTION"
    r = by_name(inventory, "r")
    assert set(r) == {"jsonlite", "ggplot2", "Matrix", "base", "ownterms"}
    assert r["jsonlite"].license.expression == "MIT"
    assert r["Matrix"].license.expression == "GPL-2.0-or-later OR LicenseRef-file-LICENCE"
    assert r["base"].license.expression == "GPL-2.0-only OR GPL-3.0-only"
    assert r["ownterms"].license.expression == "NOASSERTION"
    assert r["jsonlite"].purl == "pkg:cran/jsonlite@1.8.8"
    npm = by_name(inventory, "npm")
    assert set(npm) == {"express", "debug", "@acme/internal", "legacy"}
    assert npm["@acme/internal"].purl == "pkg:npm/%40acme/internal@1.0.0"
    assert npm["legacy"].license.expression == "MIT OR Apache-2.0"
    licensed = {c.package.name for c in find_licensed(inventory)}
    assert licensed == {"@acme/internal"}, "UNLICENSED is npm's word for proprietary"


def test_broken_metadata_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "opt/conda/conda-meta").mkdir(parents=True)
    (tree / "opt/conda/conda-meta/bad-1.0-0.json").write_text("{not json")
    bad = tree / SITE / "garbage-1.0.dist-info"
    bad.mkdir(parents=True)
    (bad / "METADATA").write_bytes(b"\x00\xff\xfe binary")
    pkgmeta.write_python(tree / SITE, "fine", "1.0", "License: MIT\n")
    inventory = take(layer(tree))
    assert [p.name for p in inventory.packages] == ["fine"]
    assert any("bad-1.0-0.json" in w for w in inventory.warnings)
    assert any("garbage-1.0.dist-info" in w for w in inventory.warnings)


# -- licenses ----------------------------------------------------------------------------

@pytest.mark.parametrize(("statement", "expected"), [
    ("GPL-2+", "GPL-2.0-or-later"), ("GPL-2", "GPL-2.0-only"), ("LGPL-2.1+", "LGPL-2.1-or-later"),
    ("BSD-3-clause", "BSD-3-Clause"), ("Expat", "MIT"), ("Apache 2.0", "Apache-2.0"),
    ("apache-2.0", "Apache-2.0"), ("GPL-2.0+", "GPL-2.0-or-later"),
    ("GPL-2+ or Artistic", "GPL-2.0-or-later OR Artistic-1.0-Perl"),
    ("GPL-3+ with Bison exception", "GPL-3.0-or-later WITH Bison-exception-2.2"),
    ("MIT AND (Apache-2.0 OR BSD-2-Clause)", "MIT AND (Apache-2.0 OR BSD-2-Clause)"),
    ("Apache Software License 2.0", "Apache-2.0"), ("MPL 2.0", "MPL-2.0"),
    ("", "NOASSERTION"), ("UNKNOWN", "NOASSERTION"),
])
def test_common_names_map_to_spdx(statement: str, expected: str) -> None:
    license_ = Licensing().statement(statement, "License")
    assert license_.expression == expected
    assert not license_.refs


def test_what_does_not_map_is_a_license_ref_with_its_text() -> None:
    texts = {"permissive": "Permission to use, copy, modify is granted."}
    license_ = Licensing().statement("GPL-2+ and permissive", "copyright License", texts)
    assert license_.expression.startswith("GPL-2.0-or-later AND LicenseRef-permissive-")
    (ref,) = license_.refs
    assert ref.text == texts["permissive"] and ref.name == "permissive"


@pytest.mark.parametrize(("statement", "proprietary"), [
    ("Proprietary", True), ("Commercial", True), ("EULA", True), ("UNLICENSED", True),
    ("LicenseRef-ProprietaryIntel", True), ("NVIDIA End User License Agreement", True),
    ("GPL-3.0-only OR LicenseRef-Commercial", False),  # the GPL may be chosen
    ("MIT AND LicenseRef-Proprietary", True),
    ("Creative Commons Attribution-NonCommercial 4.0", False), ("CC-BY-NC-4.0", False),
    ("Unlicense", False), ("MIT", False),
])
def test_proprietary_evidence(statement: str, proprietary: bool) -> None:
    assert bool(Licensing().statement(statement, "License").proprietary) is proprietary


@pytest.mark.parametrize(("text", "expected"), [
    ("GPL (>= 2)", "GPL-2.0-or-later"), ("GPL-2 | GPL-3", "GPL-2.0-only OR GPL-3.0-only"),
    ("MIT + file LICENSE", "MIT"), ("LGPL (>= 2.1)", "LGPL-2.1-or-later"),
    ("Apache License (== 2.0)", "Apache-2.0"), ("file LICENSE", "NOASSERTION"),
    ("BSD_3_clause + file LICENSE", "BSD-3-Clause"),
])
def test_r_license_syntax(text: str, expected: str) -> None:
    assert r_statement(text, Licensing(), "License").expression == expected


# -- licensed products -------------------------------------------------------------------

def test_license_managed_products_by_package_and_by_files(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    site = tree / SITE
    pkgmeta.gurobipy(site)
    pkgmeta.write_python(site, "saspy", "5.4.0", "License: Apache Software License\n"
                         "Classifier: License :: OSI Approved :: Apache Software License\n")
    pkgmeta.write_python(site, "Mosek", "10.1.21", "License: Other/Proprietary License\n")
    pkgmeta.write_python(site, "pyqt-like", "5.0", "License: GPL-3.0-only OR Commercial\n")
    pkgmeta.write_conda(tree / "opt/conda", "cplex", "22.1.1", "py311_0", "Proprietary")
    matlab = tree / "opt/matlab/R2023b/bin/glnxa64"
    matlab.mkdir(parents=True)
    (matlab / "MATLAB").write_bytes(b"\x7fELF")
    stata = tree / "usr/local/stata18"
    stata.mkdir(parents=True)
    (stata / "stata-mp").write_bytes(b"\x7fELF")
    inventory = take(layer(tree))
    found = {(c.package.ecosystem, c.package.name): c for c in find_licensed(inventory)}
    assert set(found) == {("python", "gurobipy"), ("python", "saspy"), ("python", "Mosek"),
                          ("conda", "cplex"), ("binary", "MATLAB"), ("binary", "Stata")}
    assert any("Other/Proprietary" in e for e in found[("python", "gurobipy")].evidence)
    assert any("Gurobi" in e for e in found[("python", "gurobipy")].evidence)
    matlab_pkg = found[("binary", "MATLAB")].package
    assert matlab_pkg.version == "R2023b"
    assert matlab_pkg.path == "/opt/matlab/R2023b/bin/glnxa64/MATLAB"
    assert found[("binary", "Stata")].package.version == "18"
    allowed = find_licensed(inventory, ["GurobiPy", "mosek", "stata*"])
    assert {c.package.name for c in allowed if c.allowed} == {"gurobipy", "Mosek", "Stata"}


def test_licensed_software_deleted_by_an_upper_layer_still_ships(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    folder = pkgmeta.gurobipy(tree / SITE)
    first = layer(tree)
    inventory = take(first, whiteouts(tmp_path, "/" + str(folder.relative_to(tree))))
    assert not inventory.packages
    (component,) = find_licensed(inventory)
    assert component.hidden and component.package.layer.index == 0
    assert any("still in layer 1's blob" in e for e in component.evidence)


def test_files_no_longer_in_the_layers_are_not_listed(tmp_path: Path) -> None:
    """The export's rules remove files before the inventory reads the layers: what a
    skip left out of a built layer is simply not there."""
    tree = tmp_path / "tree"
    pkgmeta.gurobipy(tree / "app/.ipynb_checkpoints/site")
    pkgmeta.write_python(tree / SITE, "kept", "1.0", "License: MIT\n")
    built = build_layer([LayerSource(tree, "/")], BuildSettings(),
                        skip=lambda path, host: "jupyter-checkpoints"
                        if path.endswith(".ipynb_checkpoints") else None).layer
    assert [p.name for p in take(built).packages] == ["kept"]


# -- hostile metadata --------------------------------------------------------------------

_PATHS = {"deb": ["var/lib/dpkg/status", "usr/share/doc/x/copyright"],
          "apk": ["lib/apk/db/installed"], "python": ["x/p-1.dist-info/METADATA"],
          "conda": ["opt/conda/conda-meta/p-1-0.json"], "r": ["lib/R/library/p/DESCRIPTION"],
          "npm": ["node_modules/p/package.json"], "os": ["etc/os-release"],
          "binary": ["opt/stata18/stata-mp"]}
_PREFIXES = [b"", b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n",
             b"Package: p\nVersion: 1\nBuilt: R\nLicense: ", b"Metadata-Version: 2.1\nName: p\n"
             b"Version: 1\nLicense-Expression: ", b"P:p\nV:1\nL:", b'{"name": "p", "version": "1", '
             b'"license": ']


@settings(max_examples=150, deadline=None)
@given(prefix=st.sampled_from(_PREFIXES), body=st.binary(max_size=400) | st.text(max_size=400)
       .map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_any_metadata_content_is_a_record_or_a_warning(prefix: bytes, body: bytes) -> None:
    from ociforge.app.inventory.scan import READERS, parse_metadata

    licensing = _LICENSING
    for reader in READERS:
        for path in _PATHS[reader.ecosystem]:
            warnings: list[str] = []
            parse_metadata(reader, path, prefix + body, licensing, warnings)
            assert all(len(w) < 400 for w in warnings)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_license_statement_gives_an_expression_or_noassertion(text: str) -> None:
    license_ = _LICENSING.statement(text, "License")
    declared = {ref.license_id for ref in license_.refs}
    for name in re.findall(r"LicenseRef-[A-Za-z0-9.-]+", license_.expression):
        assert name in declared
    assert license_.expression


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode))
def test_any_bytes_give_a_token_format_or_none(data: bytes) -> None:
    from ociforge.app import tokens

    found = tokens.find_in_bytes(data, tokens.TOKEN_FORMATS + tokens.PACKAGE_MANAGER_FORMATS)
    assert found is None or found.rule
    tokens.find_in_text(data.decode("utf-8", "replace"))


_LICENSING = Licensing()
