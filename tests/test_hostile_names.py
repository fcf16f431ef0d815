"""File names that are not UTF-8, or hold control characters, in an app folder or a base layer.

Such a name is kept byte for byte in the layer, still goes through the license
and secret rules (``\\xff.lic`` is a ``.lic``), is written in the report JSON as
``\\xNN`` text with its exact bytes in ``path_bytes_b64`` (the report verifier
reads them back), and is escaped in the stderr summary, log lines and progress
lines so that no name can forge a line of output or send a terminal escape.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
from progresslines import messages

from ociforge.app.report import verify_report
from ociforge.display import bytes_of, human
from ociforge.layers.build import BuildSettings, LayerSource, build_layer
from ociforge.layers.decompress import open_decompressed
from ociforge.layers.tarsafe import TarReader
from ociforge.model.image import Image
from ociforge.model.mutate import append_layers, scratch
from ociforge.model.platform import Platform
from ociforge.options import Options
from ociforge.stores.locations import parse_location

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello"
PLATFORM = Platform.parse("linux/amd64")
OPTIONS = Options(platform=PLATFORM)
# a name that tries to end the summary line and print one of its own, in red
FORGED = b"x\nexported evil (app) for linux\n  wrote    \x1b[31mregistry.evil:1\x1b[0m.lic"
NAMES = {
    b"\xff.lic": "left out",                 # not UTF-8, still a license key
    FORGED: "left out",                      # control characters, still a .lic
    b"caf\xe9-latin1.txt": "kept",           # not UTF-8, kept
    b"tab\there\x7f.txt": "kept",            # control characters, kept
}


def _make_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        with open(os.path.join(os.fsencode(folder), name), "wb") as fh:
            fh.write(b"data of " + name)


def _layer_names(image: Image, index: int) -> list[bytes]:
    with image.layers[index].open() as raw:
        return [e.raw_name for e in TarReader(open_decompressed(raw))]  # type: ignore[arg-type]


def _check_human_output(stderr: str) -> None:
    assert "\x1b" not in stderr and "\\udc" not in repr(stderr)
    lines = messages(stderr)
    assert sum(line.startswith("exported ") for line in lines) == 1, stderr
    assert all(line.startswith("  ") for line in lines[1:]), stderr
    assert not any("registry.evil:1" in line and line.startswith("  wrote") for line in lines)


def _check_report(report_path: Path, layer: str, prefix: bytes) -> list[dict]:  # type: ignore[type-arg]
    data = report_path.read_bytes()
    data.decode("utf-8")                              # strict: the report is valid UTF-8
    assert b"\\udc" not in data                       # no surrogate escapes leak into JSON
    report = json.loads(data)
    assert verify_report(report)
    entries = [e for e in report["left_out_files"] if e["layer"] == layer]
    exact = {bytes_of(e) for e in entries}
    assert exact >= {prefix + b"\xff.lic", prefix + FORGED}, exact
    by_bytes = {bytes_of(e): e for e in entries}
    odd = by_bytes[prefix + b"\xff.lic"]
    assert odd["path"] == (prefix + b"\\xff.lic").decode()
    assert base64.b64decode(odd["path_bytes_b64"]) == prefix + b"\xff.lic"
    assert odd["rule"] == "license-key-file"
    forged = by_bytes[prefix + FORGED]
    assert forged["path"] == (prefix + FORGED).decode() and "path_bytes_b64" not in forged
    return entries  # type: ignore[no-any-return]



def _export_and_check(cli, app: Path, tmp_path: Path, layer: str, folder: bytes  # type: ignore[no-untyped-def]
                      ) -> str:
    """Export ``app``; the odd names under ``folder`` of the first layer are kept or left
    out as NAMES says, and the report (for ``layer``) and stderr show them safely.
    Returns stderr."""
    out, report_path = tmp_path / "out", tmp_path / "report.json"
    code, _, stderr = cli("export", app, "-o", f"oci:{out}", "--report", report_path)
    assert code == 0, stderr
    image = parse_location(f"oci:{out}:latest").read(OPTIONS)
    assert isinstance(image, Image)
    names = _layer_names(image, 0)
    for name, fate in NAMES.items():
        assert (folder + name in names) == (fate == "kept"), name
    _check_report(report_path, layer, b"/" + folder)
    _check_human_output(stderr)
    return stderr  # type: ignore[no-any-return]

def test_app_folder_names_are_kept_as_bytes_and_shown_escaped(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = tmp_path / "hello"
    shutil.copytree(EXAMPLE, app, symlinks=True)
    _make_files(app / "app")
    stderr = _export_and_check(cli, app, tmp_path, "runtime", b"app/")
    assert "/app/\\xff.lic (license-key-file)" in stderr
    assert "x\\nexported evil" in stderr and "\\x1b[31m" in stderr


def _app_on(tmp_path: Path, base: Image) -> Path:
    """``base`` written to oci:<tmp>/base:1 and an application of one small layer on it."""
    parse_location(f"oci:{tmp_path / 'base'}:1").write(base, OPTIONS)
    app = tmp_path / "app"
    (app / "run").mkdir(parents=True)
    (app / "run" / "start.sh").write_bytes(b"#!/bin/sh\n")
    (app / "ociforge.toml").write_text(
        f'[app]\nname = "odd"\nbase = "oci:{tmp_path / "base"}:1"\nplatform = "linux/amd64"\n'
        '[[layers]]\nsrc = "run"\ndest = "/app"\n')
    return app


def test_base_layer_names_are_kept_as_bytes_and_shown_escaped(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tree = tmp_path / "tree"
    _make_files(tree / "opt")
    layer = build_layer([LayerSource(tree, "/")], BuildSettings(epoch=1)).layer
    base = append_layers(scratch(PLATFORM), [layer], created_by=["odd names"], epoch=1)
    app = _app_on(tmp_path, base)
    _export_and_check(cli, app, tmp_path, "base", b"opt/")


def test_the_verifier_reads_the_exact_bytes_back(tmp_path: Path) -> None:
    """A report whose path_bytes_b64 says other bytes than its path is refused, even
    when its digest was recomputed to match."""
    from ociforge.app.report import LayerEntry, Report

    report = Report(app="a", mode="app", base_reference="scratch", base_digest=None,
                    platform="linux/amd64")
    report.layers.append(LayerEntry("runtime", "app", "sha256:" + "0" * 64, None, 1, 1, "x"))
    report.left_out_files.append({"path": "/app/\udcff.lic", "rule": "license-key-file",
                                  "layer": "runtime",
                                  "path_bytes_b64": base64.b64encode(b"/app/\xff.lic").decode()})
    doc = json.loads(report.to_json())
    assert verify_report(doc) and bytes_of(doc["left_out_files"][0]) == b"/app/\xff.lic"
    doc["left_out_files"][0]["path_bytes_b64"] = base64.b64encode(b"/app/\xfe.lic").decode()
    tampered = Report(app="a", mode="app", base_reference="scratch", base_digest=None,
                      platform="linux/amd64")
    tampered.layers = report.layers
    tampered.left_out_files = doc["left_out_files"]
    forged = json.loads(tampered.to_json())
    assert forged["report_digest"] != doc["report_digest"]
    assert not verify_report(forged)


def test_json_result_escapes_a_destination_that_is_not_utf8(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = os.fsdecode(os.fsencode(tmp_path) + b"/lay\xff")
    code, stdout, stderr = cli("append", "scratch", "-o", f"oci:{target}:v1", "--json")
    assert code == 0, stderr
    assert "\\udc" not in stdout
    assert json.loads(stdout)["destinations"][0]["location"].endswith("lay\\xff:v1")


def test_a_run_stopped_part_way_names_its_destinations_escaped(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The '(completed: ...; not completed: ...)' tail and the --json error object name
    destinations the user typed: one line on stderr, valid Unicode on stdout."""
    target = os.fsdecode(os.fsencode(tmp_path) + b"/lay\nociforge: forged\x1b[31m\xff")
    code, stdout, stderr = cli("append", "scratch", "-o", f"oci:{target}:1",
                               "-o", "docker-archive:/dev/full", "--json")  # ENOSPC
    assert code == 1, stderr
    assert len(messages(stderr)) == 1 and "\x1b" not in stderr, stderr
    assert "lay\\nociforge: forged\\x1b[31m\\xff:1; not completed: docker-archive:/dev/full)" \
        in stderr, stderr
    assert "\\udc" not in stdout
    result = json.loads(stdout)
    assert result["completed"] == [f"oci:{tmp_path}/lay\nociforge: forged\x1b[31m\\xff:1"]
    assert result["not_completed"] == ["docker-archive:/dev/full"]


