"""export: the image's own annotations (not its base's), and what the report records about
how it was exported (audit 2 #3, #8, #10, #11)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ociforge.app.report import REPORT_LABEL
from ociforge.model import mutate
from ociforge.model.image import Image
from ociforge.model.platform import Platform
from ociforge.options import Options
from ociforge.stores.layout import Layout
from ociforge.stores.locations import parse_location

OPTIONS = Options(platform=Platform.parse("linux/amd64"))
ANN = "org.opencontainers.image."


def _use_base(app: Path, base: str) -> None:
    toml = (app / "ociforge.toml").read_text().replace('base = "scratch"', f'base = "{base}"')
    (app / "ociforge.toml").write_text(toml)


def _annotations(where: str) -> dict[str, str]:
    image = parse_location(where).read(OPTIONS)
    assert isinstance(image, Image)
    return dict(image.manifest.get("annotations") or {})


def _annotated_base(tmp_path: Path) -> str:
    """A layout base carrying the annotations of an image built on yet another base."""
    base = mutate.annotate(mutate.scratch(Platform.parse("linux/amd64")), {
        ANN + "title": "site", ANN + "version": "1.0", ANN + "source": "https://x.example/s",
        ANN + "base.name": "docker.io/library/busybox:1.36",
        ANN + "base.digest": "sha256:" + "1" * 64})
    parse_location(f"oci:{tmp_path / 'base'}:1").write(base, OPTIONS)
    return str(base.digest)


def test_export_does_not_inherit_its_base_annotations(cli: Any, app: Path,
                                                      tmp_path: Path) -> None:
    base_digest = _annotated_base(tmp_path)
    _use_base(app, f"oci:{tmp_path / 'base'}:1")  # an absolute host path
    code, _, err = cli("export", app, "-o", f"oci:{tmp_path / 'out'}")
    assert code == 0, err
    notes = _annotations(f"oci:{tmp_path / 'out'}:latest")
    assert notes[ANN + "base.digest"] == base_digest
    assert ANN + "base.name" not in notes  # a path is not a name
    assert notes[ANN + "title"] == "hello" and ANN + "version" not in notes
    assert ANN + "source" not in notes
    assert str(tmp_path) not in json.dumps(notes)
    assert set(notes) == {ANN + "created", ANN + "title", ANN + "base.digest", REPORT_LABEL}


def test_export_title_and_version_come_from_the_tag(cli: Any, app: Path,
                                                    tmp_path: Path) -> None:
    code, _, err = cli("export", app, "-o", f"oci:{tmp_path / 't'}", "--tag", "acme/hello:2.1")
    assert code == 0, err
    notes = _annotations(f"oci:{tmp_path / 't'}:2.1")
    assert (notes[ANN + "title"], notes[ANN + "version"]) == ("hello", "2.1")
    code, _, err = cli("export", app, "-o", f"oci:{tmp_path / 'u'}", "--tag", "acme/web")
    assert code == 0, err
    notes = _annotations(f"oci:{tmp_path / 'u'}:latest")
    assert notes[ANN + "title"] == "web" and ANN + "version" not in notes


def test_export_on_a_registry_base_records_its_full_name(cli: Any, registry: Any, app: Path,
                                                         tmp_path: Path) -> None:
    base_digest = _annotated_base(tmp_path)
    remote = f"{registry.host}/prov/base:1"
    assert cli("copy", f"oci:{tmp_path / 'base'}:1", remote)[0] == 0
    _use_base(app, remote)
    code, _, err = cli("export", app, "-o", f"oci:{tmp_path / 'out'}")
    assert code == 0, err
    notes = _annotations(f"oci:{tmp_path / 'out'}:latest")
    assert notes[ANN + "base.name"] == remote and notes[ANN + "base.digest"] == base_digest
    assert ANN + "version" not in notes


def test_export_json_has_the_common_shape(cli: Any, app: Path, tmp_path: Path) -> None:
    code, out, err = cli("export", app, "-o", f"oci:{tmp_path / 'j'}", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert result["digest"] == str(Layout(tmp_path / "j").find("latest").digest)
    assert [d["digest"] for d in result["destinations"]] == [result["digest"]]


def test_the_report_records_a_licensed_export(cli: Any, app: Path, tmp_path: Path) -> None:
    code, _, err = cli("export", app, "-o", tmp_path / "plain.tar", "--report",
                       tmp_path / "plain.json", "--include-licensed")
    assert code == 0, err
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert "licensed" not in plain  # --include-licensed on an unlicensed app changes nothing
    toml = (app / "ociforge.toml").read_text().replace('name = "hello"',
                                                       'name = "hello"\nlicensed = true')
    (app / "ociforge.toml").write_text(toml)
    code, _, err = cli("export", app, "-o", tmp_path / "lic.tar", "--report",
                       tmp_path / "lic.json", "--include-licensed")
    assert code == 0, err
    licensed = json.loads((tmp_path / "lic.json").read_text())
    assert licensed["licensed"] == {"app": True, "exported_with": "--include-licensed"}
    assert licensed["report_digest"] != plain["report_digest"]
    assert "--include-licensed" in err


def test_allow_env_naming_no_variable_warns(cli: Any, app: Path, tmp_path: Path) -> None:
    code, _, err = cli("export", app, "-o", tmp_path / "w.tar", "--report", tmp_path / "w.json",
                       "--allow-env", "LM_LICENSE_FILE", "--allow-env", "LM_LICENCE_FILE")
    assert code == 0, err
    warning = "--allow-env LM_LICENCE_FILE: no such variable"
    assert warning in err
    report = json.loads((tmp_path / "w.json").read_text())
    assert any(w.startswith(warning) for w in report["warnings"])
    assert not any("LM_LICENSE_FILE:" in w for w in report["warnings"])  # that one exists
