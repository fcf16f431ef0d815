"""Golden digests of a fixture build, and byte-identical outputs build after build.

The fixture tree is created here with fixed content; its mtimes, owners and
creation order are deliberately varied between builds.  The pinned digests
live in fixtures/golden/digests.json; after an intended format change,
regenerate them with ``OCIFORGE_UPDATE_GOLDEN=1 pytest tests/test_golden.py``
and say why in the commit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from imagediff import explain, first_difference
from tools import skip

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden" / "digests.json"
FILES: list[tuple[str, bytes, int]] = [
    ("app/main.py", b"print('hello from the golden image')\n", 0o644),
    ("app/run.sh", b"#!/bin/sh\nexec python3 /app/main.py\n", 0o755),
    ("app/data/table.csv", b"id,name\n1,alpha\n2,beta\n", 0o640),
    ("app/data/\xc3\xbcml\xc3\xa4ut.txt".encode().decode("utf-8"), b"non-ascii\n", 0o644),
    ("app/" + "long-directory-name-" * 4 + "/file.txt", b"long path\n", 0o600),
    ("etc/app.conf", b"[main]\nworkers = 2\n", 0o644),
]
BUILD_ARGS = [
    "--platform", "linux/amd64", "--env", "APP_MODE=golden", "--cmd", "/app/run.sh",
    "--workdir", "/app", "--label", "org.example.golden=yes", "--expose", "8080",
    "--annotation", "org.opencontainers.image.title=golden", "--tag", "golden/app:1",
]


def make_tree(root: Path, reverse: bool = False, epoch_offset: int = 0) -> Path:
    """The fixture tree; ``reverse`` creates it in the other order with other mtimes/owners."""
    items = list(reversed(FILES)) if reverse else FILES
    for i, (name, data, mode) in enumerate(items):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
        os.utime(path, (1_000_000 + epoch_offset + i, 1_000_000 + epoch_offset + i))
        if reverse and os.geteuid() == 0:
            os.chown(path, 4321, 8765)
    (root / "app" / "empty").mkdir(exist_ok=True)
    link = root / "app" / "current"
    if not link.is_symlink():
        link.symlink_to("data/table.csv")
    hard = root / "etc" / "app.conf.hardlink"
    if not hard.exists():
        os.link(root / "etc" / "app.conf", hard)
    for dirpath, _, _ in os.walk(root):
        os.chmod(dirpath, 0o755)  # folder modes are kept: don't let the umask pick them
        os.utime(dirpath, (2_000_000 + epoch_offset, 2_000_000 + epoch_offset))
    return root


def _build(cli: Any, tree: Path, out: Path, compression: str, epoch: str) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    code, stdout, err = cli(
        "append", "scratch", "--layer", f"{tree}:/", "--compression", compression,
        "--source-date-epoch", epoch, *BUILD_ARGS, "--json",
        "-o", f"oci:{out}/layout", "-o", f"oci-archive:{out}/image.oci.tar",
        "-o", f"{out}/image.tar", "-o", f"{out}/image.tar.gz",
    )
    assert code == 0, err
    return dict(json.loads(stdout))


def _all_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def _golden_values(cli: Any, tmp_path: Path) -> dict[str, Any]:
    tree = make_tree(tmp_path / "tree")
    values: dict[str, Any] = {}
    for compression in ("none", "gzip"):
        result = _build(cli, tree, tmp_path / f"out-{compression}", compression, "1700000000")
        (layer,) = result["layers"]
        values[compression] = {"image": result["digest"], "layer": layer["digest"],
                               "diff_id": layer["diff_id"]}
    return values


def test_golden_digests(cli, tmp_path: Path) -> None:
    values = _golden_values(cli, tmp_path)
    if os.environ.get("OCIFORGE_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    expected = json.loads(GOLDEN.read_text())
    # the uncompressed tar is independent of any compressor: check it first
    assert values["none"]["diff_id"] == expected["none"]["diff_id"]
    assert values["gzip"]["diff_id"] == expected["none"]["diff_id"]
    assert values == expected


def test_two_builds_give_identical_bytes_in_every_format(cli, tmp_path: Path) -> None:
    """On failure the message says what differs (documents, layers, tar entries, the
    source trees): a difference that shows up once under load is explained by its report."""
    first = make_tree(tmp_path / "a")
    second = make_tree(tmp_path / "b", reverse=True, epoch_offset=777)
    one = _build(cli, first, tmp_path / "out1", "gzip", "0")
    two = _build(cli, second, tmp_path / "out2", "gzip", "0")

    def why() -> str:
        return explain(tmp_path / "out1" / "layout", tmp_path / "out2" / "layout",
                       (first, second))

    assert one["digest"] == two["digest"], why()
    bytes_one, bytes_two = _all_bytes(tmp_path / "out1"), _all_bytes(tmp_path / "out2")
    assert set(bytes_one) == set(bytes_two)
    assert {"image.tar", "image.tar.gz", "image.oci.tar", "layout/index.json"} <= set(bytes_one)
    for name in bytes_one:
        assert bytes_one[name] == bytes_two[name], (
            f"{name}: {first_difference(bytes_one[name], bytes_two[name])}\n{why()}")


@pytest.mark.parametrize("epoch", ["0", "1234567890"])
def test_epoch_changes_the_digest_and_nothing_else_does(cli, tmp_path: Path, epoch: str) -> None:
    tree = make_tree(tmp_path / "t")
    base = _build(cli, tree, tmp_path / "o0", "gzip", "1700000000")["digest"]
    other = _build(cli, tree, tmp_path / "o1", "gzip", epoch)["digest"]
    assert other != base


def test_a_difference_is_explained_down_to_the_tar_entry(cli, tmp_path: Path) -> None:
    """The failure report of the test above names what differs, and only that."""
    first = make_tree(tmp_path / "a")
    second = make_tree(tmp_path / "b")
    (second / "app" / "run.sh").chmod(0o700)
    one = _build(cli, first, tmp_path / "out1", "gzip", "0")
    two = _build(cli, second, tmp_path / "out2", "gzip", "0")
    assert one["digest"] != two["digest"]
    report = explain(tmp_path / "out1" / "layout", tmp_path / "out2" / "layout",
                     (first, second))
    assert "manifest: differs" in report and "config: differs" in report
    assert "layer 0: digest" in report
    tar_part = report.partition("the tars differ (")[2].partition("source trees")[0]
    assert "entries, order equal):" in tar_part, report
    listed = [line.strip() for line in tar_part.splitlines()[1:] if line.endswith(":")]
    assert listed == ["app/run.sh:"], report
    assert "mode=755" in tar_part and "mode=700" in tar_part
    assert "app/run.sh: -rwxr-xr-x" in report and "| -rwx------" in report


def test_a_compression_difference_is_told_from_a_tar_difference(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zlib

    from ociforge.layers import compress

    if not compress.HAVE_ISAL:
        skip("ISA-L (a declared dependency) is not installed: zlib is the only deflater")
    tree = make_tree(tmp_path / "a")
    one = _build(cli, tree, tmp_path / "out1", "gzip", "0")
    monkeypatch.setattr(compress, "_deflate_lib", zlib)   # same tar, other deflate bytes
    two = _build(cli, tree, tmp_path / "out2", "gzip", "0")
    assert one["digest"] != two["digest"]
    report = explain(tmp_path / "out1" / "layout", tmp_path / "out2" / "layout")
    assert "the tars are equal: only the compressed bytes differ" in report, report
    assert one["layers"][0]["diff_id"] in report