def test_log_lines_and_errors_escape_control_characters(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ociforge.cli import _setup_logging

    _setup_logging(1)
    stream = io.StringIO()
    logger = logging.getLogger("ociforge")
    handler = logger.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    logging.getLogger("ociforge.test").info("reading %s", "a\nociforge: error: forged\x1b[0m")
    assert stream.getvalue() == "ociforge.test: reading a\\nociforge: error: forged\\x1b[0m\n"
    bad = tmp_path / "no\x1b[2Jsuch"
    code, _, stderr = cli("export", bad)
    assert code == 2 and "\x1b" not in stderr and stderr.count("\n") == 1, stderr


def test_progress_lines_escape_the_path_in_their_label() -> None:
    from ociforge.progress import JsonLines, PlainLines, Progress
    from ociforge.progress.tty import TtyView

    name = "writing /tmp/a\nb\x1b[2J\udcff"
    for sink, stream in ((PlainLines, io.StringIO()), (TtyView, io.StringIO())):
        view = sink(stream)  # type: ignore[operator]
        with Progress(view).task("write", name, 10) as task:
            task.advance(10)
            task.retry(2, 6, 1.0, "503 \x1b[31mred")
        view.close()
        text = stream.getvalue()
        assert "\x1b[2J" not in text and "\x1b[31m" not in text, text
        assert "a\\nb\\x1b[2J\\xff" in text, text
    stream = io.StringIO()
    with Progress(JsonLines(stream)).task("write", name, 10):
        pass
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["item"] == "writing /tmp/a\nb\x1b[2J\\xff"
                                   for line in lines)


