"""``ociforge verify SRC --report FILE``: an export report checked against the image."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello"


def _export(cli: Any, tmp_path: Path, name: str, *extra: str) -> tuple[str, Path]:
    out = f"oci:{tmp_path / 'lay'}:{name}"
    report = tmp_path / f"{name}.json"
    code, _, err = cli("export", HELLO, "-o", out, "--report", report, *extra)
    assert code == 0, err
    return out, report


def test_a_report_matches_its_image(cli, tmp_path: Path, registry) -> None:
    image, report = _export(cli, tmp_path, "app")
    code, out, err = cli("verify", image, "--report", report, "--json")
    assert code == 0, err
    result = json.loads(out)
    doc = json.loads(report.read_text())
    assert result["ok"] is True and result["report"] == {
        "path": str(report), "report_digest": doc["report_digest"], "ok": True,
        "problems": []}
    code, out, err = cli("verify", image, "--report", report)
    assert code == 0 and f"report {report} matches" in out

    # the same image elsewhere (digest unchanged) still matches its report
    ref = f"{registry.host}/report/app-{secrets.token_hex(3)}:1"
    assert cli("copy", image, ref)[0] == 0
    code, _, err = cli("verify", ref, "--report", report)
    assert code == 0, err


def test_a_changed_report_or_another_image_is_refused(cli, tmp_path: Path) -> None:
    image, report = _export(cli, tmp_path, "app")
    other, _other_report = _export(cli, tmp_path, "files", "--with-files")

    doc = json.loads(report.read_text())
    doc["dropped_env"] = []                         # someone hides what was dropped
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    code, out, err = cli("verify", image, "--report", forged, "--json")
    assert code == 1 and "changed after the export" in err
    result = json.loads(out)
    assert result["ok"] is False and result["report"]["ok"] is False
    assert result["exit_code"] == 1 and result["problems"] == []   # the image itself is fine

    code, out, err = cli("verify", other, "--report", report, "--json")
    assert code == 1
    problems = json.loads(out)["report"]["problems"]
    assert any("label" in p for p in problems)
    assert any("lists 2 layers, the image has 4 layers" in p for p in problems)

    # an image derived from the export keeps the label but is another image
    derived = f"oci:{tmp_path / 'lay'}:derived"
    code, _, err = cli("append", image, "--env", "X=1", "-o", derived)
    assert code == 0, err
    code, _, err = cli("verify", derived, "--report", report)
    assert code == 1 and "the report describes image" in err


def test_a_report_that_is_not_one_is_bad_input(cli, tmp_path: Path) -> None:
    image, _ = _export(cli, tmp_path, "app")
    (tmp_path / "x.json").write_text('{"app": "x"}')
    (tmp_path / "x.txt").write_text("not json")
    for path, says in ((tmp_path / "x.json", "not an ociforge export report"),
                       (tmp_path / "x.txt", "is not JSON"),
                       (tmp_path / "missing.json", "missing.json")):
        code, _, err = cli("verify", image, "--report", path)
        assert code == 2 and says in err, err
