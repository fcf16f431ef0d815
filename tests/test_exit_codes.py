"""Exit codes and messages are the same everywhere (issue 6 item 7).

0 success, 1 an operation failed, 2 bad input or usage; every expected
failure is one line on stderr starting with ``ociforge`` and never a
traceback.  The table covers typical bad inputs for every command the CLI
has (a test fails when a command is added without rows here), then
operation failures, then ``-vv``: the HTTP exchange shown, secrets masked.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from imagegen import layout_with_image
from progresslines import messages
from tools import closed_port

from ociforge.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent

BAD_INPUT: list[tuple[str, ...]] = [
    # global
    ("bogus-command",),
    ("--bogus",),
    # append
    ("append", "scratch"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--platform", "linux/"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--platform", "beos/amd64"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--label", "novalue"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--env", "=x"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--layer", "{tmp}/missing"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--layer", "/dev/null"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--layer", "{tmp}/fifo:/x"),
    ("append", "nope://x", "-o", "oci:{tmp}/o"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--compression", "lzma"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--entrypoint", '["a",'),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--expose", "99999"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--source-date-epoch", "-5"),
    ("append", "scratch", "-o", "{tmp}/dir"),
    ("append", "scratch", "-o", "oci:{tmp}/file"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--tag", "Bad:Tag"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--chunk-size", "lots"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--jobs", "0"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--ca-cert", "{tmp}/missing.pem"),
    # copy
    ("copy", "App:tag", "oci:{tmp}/o"),
    ("copy", "app:-tag", "oci:{tmp}/o"),
    ("copy", "oci:{tmp}/o"),
    ("copy", "oci:{tmp}/missing", "oci:{tmp}/o"),
    ("copy", "scratch", "scratch"),
    ("copy", "dir:{tmp}/x", "oci:{tmp}/o"),
    ("copy", "oci:{tmp}/src:t", "oci:{tmp}/o", "--platform", "linux/pdp11"),
    ("copy", "oci:{tmp}/src:t", "oci:{tmp}/o", "--timeout", "0"),
    ("copy", "oci:{tmp}/src:t", "oci:{tmp}/o", "--retries", "-1"),
    ("copy", "oci:{tmp}/src:nosuchtag", "oci:{tmp}/o"),
    ("verify", "oci:{tmp}/src:nosuchtag"),
    # inspect / verify
    ("inspect", "Bad//ref"),
    ("inspect", "oci:{tmp}/missing"),
    ("inspect", "oci:{tmp}/src:t", "--platform", "nope"),
    ("verify", "Bad//ref"),
    ("verify", "oci:{tmp}/missing"),
    # export
    ("export", "{tmp}/missing"),
    ("export", "{tmp}/dir"),
    ("export", "{tmp}/badapp"),
    ("export", "{tmp}/escapeapp"),
    # login / logout
    ("login", "a b", "-u", "x", "--password-stdin"),
    ("login", "127.0.0.1:9", "-u", "x"),
    ("login", "127.0.0.1:9", "-u", "x", "--password-stdin"),
    ("logout", "a b"),
    # keys and signatures
    ("keygen", "{tmp}/file/k", "--no-password"),
    ("keygen", "{tmp}/k"),
    ("keygen", "{tmp}/k", "--no-password", "--password-stdin"),
    ("sign", "--key", "{tmp}/missing.key", "oci:{tmp}/src:t"),
    ("sign", "--key", "{tmp}/file", "oci:{tmp}/src:t"),
    ("sign", "oci:{tmp}/src:t"),
    ("verify-signature", "--key", "{tmp}/missing.pub", "oci:{tmp}/src:t"),
    ("referrers", "Bad//x"),
    ("referrers", "oci:{tmp}/missing"),
    # managing exports
    ("tags", "oci:{tmp}/missing"),
    ("tags", "{tmp}/file"),
    ("tags", "out/hello"),
    ("rm", "oci:{tmp}/src"),
    ("rm", "oci:{tmp}/src:nosuchtag"),
    ("rm", "docker://127.0.0.1:9/a/b"),
    ("rm", "oci:{tmp}/src:t", "--jobs", "2"),
    ("diff", "oci:{tmp}/src:t"),
    ("diff", "oci:{tmp}/src:t", "oci:{tmp}/missing"),
    ("diff", "oci:{tmp}/src:t", "oci:{tmp}/src:t", "--platform", "all"),
    ("verify", "oci:{tmp}/src:t", "--report", "{tmp}/file"),
    # the cache
    ("cache",),
    ("cache", "prune", "--max-size", "lots"),
    ("cache", "prune", "--all", "--max-size", "1G"),
    ("copy", "oci:{tmp}/src:t", "oci:{tmp}/o", "--no-cache", "--cache-dir", "{tmp}/c"),
    ("copy", "oci:{tmp}/src:t", "oci:{tmp}/o", "--no-cache", "--offline"),
    ("copy", "oci:{tmp}/src:t", "127.0.0.1:9/a/b:t", "--offline"),
    ("export", "{tmp}/badapp", "--offline", "--no-cache"),
]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("not a layout\n")
    os.mkfifo(tmp_path / "fifo")
    layout_with_image(tmp_path / "src", (1000,))
    bad = tmp_path / "badapp"
    bad.mkdir()
    (bad / "ociforge.toml").write_text('[app]\nname = "app"\nlicensed = "no"\n')
    escape = tmp_path / "escapeapp"
    escape.mkdir()
    (escape / "ociforge.toml").write_text(
        '[app]\nname = "app"\n[[layers]]\nsrc = "../dir"\ndest = "/x"\n')
    return tmp_path


def _expand(argv: tuple[str, ...], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in argv]


def _snapshot(tmp: Path) -> set[str]:
    return {str(p.relative_to(tmp)) for p in tmp.rglob("*")}


def test_every_command_has_bad_input_rows() -> None:
    parser = build_parser()
    commands = set()
    for action in parser._actions:
        if isinstance(action.choices, dict):
            commands |= set(action.choices)
    covered = {row[0] for row in BAD_INPUT}
    assert commands <= covered, f"commands without bad-input rows: {commands - covered}"


@pytest.mark.parametrize("argv", BAD_INPUT, ids=[" ".join(r) for r in BAD_INPUT])
def test_bad_input_exits_2_with_one_line(argv: tuple[str, ...], workdir: Path, cli,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    before = _snapshot(workdir)
    try:
        code, out, err = cli(*_expand(argv, workdir))
    except SystemExit as exc:  # argparse exits from inside parse_args
        pytest.fail(f"SystemExit({exc.code}) escaped main()")
    assert code == 2, (code, out, err)
    assert "Traceback" not in err + out
    lines = messages(err)
    assert len(lines) == 1, err
    assert lines[0].startswith("ociforge") and "error:" in lines[0], lines[0]
    assert _snapshot(workdir) == before, "bad input leaves nothing behind"


OPERATION_FAILURES: list[tuple[str, ...]] = [
    ("copy", "127.0.0.1:{port}/a/b:t", "oci:{tmp}/o", "--retries", "0"),
    ("copy", "oci:{tmp}/src:t", "127.0.0.1:{port}/a/b:t", "--retries", "0"),
    ("inspect", "127.0.0.1:{port}/a/b:t", "--retries", "0"),
    ("verify", "127.0.0.1:{port}/a/b:t", "--retries", "0"),
    ("login", "127.0.0.1:{port}", "-u", "x", "--password-stdin", "--retries", "0"),
    ("verify", "oci:{tmp}/corrupt:t"),
    ("copy", "oci:{tmp}/corrupt:t", "oci:{tmp}/o:t"),
]


@pytest.mark.parametrize("argv", OPERATION_FAILURES, ids=[" ".join(r) for r in OPERATION_FAILURES])
def test_operation_failure_exits_1_with_one_line(argv: tuple[str, ...], workdir: Path, cli,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("secret\n"))
    monkeypatch.setenv("OCIFORGE_RETRY_BASE", "0")
    layout_with_image(workdir / "corrupt", (2000,))
    index = json.loads((workdir / "corrupt" / "index.json").read_text())
    manifest_blob = workdir / "corrupt" / "blobs" / "sha256" / \
        index["manifests"][0]["digest"].split(":")[1]
    layer = json.loads(manifest_blob.read_bytes())["layers"][0]["digest"].split(":")[1]
    (workdir / "corrupt" / "blobs" / "sha256" / layer).write_bytes(b"rotten")
    with closed_port() as port:
        args = [a.replace("{port}", str(port)) for a in _expand(argv, workdir)]
        code, out, err = cli(*args)
    assert code == 1, (code, out, err)
    assert "Traceback" not in err + out
    lines = messages(err)
    assert len(lines) == 1, err
    assert lines[0].startswith("ociforge: error:"), lines[0]
    assert not (workdir / "o" / "index.json").exists()


def test_verbose_shows_http_exchange_with_secrets_masked(tmp_path: Path,
                                                         tls_registry: Any) -> None:
    src, _ = layout_with_image(tmp_path / "src", (3000,))
    config = tmp_path / "docker"
    config.mkdir()
    auth = base64.b64encode(tls_registry.creds.encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {tls_registry.host: {"auth": auth}}}))
    env = dict(os.environ, DOCKER_CONFIG=str(config), OCIFORGE_RETRY_BASE="0",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    repo = f"{tls_registry.host}/verbose/app-{uuid.uuid4().hex[:6]}:t"
    proc = subprocess.run([sys.executable, "-m", "ociforge", "-vv", "copy", src, repo,
                           "--ca-cert", str(tls_registry.ca_path)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    for method in ("GET", "HEAD", "POST", "PUT"):
        assert method in err, f"{method} exchange not shown at -vv"
    assert "/v2/" in err and ("201" in err or "202" in err)
    assert tls_registry.password not in err and auth not in err
    assert "_state=" not in err or "_state=***" in err, "upload state tokens are masked"
    quiet = subprocess.run([sys.executable, "-m", "ociforge", "copy", src, repo,
                            "--ca-cert", str(tls_registry.ca_path)], env=env,
                           capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and "/v2/" not in quiet.stderr, "no HTTP log without -vv"


BROKEN_CREDENTIAL_FILES = {
    "not JSON": ("{", 2),
    "not an object": ("[]", 2),
    "auth not base64": ('{"auths": {"HOST": {"auth": "!!!notbase64"}}}', 2),
    "auth without user": ('{"auths": {"HOST": {"auth": "bm9jb2xvbg=="}}}', 2),
    "missing helper": ('{"credsStore": "nonexistent-helper"}', 2),
    "auths wrong type": ('{"auths": []}', 1),
    "entry wrong type": ('{"auths": {"HOST": "x"}}', 1),
    "not UTF-8": ("\udcff\udcfe", 2),
}


@pytest.mark.parametrize("case", sorted(BROKEN_CREDENTIAL_FILES))
def test_broken_credential_files_give_one_line(case: str, tmp_path: Path, cli,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from fakeregistry import FakeRegistry

    layout_with_image(tmp_path / "src", (1000,))
    fake = FakeRegistry(tmp_path / "src", "app", user="u", password="p").start()
    text, expected = BROKEN_CREDENTIAL_FILES[case]
    config = tmp_path / "docker"
    config.mkdir()
    (config / "config.json").write_text(text.replace("HOST", fake.host),
                                        errors="surrogateescape")
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    try:
        code, _out, err = cli("copy", f"{fake.host}/app:t", f"oci:{tmp_path / 'o'}:t",
                             "--retries", "0")
    finally:
        fake.stop()
    assert code == expected, (code, err)
    lines = messages(err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "o" / "index.json").exists()