@pytest.mark.parametrize(("text", "shown"), [
    ("plain", "plain"),
    ("\udcff.lic", "\\xff.lic"),
    (b"\xff\xfe".decode("utf-8", "surrogateescape"), "\\xff\\xfe"),
    ("a\nb\tc\rd\x00e\x7ff\x85g", "a\\nb\\tc\\rd\\x00e\\x7ff\\x85g"),
    ("line\u2028sep rtl\u202eoverride", "line\\u2028sep rtl\\u202eoverride"),
    ("caf\u00e9 \u65e5\u672c", "caf\u00e9 \u65e5\u672c"),
])
def test_human_escapes_exactly_what_could_forge_a_line(text: str, shown: str) -> None:
    assert human(text) == shown


def test_a_base_config_with_lone_surrogates_and_control_characters(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """JSON may spell strings that are not Unicode ("\\ud800"); a base config holding
    them (in history and in a dropped variable) exports, and the outputs stay valid."""
    from ociforge.model.descriptor import Descriptor
    from ociforge.model.digest import Digest

    empty = scratch(PLATFORM)
    config = dict(empty.config)
    config["history"] = [{"created_by": "echo \udcff \ud800 s3cr3t-\ud800 done",
                          "empty_layer": True}]
    config["config"] = {"Env": ["ODD\x1b[2J_TOKEN=1", "X_TOKEN=s3cr3t-\ud800",
                                "PLAIN=caf\ud800"]}
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest = dict(empty.manifest)
    manifest["config"] = Descriptor(manifest["config"]["mediaType"],
                                    Digest.of_bytes(config_bytes), len(config_bytes)).to_dict()
    base = Image(json.dumps(manifest, sort_keys=True).encode(), config_bytes, (), None)
    app = _app_on(tmp_path, base)
    report_path = tmp_path / "report.json"
    code, _, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'out'}", "--report", report_path)
    assert code == 0, stderr
    report = json.loads(report_path.read_bytes().decode("utf-8"))
    assert verify_report(report)
    assert {d["name"] for d in report["dropped_env"]} == {"ODD\x1b[2J_TOKEN", "X_TOKEN"}
    assert "ODD\\x1b[2J_TOKEN" in stderr and "\x1b" not in stderr
    image = parse_location(f"oci:{tmp_path / 'out'}:latest").read(OPTIONS)
    assert isinstance(image, Image)
    assert image.config["history"][0]["created_by"] == "echo \udcff \ud800 *** done"
    assert "Env" not in image.config["config"] or not any(
        "TOKEN" in item for item in image.config["config"]["Env"])
    assert "PLAIN=caf\ud800" in image.config["config"]["Env"]  # judged by value, and kept
