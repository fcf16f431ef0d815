"""Machine-readable output: one JSON object per run, one naming style, all documented.

With --json a failing command prints exactly one JSON object on stdout,
``{"error": ..., "exit_code": N}`` (plus the command's own report where it has
one), whatever failed: usage, bad input, a failed operation, a failed check.
Every command's success output uses one naming style (image-spec fields as
the spec spells them, ``mediaType``; ociforge's own keys in snake_case) and
is listed in docs/cli.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from registry_fixtures import RegistryServer

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello"
SPEC_KEYS = {"mediaType", "artifactType"}
OWN_KEY = re.compile(r"[a-z][a-z0-9_]*")
# values that are the image's own data, keyed as the image has them
VERBATIM = {"annotations", "config", "history", "labels"}


def _keys(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key
            if key not in VERBATIM:
                yield from _keys(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item, f"{path}[]")


def _check_style(result: Any, command: str) -> None:
    bad = [f"{path}.{key}" for path, key in _keys(result)
           if key not in SPEC_KEYS and not OWN_KEY.fullmatch(key)]
    assert not bad, f"{command}: keys outside the naming style: {bad}"


def _one_object(out: str) -> dict[str, Any]:
    decoder = json.JSONDecoder()
    text = out.strip()
    value, end = decoder.raw_decode(text)
    assert text[end:].strip() == "", f"more than one JSON value on stdout: {out!r}"
    assert isinstance(value, dict)
    return value


@pytest.fixture
def image_layout(cli: Any, tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "hello.txt").write_text("hello\n")
    code, _, err = cli("append", "scratch", "--layer", f"{tree}:/srv", "-o",
                       f"oci:{tmp_path / 'lay'}:1", "--platform", "linux/amd64")
    assert code == 0, err
    return tmp_path / "lay"


@pytest.mark.parametrize("argv, code, says", [
    (["append", "scratch", "--json"], 2, "the following arguments are required: -o"),
    (["copy", "oci:/nonexistent/x:1", "oci:{tmp}/o:1", "--json"], 2, "does not exist"),
    (["--json", "inspect", "oci:{tmp}", "--platform", "linux/!!"], 2, "platform"),
    (["copy", "oci:{lay}:1", "docker-archive:{tmp}", "--json"], 2, "is a directory"),
    (["verify", "oci:{lay}:nosuchtag", "--json"], 2, "no tag 'nosuchtag'"),
    (["copy", "oci:{lay}:1", "127.0.0.1:1/x/y:1", "--json", "--retries", "0"], 1,
     "127.0.0.1:1"),
], ids=["usage", "missing-source", "bad-platform", "dir-output", "unknown-tag",
        "unreachable-registry"])
def test_a_failing_command_prints_one_error_object(
        cli: Any, tmp_path: Path, image_layout: Path, argv: list[str], code: int,
        says: str) -> None:
    args = [a.format(tmp=tmp_path, lay=image_layout) for a in argv]
    got, out, err = cli(*args)
    assert got == code, err
    line = err.strip().splitlines()[-1]
    result = _one_object(out)
    assert result["exit_code"] == code
    assert says in result["error"]
    assert line.endswith(result["error"]), (line, result)
    assert not result["error"].startswith("ociforge"), "the message, without the prefix"
    assert set(result) == {"error", "exit_code"}


def test_failed_verify_is_its_report_and_the_error_in_one_object(
        cli: Any, image_layout: Path) -> None:
    index = json.loads((image_layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((image_layout / "blobs" / "sha256" /
                           manifest_digest.split(":")[1]).read_text())
    layer = image_layout / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]
    data = bytearray(layer.read_bytes())
    data[-1] ^= 0xFF
    layer.write_bytes(bytes(data))
    code, out, err = cli("verify", f"oci:{image_layout}:1", "--json")
    assert code == 1, err
    result = _one_object(out)
    assert result["ok"] is False and result["exit_code"] == 1
    assert result["digest"] == manifest_digest
    assert result["problems"] and result["error"] in err
    _check_style(result, "verify")


def test_failed_signature_check_is_one_object(cli: Any, tmp_path: Path,
                                              image_layout: Path) -> None:
    assert cli("keygen", tmp_path / "k", "--no-password")[0] == 0
    code, out, _ = cli("verify-signature", f"oci:{image_layout}:1", "--key",
                       tmp_path / "k.pub", "--json")
    assert code == 1
    result = _one_object(out)
    assert result["ok"] is False and result["signatures"] == []
    assert result["exit_code"] == 1 and "no signatures found" in result["error"]
    assert result["digest"].startswith("sha256:")


def test_every_success_output_uses_one_naming_style(
        cli: Any, tmp_path: Path, image_layout: Path, registry: RegistryServer) -> None:
    lay = f"oci:{image_layout}:1"
    tree = tmp_path / "more"
    tree.mkdir()
    (tree / "f").write_text("f")
    runs = {
        "append": ["append", lay, "--layer", f"{tree}:/more", "-o", f"oci:{tmp_path / 'a'}:1"],
        "copy": ["copy", lay, str(tmp_path / "c.tar")],
        "export": ["export", HELLO, "-o", f"oci:{tmp_path / 'e'}:1", "--attach-report",
                   "--report", str(tmp_path / "report.json")],
        "inspect": ["inspect", lay],
        "verify": ["verify", lay],
        "keygen": ["keygen", str(tmp_path / "key"), "--no-password"],
        "sign": ["sign", lay, "--key", str(tmp_path / "key.key")],
        "verify-signature": ["verify-signature", lay, "--key", str(tmp_path / "key.pub")],
        "referrers": ["referrers", f"oci:{tmp_path / 'e'}:1"],
        "login": ["login", registry.host, "-u", "someone", "--password-stdin"],
        "logout": ["logout", registry.host],
        "diff": ["diff", lay, f"oci:{tmp_path / 'a'}:1"],
        "tags": ["tags", f"oci:{tmp_path / 'a'}"],
        "rm": ["rm", f"oci:{tmp_path / 'a'}:1"],
    }
    import io
    import sys

    for command, argv in runs.items():
        if command == "login":
            sys.stdin = io.StringIO("any-password\n")
        try:
            code, out, err = cli(*argv, "--json")
        finally:
            sys.stdin = sys.__stdin__
        assert code == 0, (command, err)
        if command == "tags":  # a list of tags, as documented
            assert json.loads(out) == ["1"]
            continue
        result = _one_object(out)
        _check_style(result, command)
        assert "media_type" not in json.dumps(result)
    report = json.loads((tmp_path / "report.json").read_text())
    _check_style({k: v for k, v in report.items() if k not in ("tables", "rules")}, "report")
    assert "media_type" not in json.dumps(report) and report["image"]["mediaType"]


def test_docs_list_every_command_s_json_output() -> None:
    from ociforge.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    commands = set(sub.choices)  # type: ignore[attr-defined]
    text = (ROOT / "docs" / "cli.md").read_text()
    table = text[text.index("**Success output, per command:**"):]
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", table, re.MULTILINE))
    assert commands <= documented, sorted(commands - documented)
