"""What ships, end to end (in-process CLI): licensed software refused unless asked for,
the report's inventory and license overview, and the SPDX 2.3 SBOM (validated with
spdx-tools, deterministic, attached to layouts and registries)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pkgmeta
import pytest
from progresslines import messages
from tools import require_module

from ociforge.layers.build import BuildSettings, LayerSource, build_layer, layer_from_tar
from ociforge.model.mutate import ConfigChanges, append_layers, configure, scratch
from ociforge.model.platform import Platform
from ociforge.options import Options
from ociforge.stores.locations import parse_location

PLATFORM = Platform.parse("linux/amd64")
SITE = "opt/venv/lib/python3.11/site-packages"


def make_app(root: Path, base: str = "scratch", extra_toml: str = "") -> Path:
    """An app whose runtime layer is a Python environment with real distributions."""
    app = root / "app"
    pkgmeta.copy_dist_infos(["requests", "certifi", "urllib3", "idna"], app / "venv" / SITE[9:])
    (app / "bin").mkdir()
    (app / "bin" / "run").write_text("#!/bin/sh\nexec python3 -m app\n")
    (app / "ociforge.toml").write_text(
        f'[app]\nname = "acme/model"\nbase = "{base}"\nplatform = "linux/amd64"\n'
        '[config]\ncmd = ["/app/run"]\n'
        '[[layers]]\nsrc = "venv"\ndest = "/opt/venv"\n'
        '[[layers]]\nsrc = "bin"\ndest = "/app"\n' + extra_toml)
    return app


def write_base(tmp: Path, *trees: Path, tars: tuple[Path, ...] = ()) -> str:
    settings = BuildSettings(epoch=1_700_000_000)
    layers = [layer_from_tar(t, settings).layer for t in tars]
    layers += [build_layer([LayerSource(t, "/")], settings).layer for t in trees]
    image = append_layers(scratch(PLATFORM), layers, epoch=1_700_000_000)
    image = configure(image, ConfigChanges(env={"PATH": "/usr/bin:/bin"}))
    location = f"oci:{tmp / 'base'}:1"
    parse_location(location).write(image, Options(platform=PLATFORM))
    return location


def outputs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")) if folder.exists() else []


# -- licensed software -------------------------------------------------------------------

def test_licensed_package_is_refused_naming_it_its_layer_and_evidence(
        cli: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    pkgmeta.gurobipy(app / "venv" / SITE[9:])
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, stderr = cli("export", app, "-o", out / "model.tar", "-o",
                               f"oci:{out / 'layout'}:1", "--report", out / "report.json",
                               "--sbom", out / "sbom.json")
    assert code == 2, stderr
    assert len(messages(stderr)) == 1 and "Traceback" not in stderr
    for needle in ("gurobipy 11.0.3", "python", "gurobipy-11.0.3.dist-info/METADATA",
                   "layer 1 (runtime venv, sha256:", "Gurobi Optimizer",
                   "classifier: License :: Other/Proprietary License", "License: Proprietary",
                   "--include-licensed", '[licenses] allow = ["gurobipy"]'):
        assert needle in stderr, needle
    assert outputs(out) == [], "nothing is written"
    assert stdout == ""


def test_include_licensed_exports_and_the_report_lists_it(cli: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    pkgmeta.gurobipy(app / "venv" / SITE[9:])
    report_path = tmp_path / "report.json"
    code, _, stderr = cli("export", app, "-o", tmp_path / "model.tar", "--report", report_path,
                          "--include-licensed")
    assert code == 0, stderr
    report = json.loads(report_path.read_text())
    (component,) = report["licensed_components"]
    assert component["name"] == "gurobipy" and component["allowed"] is False
    assert component["layer"] == 0 and component["layer_digest"] == report["layers"][0]["digest"]
    assert report["licensed"] == {"app": False, "exported_with": "--include-licensed",
                                  "components": 1}
    assert report["inventory"]["packages"] == 5
    assert report["inventory"]["ecosystems"] == {"python": 5}
    assert report["inventory"]["licenses"]["LicenseRef-Proprietary"] == 1
    assert "licensed gurobipy 11.0.3 (python, layer 1): exported with --include-licensed" \
        in stderr
    overview = next(line for line in stderr.splitlines() if line.startswith("  licenses "))
    assert "LicenseRef-Proprietary 1" in overview and "MIT" in overview


def test_licenses_allow_accepts_named_packages(cli: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path, extra_toml='[licenses]\nallow = ["GurobiPy", "mosek*"]\n')
    pkgmeta.gurobipy(app / "venv" / SITE[9:])
    report_path = tmp_path / "report.json"
    code, _, stderr = cli("export", app, "-o", tmp_path / "model.tar", "--report", report_path)
    assert code == 0, stderr
    report = json.loads(report_path.read_text())
    assert [c["allowed"] for c in report["licensed_components"]] == [True]
    assert "licensed" not in report
    assert "allowed by [licenses] allow" in stderr
    assert any("[licenses] allow 'mosek*'" in w for w in report["warnings"])


def test_licensed_product_in_a_base_layer(cli: Any, tmp_path: Path) -> None:
    tree = tmp_path / "opt-tree"
    matlab = tree / "usr" / "local" / "MATLAB" / "R2024a" / "bin" / "glnxa64"
    matlab.mkdir(parents=True)
    (matlab / "MATLAB").write_bytes(b"\x7fELF" + os.urandom(64))
    base = write_base(tmp_path, tree)
    app = make_app(tmp_path, base=base)
    code, _, stderr = cli("export", app, "-o", tmp_path / "x.tar")
    assert code == 2
    assert "MATLAB R2024a (binary, /usr/local/MATLAB/R2024a/bin/glnxa64/MATLAB in layer 1 " \
           "(base, sha256:" in stderr
    assert "MATLAB (MathWorks) is license-managed software" in stderr
    assert not (tmp_path / "x.tar").exists()


def test_files_the_rules_leave_out_are_not_listed(cli: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path, extra_toml='[secrets]\nfiles = ["**/internal-vendor"]\n')
    pkgmeta.gurobipy(app / "venv" / "internal-vendor")
    report_path = tmp_path / "report.json"
    code, _, stderr = cli("export", app, "-o", tmp_path / "x.tar", "--report", report_path)
    assert code == 0, stderr
    report = json.loads(report_path.read_text())
    assert "licensed_components" not in report and report["inventory"]["packages"] == 4
    assert {"path": "/opt/venv/internal-vendor", "rule": "secret-file-config",
            "layer": "runtime", "folder": True} in report["left_out_files"]


@pytest.mark.parametrize(("toml", "needle"), [
    ('[licenses]\nallow = [3]\n', "licenses.allow: must be an array of strings"),
    ('[licenses]\nallow = ["two words"]\n', "licenses.allow: 'two words' is not a name"),
    ('[secrets]\nallow_files = [""]\n', "secrets.allow_files: '' is not a name or glob"),
    ('[licenses]\nallow_files = ["x"]\n', "licenses.allow_files: unknown key"),
])
def test_allow_lists_are_checked_with_their_line(cli: Any, tmp_path: Path, toml: str,
                                                 needle: str) -> None:
    app = make_app(tmp_path, extra_toml=toml)
    code, _, stderr = cli("export", app, "-o", tmp_path / "x.tar")
    assert code == 2 and needle in stderr, stderr
    line = len((app / "ociforge.toml").read_text().splitlines()) - toml.count("\n") + 2
    assert f"ociforge.toml:{line}:" in stderr


# -- the SBOM ----------------------------------------------------------------------------

def _validate(path: Path) -> dict[str, Any]:
    require_module("spdx_tools")
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    messages = validate_full_spdx_document(parse_file(str(path)), "SPDX-2.3")
    assert messages == [], messages
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def test_sbom_of_a_debian_base_and_a_python_app(cli: Any, debian_base_layout: str,
                                                tmp_path: Path) -> None:
    app = make_app(tmp_path, base=debian_base_layout)
    sbom_path, report_path = tmp_path / "sbom.spdx.json", tmp_path / "report.json"
    code, stdout, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'lay'}:1", "--sbom",
                               sbom_path, "--report", report_path, "--source-date-epoch",
                               "1700000000", "--json")
    assert code == 0, stderr
    doc = _validate(sbom_path)
    digest = json.loads(stdout)["digest"]
    report = json.loads(report_path.read_text())
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["dataLicense"] == "CC0-1.0"
    assert doc["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    assert doc["documentNamespace"] == \
        f"https://ociforge.invalid/spdx/acme/model/sha256-{digest.split(':')[1]}"
    image = next(p for p in doc["packages"] if p["SPDXID"] == "SPDXRef-Image")
    assert image["checksums"] == [{"algorithm": "SHA256", "checksumValue": digest[7:]}]
    assert image["primaryPackagePurpose"] == "CONTAINER"
    packages = [p for p in doc["packages"] if p["SPDXID"] != "SPDXRef-Image"]
    assert len(packages) == report["inventory"]["packages"]
    by_name = {p["name"]: p for p in packages}
    assert by_name["bash"]["versionInfo"] and "GPL-3.0-or-later" in \
        by_name["bash"]["licenseDeclared"]
    assert by_name["libc6"]["licenseDeclared"] == "NOASSERTION"  # a free-form copyright file
    assert by_name["requests"]["licenseDeclared"] == "Apache-2.0"
    base_digest = report["layers"][0]["digest"]
    assert f"layer 1 ({base_digest}) at /var/lib/dpkg/status" in by_name["bash"]["sourceInfo"]
    assert "layer 2 (" in by_name["requests"]["sourceInfo"]
    (ref,) = by_name["requests"]["externalRefs"]
    assert ref["referenceCategory"] in ("PACKAGE-MANAGER", "PACKAGE_MANAGER")  # both are 2.3
    assert (ref["referenceType"], ref["referenceLocator"]) == (
        "purl", f"pkg:pypi/requests@{by_name['requests']['versionInfo']}")
    contains = [r for r in doc["relationships"] if r["relationshipType"] == "CONTAINS"]
    assert len(contains) == len(packages)
    declared = {e["licenseId"]: e for e in doc["hasExtractedLicensingInfos"]}
    used = {ref for p in packages for ref in
            re.findall(r"LicenseRef-[A-Za-z0-9.-]+", p["licenseDeclared"])}
    assert used and used == set(declared)
    assert all(e["extractedText"].strip() for e in declared.values())
    assert "packages 1" in stderr and "deb " in stderr


def test_sbom_bytes_depend_on_the_image_only(cli: Any, tmp_path: Path) -> None:
    app = make_app(tmp_path)
    runs = []
    for i in range(2):
        sbom = tmp_path / f"sbom{i}.json"
        code, stdout, stderr = cli("export", app, "-o", f"oci:{tmp_path / f'lay{i}'}:1",
                                   "--sbom", sbom, "--json")
        assert code == 0, stderr
        runs.append((json.loads(stdout)["digest"], sbom.read_bytes()))
    assert runs[0] == runs[1]
    _validate(tmp_path / "sbom0.json")
    code, _, _ = cli("export", app, "-o", f"oci:{tmp_path / 'lay3'}:1", "--sbom",
                     tmp_path / "sbom3.json", "--source-date-epoch", "86400")
    assert code == 0
    later = json.loads((tmp_path / "sbom3.json").read_text())
    assert later["creationInfo"]["created"] == "1970-01-02T00:00:00Z"  # the epoch, no clock


def test_attach_sbom_to_a_layout_and_a_registry(cli: Any, registry: Any,
                                                tmp_path: Path) -> None:
    app = make_app(tmp_path)
    layout = f"oci:{tmp_path / 'lay'}:1"
    remote = f"{registry.host}/acme/model:1"
    sbom = tmp_path / "sbom.json"
    code, stdout, stderr = cli("export", app, "-o", layout, "-o", remote, "--sbom", sbom,
                               "--attach-sbom", "--attach-report", "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert len(result["attached_sboms"]) == 2 and "attached sbom" in stderr
    for where in (layout, remote):
        code, listed, _ = cli("referrers", where, "--artifact-type", "application/spdx+json",
                              "--json")
        assert code == 0
        (entry,) = json.loads(listed)["referrers"]
        assert json.loads(listed)["subject"] == result["digest"]
        code, fetched, _ = cli("referrers", where, "--fetch", entry["digest"])
        assert code == 0 and fetched.encode() == sbom.read_bytes()
        code, everything, _ = cli("referrers", where, "--json")
        types = {r["artifactType"] for r in json.loads(everything)["referrers"]}
        assert types == {"application/spdx+json",
                         "application/vnd.ociforge.export-report.v1+json"}


def test_sbom_options_are_checked_before_anything_is_written(cli: Any, tmp_path: Path,
                                                             unwritable: Path) -> None:
    app = make_app(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    code, _, stderr = cli("export", app, "-o", out / "x.tar", "--sbom", unwritable / "s.json")
    assert code == 2 and "--sbom" in stderr
    code, _, stderr = cli("export", app, "-o", out / "x.tar", "--attach-sbom")
    assert code == 2 and "x.tar" in stderr
    code, _, stderr = cli("export", app, "-o", out / "x.tar", "--sbom", out / "x.tar")
    assert code == 2 and "same file" in stderr
    assert outputs(out) == []
