"""A base image's files are read for tokens exactly as the application's own files are.

The same windows (1 MiB, overlapping by 64 KiB), the same 64 MiB cap with a report
warning naming a longer file, the same binary-file rule (8 KiB read, no more), the
same rule order: a token at 3 MiB of a text file the base carries outside the OS
trees (/opt/app/settings.json) is left out of the base layer as it is left out of
an app layer.  The scan hands every byte of each entry to whoever observes it (the
rootfs index and the inventory) whatever the content rules read of it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
import secretgen as sg
from test_export_base_layers import OPTIONS, PLATFORM, entries, read_image

from ociforge.app import tokens
from ociforge.app.baselayers import filter_entries
from ociforge.app.policy import Policy
from ociforge.app.spec import ExtraPatterns
from ociforge.layers.build import BuildSettings, LayerSource, build_layer
from ociforge.layers.tarsafe import DataReader, TarEntry, TarReader
from ociforge.model.mutate import append_layers, scratch
from ociforge.stores.locations import parse_location

ROW = b"2024-05-01T10:00:00Z,station-17,12.5,ok\n"
EPOCH = 1_700_000_000


def _policy() -> Policy:
    return Policy.for_app(ExtraPatterns(), ExtraPatterns())


def rows(size: int) -> bytes:
    """CSV rows adding up to ``size`` bytes (or a few more)."""
    return ROW * (size // len(ROW) + 1)


def csv_with(token: str, at: int, tail: int = 4096) -> bytes:
    """CSV rows with ``token`` in a row at about byte ``at`` (its offset is the return's
    ``.index(token)``), then ``tail`` bytes more of rows."""
    return rows(at) + f"2024-05-01T10:00:01Z,station-17,{token},ok\n".encode() + rows(tail)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def unread_warning(path: str) -> str:
    return (f"{path} was read for tokens up to {tokens.TEXT_SCAN_CAP >> 20} MiB only: the "
            "rest of it was not scanned (leave it out, or split it, if it may hold secrets)")


# -- a base built by ociforge, exported ---------------------------------------------------

def test_a_token_deep_in_a_base_text_file_is_found_as_in_an_app_file(  # type: ignore[no-untyped-def]
        cli, tmp_path: Path) -> None:
    """A token at 3 MiB of /opt/app/settings.json: that file leaves the base layer (as its
    copy leaves the app's layer); one at 70 MiB of /srv/data/export.csv: past the cap,
    the file ships and the report's warnings name it.  A kept scan holds the warning
    too, and a kept scan without one (an older record) is not trusted."""
    deep, past_cap = sg.TOKENS["github-token"](), sg.TOKENS["gitlab-token"]()
    settings_json = csv_with(deep, 3 << 20)
    assert settings_json.index(deep.encode()) >= 3 << 20
    export_csv = csv_with(past_cap, 70 << 20)
    assert export_csv.index(past_cap.encode()) >= 70 << 20

    first, second = tmp_path / "base-1", tmp_path / "base-2"
    _write(first / "opt" / "app" / "settings.json", settings_json)
    _write(first / "opt" / "app" / "run.sh", b"#!/bin/sh\nexec python3 -m app\n")
    _write(first / "srv" / "data" / "small.csv", rows(100_000))
    # the operating system's own trees are not read for tokens in a base (as before)
    _write(first / "usr" / "share" / "doc" / "pkg" / "example.txt", settings_json)
    _write(second / "srv" / "data" / "export.csv", export_csv)
    build = BuildSettings(epoch=EPOCH)
    layers = [build_layer([LayerSource(first, "/")], build).layer,
              build_layer([LayerSource(second, "/")], build).layer]
    base = append_layers(scratch(PLATFORM), layers, created_by=["app", "data"], epoch=EPOCH)
    parse_location(f"oci:{tmp_path / 'base'}:1").write(base, OPTIONS)

    app = tmp_path / "app"
    _write(app / "conf" / "settings.json", settings_json)
    _write(app / "conf" / "other.json", b'{"mode": "fast"}\n')
    (app / "ociforge.toml").write_text(
        f'[app]\nname = "deep"\nbase = "oci:{tmp_path / "base"}:1"\n'
        'platform = "linux/amd64"\n[config]\nentrypoint = ["/opt/app/run.sh"]\n'
        '[[layers]]\nsrc = "conf"\ndest = "/app/conf"\n')

    def export(name: str, *extra: str) -> tuple[Any, dict[str, Any], str]:
        out, report = tmp_path / name, tmp_path / f"{name}.json"
        code, _, stderr = cli("-v", "export", app, "-o", f"oci:{out}", "--report", report,
                              *extra)
        assert code == 0, stderr
        doc = json.loads(report.read_text())
        doc["image"].pop("destinations", None)
        return read_image(f"oci:{out}:latest"), doc, stderr

    image, report, stderr = export("one")
    assert "scan reused" not in stderr
    left = {(e["path"], e["layer"]): e for e in report["left_out_files"]}
    assert left[("/opt/app/settings.json", "base")]["rule"] == "github-token"
    assert left[("/opt/app/settings.json", "base")]["base_layer"] == 0
    assert left[("/app/conf/settings.json", "runtime")]["rule"] == "github-token"
    assert not [path for path, _ in left if "export.csv" in path or "example.txt" in path]
    assert unread_warning("base layer 1: /srv/data/export.csv") in report["warnings"]
    # the first layer is rewritten without that one file; the second is kept as it is
    assert [entry["rewritten"] for entry in report["layers"][:2]] == [True, False]
    assert image.layers[1].digest == base.layers[1].digest
    before, after = entries(base, 0), entries(image, 0)
    assert after == [e for e in before if e[0] != "opt/app/settings.json"]
    assert "usr/share/doc/pkg/example.txt" in {name for name, _, _ in after}
    shipped = b"".join(data for i in range(len(image.layers)) if i != 1
                       for name, _, data in entries(image, i) if not name.startswith("usr/"))
    assert deep.encode() not in shipped

    # the scan is kept with its warning, and reused
    again, report_again, stderr = export("two")
    assert "scan reused" in stderr
    assert (again.digest, report_again) == (image.digest, report)

    # a kept scan without warnings (as an older ociforge kept them) is read again
    records = sorted(Path(os.environ["OCIFORGE_CACHE_DIR"]).glob("**/bases/*.json"))
    assert len(records) == 2
    for record in records:
        doc = json.loads(record.read_text())
        del doc["warnings"]
        record.write_text(json.dumps(doc))
    third, report_third, stderr = export("three")
    assert "scan reused" not in stderr
    assert (third.digest, report_third) == (image.digest, report)
    assert export("four", "--no-cache")[0].digest == image.digest


# -- the stream filter: windows, reads and the observer ------------------------------------

def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Observer:
    """Reads each entry's data as the index or inventory may: ``how`` is "all" (a small
    piece, then the rest), "none", or "some" (its first 100 KiB); keeps a digest."""

    def __init__(self, how: str):
        self.how = how
        self.seen: dict[str, tuple[int, str]] = {}

    def entry(self, entry: TarEntry, data: DataReader) -> None:
        if self.how == "none":
            return
        sha, size = hashlib.sha256(), 0
        pieces = [data.read(7)] + ([data.read(100 << 10)] if self.how == "some" else [])
        while self.how == "all" and (chunk := data.read(1 << 20)):
            pieces.append(chunk)
        for piece in pieces:
            sha.update(piece)
            size += len(piece)
        self.seen[entry.name] = (size, sha.hexdigest())

    def done(self) -> None:
        pass


def _seen(files: dict[str, bytes], how: str) -> dict[str, tuple[int, str]]:
    """What an ``Observer(how)`` should see of ``files``."""
    if how == "none":
        return {}
    cut = {"all": None, "some": 7 + (100 << 10)}[how]
    return {name: (len(data[:cut]), hashlib.sha256(data[:cut]).hexdigest())
            for name, data in files.items()}


OBSERVERS = [None, "all", "none", "some"]


def _scan(files: dict[str, bytes], how: str | None) -> list[tuple[str, str]]:
    observer = Observer(how) if how is not None else None
    found = filter_entries(io.BytesIO(_tar(files)), _policy(), "test", None,
                           observer=observer)
    if observer is not None:
        assert observer.seen == _seen(files, observer.how)
    return [(item.path, item.rule) for item in found.left_out]


@pytest.mark.parametrize("how", OBSERVERS)
def test_a_token_across_a_window_edge_of_a_base_file_is_found(how: str | None) -> None:
    """At each window's edge, and at each next window's first bytes: never cut in two;
    the byte before a window still decides whether a token starts there."""
    token = sg.TOKENS["github-token"]()
    window, span = tokens.TEXT_WINDOW, tokens.TOKEN_SPAN
    step = window - span
    files = {}
    for at in (window - 20, window - span - 1, window - span, window + step - 30,
               window + step - span - 1, window + 3 * step - 10):
        text = b"x" * (at - 1) + b" " + token.encode() + b" " + b"y" * (window // 2)
        assert text.index(token.encode()) == at
        files[f"srv/edge-{at}.txt"] = text
        files[f"srv/glued-{at}.txt"] = b"x" * at + token.encode() + b" " + b"y" * (window // 2)
    assert _scan(files, how) == [(f"/{name}", "github-token") for name in files
                                 if "edge" in name]


@pytest.mark.parametrize("how", OBSERVERS)
def test_an_observer_sees_every_byte_of_a_file_read_in_many_windows(how: str | None) -> None:
    """Files the content rules read window after window (to a token at 4 MiB, to the end
    of a clean 5 MiB file), between short ones: the observer reads each from its first
    byte, whatever it reads of it, and the verdicts are those made without it."""
    token = sg.TOKENS["slack-token"]()
    files = {"srv/a.txt": b"short\n",
             "srv/late.csv": csv_with(token, 4 << 20, tail=1 << 20),
             "srv/clean.csv": rows(5 << 20),
             "srv/b.bin": b"\0" + os.urandom(3 << 20),
             "srv/site.lic": b"licensed",
             "srv/z.txt": b"the end\n"}
    assert _scan(files, how) == [("/srv/late.csv", "slack-token"),
                                 ("/srv/site.lic", "license-key-file")]


def test_past_the_cap_a_base_file_is_named_whatever_the_observer_read(tmp_path: Path) -> None:
    """A text file longer than the cap, hashed to its end by an observer: the content rules
    took its first 64 MiB and one byte as the observer read them, and the scan warns."""
    big = tmp_path / "big.csv"
    with open(big, "wb") as fh:
        block = rows(1 << 20)
        while fh.tell() <= tokens.TEXT_SCAN_CAP:
            fh.write(block)
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(big, "srv/data/big.csv")
    size = big.stat().st_size
    for how in (None, "all"):
        observer = Observer(how) if how is not None else None
        with open(layer, "rb") as raw:
            found = filter_entries(raw, _policy(), "test", None, observer=observer)
        assert found.left_out == []
        assert found.warnings == [unread_warning("/srv/data/big.csv")]
        if observer is not None:
            assert observer.seen["srv/data/big.csv"][0] == size


def test_a_base_file_is_read_as_deep_as_the_rules_need(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """A binary file: its first 8 KiB, however long it is; a text file in an OS tree (no
    token rules there): whether it starts as a private key (256 bytes); a clean text
    file elsewhere: all of it, window after window; a license file by name: nothing."""
    read: dict[str, int] = {}
    current = TarReader.read

    def counting(self: TarReader, n: int = -1) -> bytes:
        data = current(self, n)
        read[name_of[0]] = read.get(name_of[0], 0) + len(data)
        return data

    name_of = [""]
    iterate = TarReader.__iter__

    def naming(self: TarReader):  # type: ignore[no-untyped-def]
        for entry in iterate(self):
            name_of[0] = entry.name
            yield entry

    monkeypatch.setattr(TarReader, "read", counting)
    monkeypatch.setattr(TarReader, "__iter__", naming)
    token = sg.TOKENS["github-token"]().encode()
    files = {"opt/model.bin": b"\0" + os.urandom(2 << 20) + b" " + token,
             "usr/share/doc/x/notes.txt": rows(3 << 20),
             "srv/notes.txt": rows(3 << 20),
             "opt/site.lic": rows(3 << 20)}
    found = filter_entries(io.BytesIO(_tar(files)), _policy(), "test", None)
    assert [item.path for item in found.left_out] == ["/opt/site.lic"]
    assert read == {"opt/model.bin": tokens.BINARY_PROBE,
                    "usr/share/doc/x/notes.txt": 256,
                    "srv/notes.txt": len(files["srv/notes.txt"])}


def test_the_rewrite_writes_kept_files_that_were_read_in_windows_unchanged() -> None:
    """The rewrite holds what the content rules read of an entry until it is decided:
    kept entries come out byte for byte, the one with a token goes."""
    token = sg.TOKENS["huggingface-token"]()
    files = {"srv/clean.csv": rows(5 << 20), "srv/late.csv": csv_with(token, 3 << 20),
             "srv/after.txt": b"after\n"}
    data = _tar(files)
    out = bytearray()
    found = filter_entries(io.BytesIO(data), _policy(), "test", out.extend)
    assert [(item.path, item.rule) for item in found.left_out] == [
        ("/srv/late.csv", "huggingface-token")]
    with tarfile.open(fileobj=io.BytesIO(bytes(out) + b"\0" * 1024)) as tar:
        kept = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert kept == {"srv/clean.csv": files["srv/clean.csv"], "srv/after.txt": b"after\n"}
