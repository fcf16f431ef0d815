"""Hostile input is refused with one clear line and exit 2 (issue 6 item 4).

Every hostile tar here is built in the test with tarfile (or by hand where
tarfile would refuse to write it).  Each one is tried three ways: straight
through the safe reader (ociforge.layers.tarsafe), as a layer given to
``ociforge append --layer``, and wrapped in a docker-archive / oci-archive
that ``ociforge copy`` reads.  Refusal means: exit 2, one stderr line, no
traceback and nothing written at the destination.  Symlinks, absolute ones
included, are ordinary image content: kept, never followed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from progresslines import messages

from ociforge.errors import HostileInputError, InvalidInputError

Entry = tuple[str, bytes, str, str]  # name, data, type ("file"|"dir"|"sym"|"link"), linkname


def tar_bytes(entries: list[Entry], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, data, kind, link in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                         "link": tarfile.LNKTYPE}[kind]
            info.mode = 0o755 if kind == "dir" else 0o777
            info.linkname = link
            tar.addfile(info)
    return out.getvalue()


def f(name: str, data: bytes = b"x") -> Entry:
    return (name, data, "file", "")


def d(name: str) -> Entry:
    return (name, b"", "dir", "")


def sym(name: str, target: str) -> Entry:
    return (name, b"", "sym", target)


def hard(name: str, target: str) -> Entry:
    return (name, b"", "link", target)


def _raw_header(name: bytes, size_field: bytes, typeflag: bytes = b"0",
                linkname: bytes = b"") -> bytes:
    """A ustar header block with any size field (tarfile refuses absurd values)."""
    block = bytearray(512)
    block[0:len(name)] = name
    block[100:108] = b"0000644\0"
    block[108:116] = b"0000000\0"
    block[116:124] = b"0000000\0"
    block[124:136] = size_field
    block[136:148] = b"00000000000\0"
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[157:157 + len(linkname)] = linkname
    block[257:263] = b"ustar\0"
    block[263:265] = b"00"
    checksum = sum(block)
    block[148:156] = b"%06o\0 " % checksum
    return bytes(block)


def absurd_size_tar() -> bytes:
    # claims 8 GiB of content, then ends
    return _raw_header(b"huge", b"77777777777\0") + b"\0" * 1024


def base256_size_tar() -> bytes:
    # GNU base-256 size field saying 2**80 bytes
    field = b"\x80" + (1 << 80).to_bytes(11, "big")
    return _raw_header(b"huge", field) + b"\0" * 1024


def bad_checksum_tar() -> bytes:
    good = bytearray(tar_bytes([f("a", b"hello")]))
    good[0] ^= 0x01  # name changes, checksum no longer matches
    return bytes(good)


def pax_escape_tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("innocent")
        info.pax_headers = {"path": "../../escaped"}
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    return out.getvalue()


def gzip_bomb(ratio_target: int = 256 << 20) -> bytes:
    """A gzip'd tar whose single member is ``ratio_target`` zero bytes (~256 KiB compressed)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [comp.compress(_raw_header(b"zeros", b"%011o\0" % ratio_target))]
    chunk = b"\0" * (1 << 20)
    for _ in range(ratio_target >> 20):
        parts.append(comp.compress(chunk))
    parts.append(comp.compress(b"\0" * 1024))
    parts.append(comp.flush())
    return b"".join(parts)


HOSTILE: dict[str, Callable[[], bytes]] = {
    "dotdot": lambda: tar_bytes([f("../evil")]),
    "dotdot-inner": lambda: tar_bytes([d("a"), f("a/../../evil")]),
    "absolute-dotdot": lambda: tar_bytes([f("/../../etc/evil")]),
    "symlink-slip-absolute": lambda: tar_bytes([sym("etc", "/etc"), f("etc/evil")]),
    "symlink-slip-relative": lambda: tar_bytes([d("a"), sym("a/up", "../.."), f("a/up/evil")]),
    "symlink-slip-chain": lambda: tar_bytes([sym("l1", "."), sym("l1/l2", "/"),
                                             f("l1/l2/tmp/evil")]),
    "hardlink-forward": lambda: tar_bytes([hard("early", "later"), f("later")]),
    "hardlink-missing": lambda: tar_bytes([hard("shadow", "etc/shadow")]),
    "hardlink-escape": lambda: tar_bytes([hard("pw", "../../etc/passwd")]),
    "hardlink-through-symlink": lambda: tar_bytes([sym("etc", "/etc"),
                                                   hard("pw", "etc/passwd")]),
    "pax-path-escape": pax_escape_tar,
    "hardlink-to-symlink-slip": lambda: tar_bytes([sym("l", "/etc"), hard("h", "l"),
                                                   f("h/passwd")]),
    "whiteout-of-dotdot": lambda: tar_bytes([d("a"), f("a/.wh...")]),
    "whiteout-of-dot": lambda: tar_bytes([d("a"), f("a/.wh..")]),
    "absurd-size": absurd_size_tar,
    "base256-size": base256_size_tar,
    "bad-checksum": bad_checksum_tar,
    "garbage": lambda: b"this is not a tar archive at all" * 40,
    "gzip-truncated": lambda: gzip.compress(tar_bytes([f("a", os.urandom(4096))]))[:200],
}


def _one_line_exit_2(code: int, out: str, err: str, allowed: tuple[int, ...] = (2,)) -> None:
    assert code in allowed, (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = messages(err)
    assert len(lines) == 1, err
    assert lines[0].startswith("ociforge: error:"), err


# -- the safe tar reader itself ------------------------------------------------

@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_tarsafe_refuses(name: str) -> None:
    from ociforge.layers import tarsafe

    with pytest.raises(InvalidInputError) as info:
        tarsafe.check_layer(io.BytesIO(HOSTILE[name]()))
    message = str(info.value)
    assert message and "\n" not in message.strip()
    if name.startswith(("dotdot", "symlink", "hardlink", "pax", "whiteout")):
        assert isinstance(info.value, HostileInputError), (name, message)


def test_tarsafe_keeps_symlinks_and_counts_entries() -> None:
    from ociforge.layers import tarsafe

    data = tar_bytes([d("bin"), f("bin/busybox", b"\x7fELF"), sym("bin/sh", "busybox"),
                      sym("etc-abs", "/etc"), sym("up", "../../../../etc/passwd"),
                      hard("bin/busybox2", "bin/busybox"), d("etc-real"),
                      f("etc-real/conf", b"a=1")])
    diff_id, count = tarsafe.check_layer(io.BytesIO(data))
    assert str(diff_id) == "sha256:" + hashlib.sha256(data).hexdigest()
    assert count == 6   # files, symlinks and the hardlink; the two folders are not files
    entries = {e.name.rstrip("/"): e for e in tarsafe.iter_entries(io.BytesIO(data))}
    links = {name: getattr(e, "linkname", None) for name, e in entries.items()}
    assert links["bin/sh"] == "busybox"
    assert links["etc-abs"] == "/etc"
    assert links["up"] == "../../../../etc/passwd"


def test_tarsafe_bounds_decompression() -> None:
    """A zip bomb stops with HostileInputError once the configured bound is passed."""
    from ociforge.layers import tarsafe

    bomb = gzip_bomb(64 << 20)
    assert len(bomb) < 1 << 20
    with pytest.raises(HostileInputError, match="limit"):
        tarsafe.check_layer(io.BytesIO(bomb), tarsafe.Limits(max_total_bytes=8 << 20))
    with pytest.raises(HostileInputError, match="limit"):
        list(tarsafe.iter_entries(io.BytesIO(bomb), tarsafe.Limits(max_entry_size=8 << 20)))


def test_tarsafe_bounds_entry_count() -> None:
    from ociforge.layers import tarsafe

    many = tar_bytes([f(f"f{i}", b"") for i in range(300)], fmt=tarfile.USTAR_FORMAT)
    limits = tarsafe.Limits(max_entries=100)
    with pytest.raises(HostileInputError, match=r"header|entr"):
        tarsafe.check_layer(io.BytesIO(many), limits)


# -- the same tars as layers of `ociforge append` -------------------------------

@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_append_refuses_hostile_layer(name: str, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    evil = tmp_path / "evil.tar"
    evil.write_bytes(HOSTILE[name]())
    out = tmp_path / "out"
    code, stdout, err = cli("append", "scratch", "--layer", str(evil), "-o", f"oci:{out}:t",
                            "--platform", "linux/amd64")
    _one_line_exit_2(code, stdout, err)
    assert not (out / "index.json").exists(), "nothing is written for a refused input"
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "evil").exists()


def test_append_keeps_symlinks_as_data(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    data = tar_bytes([d("bin"), f("bin/busybox", b"\x7fELF"), sym("bin/sh", "busybox"),
                      sym("etc", "/etc"), sym("up", "../../../../etc/passwd")])
    layer = tmp_path / "links.tar"
    layer.write_bytes(data)
    out = tmp_path / "out"
    code, _, err = cli("append", "scratch", "--layer", str(layer), "-o", f"oci:{out}:t",
                       "--platform", "linux/amd64")
    assert code == 0, err
    index = json.loads((out / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((out / "blobs" / "sha256" / manifest_digest).read_bytes())
    blob = out / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]
    with tarfile.open(blob) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert members["etc"].issym() and members["etc"].linkname == "/etc"
    assert members["up"].linkname == "../../../../etc/passwd"


# -- the same entries inside image archives ------------------------------------

ARCHIVES: dict[str, Callable[[], bytes]] = {
    "docker-dotdot-manifest": lambda: tar_bytes([
        f("manifest.json", json.dumps([{"Config": "../../etc/passwd", "RepoTags": ["a:b"],
                                        "Layers": []}]).encode())]),
    "docker-dotdot-member": lambda: tar_bytes([
        f("manifest.json", json.dumps([{"Config": "c.json", "RepoTags": ["a:b"],
                                        "Layers": ["../l.tar"]}]).encode()),
        f("c.json", b"{}"), f("../l.tar", b"x")]),
    "docker-absolute-member": lambda: tar_bytes([
        f("manifest.json", json.dumps([{"Config": "/etc/passwd", "RepoTags": ["a:b"],
                                        "Layers": []}]).encode())]),
    "oci-index-dotdot": lambda: tar_bytes([
        f("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
        f("index.json", b'{"schemaVersion":2,"manifests":[]}'),
        f("blobs/sha256/../../../evil", b"x")]),
    "archive-absurd-size": absurd_size_tar,
    "archive-gzip-bomb": lambda: gzip_bomb(160 << 20),
    "archive-garbage": lambda: b"\x00\x01garbage" * 100,
}


# Refused, but as broken documents: exit 2 (bad input) or 1 (ValidationError), one line.
MALFORMED_ARCHIVES: dict[str, Callable[[], bytes]] = {
    # a symlink the archive made is never followed to reach a member
    "docker-symlink-member": lambda: tar_bytes([
        sym("blobs", "/etc"),
        f("manifest.json", json.dumps([{"Config": "blobs/passwd", "RepoTags": ["a:b"],
                                        "Layers": []}]).encode())]),
    "docker-manifest-not-json": lambda: tar_bytes([f("manifest.json", b"[{not json")]),
    "docker-manifest-wrong-shape": lambda: tar_bytes([f("manifest.json", b'{"Config": 1}')]),
    "docker-manifest-too-big": lambda: tar_bytes([f("manifest.json",
                                                    b"[" + b" " * (5 << 20) + b"]")]),
    "oci-index-wrong-types": lambda: tar_bytes([
        f("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
        f("index.json", b'{"schemaVersion":"2","manifests":{"a":1}}')]),
    "oci-manifest-malformed": lambda: _oci_archive_with_manifest(b'{"schemaVersion":2,'
                                                                 b'"layers":"nope"}'),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_ARCHIVES))
def test_copy_refuses_malformed_archive(name: str, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "bad.tar"
    src.write_bytes(MALFORMED_ARCHIVES[name]())
    scheme = "oci-archive" if name.startswith("oci") else "docker-archive"
    out = tmp_path / "out"
    code, stdout, err = cli("copy", f"{scheme}:{src}", f"oci:{out}:t")
    _one_line_exit_2(code, stdout, err, allowed=(1, 2))
    assert not (out / "index.json").exists()


def _oci_archive_with_manifest(manifest: bytes) -> bytes:
    digest = hashlib.sha256(manifest).hexdigest()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": f"sha256:{digest}", "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "t"}}]}
    return tar_bytes([f("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                      f("index.json", json.dumps(index).encode()),
                      d("blobs"), d("blobs/sha256"), f(f"blobs/sha256/{digest}", manifest)])


@pytest.mark.parametrize("name", sorted(ARCHIVES))
def test_copy_refuses_hostile_archive(name: str, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "evil.tar"
    src.write_bytes(ARCHIVES[name]())
    scheme = "oci-archive" if name.startswith("oci") else "docker-archive"
    out = tmp_path / "out"
    code, stdout, err = cli("copy", f"{scheme}:{src}", f"oci:{out}:t")
    _one_line_exit_2(code, stdout, err)
    assert not (out / "index.json").exists()


# -- malformed documents in a layout ---------------------------------------------

def _layout_with_manifest(root: Path, manifest: bytes) -> None:
    digest = hashlib.sha256(manifest).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "blobs" / "sha256" / digest).write_bytes(manifest)
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": f"sha256:{digest}", "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "t"}}]}
    (root / "index.json").write_text(json.dumps(index))


MALFORMED = {
    "not-json": b"{oops",
    "array": b"[]",
    "layers-not-list": b'{"schemaVersion":2,"config":{},"layers":{}}',
    "config-missing": b'{"schemaVersion":2,"layers":[]}',
    "bad-digest": (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
                   b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json",'
                   b'"digest":"sha256:XYZ","size":2},"layers":[]}'),
    "negative-size": (b'{"schemaVersion":2,'
                      b'"mediaType":"application/vnd.oci.image.manifest.v1+json",'
                      b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json",'
                      b'"digest":"sha256:' + b"a" * 64 + b'","size":-1},"layers":[]}'),
    "deep-nesting": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "over-4-mib": b'{"schemaVersion":2,"pad":"' + b"x" * (4 << 20) + b'"}',
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_manifest_in_layout(name: str, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    _layout_with_manifest(src, MALFORMED[name])
    out = tmp_path / "out"
    code, _, err = cli("copy", f"oci:{src}:t", f"oci:{out}:t")
    assert code in (1, 2), (code, err)
    assert "Traceback" not in err
    assert len(messages(err)) == 1, err
    assert not (out / "index.json").exists()


def test_malformed_index_json(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    for text in ("{", "[]", '{"schemaVersion":2,"manifests":"x"}',
                 '{"schemaVersion":2,"manifests":[{"digest":1}]}'):
        src = tmp_path / "src"
        (src / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (src / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        (src / "index.json").write_text(text)
        code, _, err = cli("inspect", f"oci:{src}")
        _one_line_exit_2(code, "", err, allowed=(1, 2))


# -- references, platforms, options -----------------------------------------------

@pytest.mark.parametrize("argv", [
    ("copy", "Upper/Case:tag", "oci:{tmp}/o"),
    ("copy", "app:-bad", "oci:{tmp}/o"),
    ("copy", "app@sha256:abc", "oci:{tmp}/o"),
    ("copy", "nope://x", "oci:{tmp}/o"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--platform", "linux/"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--platform", "plan9/amd64/v1/x"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--platform", "linux/pdp11"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--label", "novalue"),
    ("append", "scratch", "-o", "oci:{tmp}/o", "--chunk-size=-4M"),
    ("copy", "oci:{tmp}/o", "localhost:1/a:b", "--jobs", "0"),
    ("copy", "oci:{tmp}/o", "localhost:1/a:b", "--timeout", "0"),
])
def test_bad_references_platforms_options(argv: tuple[str, ...], tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = cli(*args)
    _one_line_exit_2(code, out, err)
    assert not (tmp_path / "o").exists()


def test_export_toml_with_wrong_types(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    app = tmp_path / "app"
    app.mkdir()
    (app / "ociforge.toml").write_text('[app]\nname = "app"\n\n[config]\nports = "8080"\n')
    out = tmp_path / "app.tar"
    code, stdout, err = cli("export", str(app), "-o", str(out))
    _one_line_exit_2(code, stdout, err)
    assert "config.ports" in err and ":5" in err
    assert not out.exists()


# -- hostile registries ------------------------------------------------------------------

def _hostile_manifests() -> dict[str, bytes]:
    good_config = {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + "a" * 64, "size": 2}
    base = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": good_config}
    return {
        "over-4-mib": json.dumps({**base, "layers": [], "pad": "x" * (5 << 20)}).encode(),
        "not-json": b"<html>rate limited</html>",
        "digest-traversal": json.dumps({**base, "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": "sha256:../../../../etc/passwd", "size": 1}]}).encode(),
        "negative-size": json.dumps({**base, "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": "sha256:" + "b" * 64, "size": -5}]}).encode(),
        "layers-not-a-list": json.dumps({**base, "layers": {"a": 1}}).encode(),
        "schema1": json.dumps({"schemaVersion": 1, "name": "a", "tag": "t",
                               "fsLayers": [], "history": []}).encode(),
    }


@pytest.mark.parametrize("name", sorted(_hostile_manifests()))
def test_hostile_manifest_from_a_registry(name: str, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from fakeregistry import FakeRegistry
    from imagegen import layout_with_image

    layout_with_image(tmp_path / "src", (1000,))
    fake = FakeRegistry(tmp_path / "src", "app", manifest=_hostile_manifests()[name]).start()
    try:
        out = tmp_path / "out"
        code, stdout, err = cli("copy", f"{fake.host}/app:t", f"oci:{out}:t", "--retries", "0")
    finally:
        fake.stop()
    _one_line_exit_2(code, stdout, err, allowed=(1, 2))
    assert not (out / "index.json").exists()
    if name == "over-4-mib":
        assert "limit" in err or "large" in err, err


@pytest.mark.parametrize("trick", ["blob-symlink", "blobs-folder-symlink", "fifo"])
def test_layout_blob_symlink_out_of_root_is_refused(trick: str, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """A layout someone handed us must not make ociforge read files outside it (or hang)."""
    from imagegen import layout_with_image

    src, _ = layout_with_image(tmp_path / "src", (3000,))
    index = json.loads((tmp_path / "src" / "index.json").read_text())
    manifest = json.loads((tmp_path / "src" / "blobs" / "sha256" /
                           index["manifests"][0]["digest"].split(":")[1]).read_bytes())
    blob = tmp_path / "src" / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]
    if trick == "blob-symlink":
        outside = tmp_path / "outside.bin"
        outside.write_bytes(blob.read_bytes())
        blob.unlink()
        blob.symlink_to(outside)
    elif trick == "blobs-folder-symlink":
        (tmp_path / "src" / "blobs").rename(tmp_path / "elsewhere")
        (tmp_path / "src" / "blobs").symlink_to(tmp_path / "elsewhere")
    else:
        blob.unlink()
        os.mkfifo(blob)
    out = tmp_path / "out"
    code, stdout, err = cli("copy", src, f"oci:{out}:t")
    _one_line_exit_2(code, stdout, err)
    assert "symlink" in err or "regular file" in err, err
    assert not (out / "index.json").exists()


def test_registry_lying_about_the_manifest_digest(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from fakeregistry import FakeRegistry
    from imagegen import layout_with_image

    layout_with_image(tmp_path / "src", (1000,))
    index = json.loads((tmp_path / "src" / "index.json").read_text())
    body = (tmp_path / "src" / "blobs" / "sha256" /
            index["manifests"][0]["digest"].split(":")[1]).read_bytes()
    lie = "sha256:" + "c" * 64
    fake = FakeRegistry(tmp_path / "src", "app", manifest=body,
                        headers={"Docker-Content-Digest": lie}).start()
    try:
        out = tmp_path / "out"
        code, _stdout, err = cli("copy", f"{fake.host}/app:t", f"oci:{out}:t", "--retries", "0")
    finally:
        fake.stop()
    assert code == 1, (code, err)
    assert lie in err and "Traceback" not in err
    assert not (out / "index.json").exists()


@pytest.mark.parametrize("ahead", [False, True])
def test_decompression_keeps_the_blobs_own_error(ahead: bool) -> None:
    """A digest mismatch seen while decompressing a blob stays a DigestMismatchError (exit 1),
    it does not turn into 'corrupt gzip data' (exit 2), also when it is seen on the thread
    that decompresses ahead; a zip bomb inside the bound too."""
    from ociforge.errors import DigestMismatchError
    from ociforge.layers.compress import open_decompressed
    from ociforge.model.digest import Digest, VerifyingReader

    data = gzip.compress(b"x" * 100_000, mtime=0)
    wrong = Digest("sha256", "0" * 64)
    reader = open_decompressed(VerifyingReader(io.BytesIO(data), wrong, len(data)),
                               ahead=ahead)
    with pytest.raises(DigestMismatchError):
        while reader.read(65536):
            pass
    inner = open_decompressed(io.BytesIO(gzip_bomb(16 << 20)), limit=1 << 20)
    with pytest.raises(HostileInputError):
        outer = open_decompressed(inner, kind="none")
        while outer.read(65536):
            pass


# -- index bombs: a few documents naming each other thousands of times -------------------------

INDEX = "application/vnd.oci.image.index.v1+json"


def _index_bomb(child: dict, put: Callable[[bytes], str], width: int, levels: int) -> dict:
    """Nested indexes, each naming the level below ``width`` times: width**levels leaves."""
    level = dict(child)
    for _ in range(levels):
        data = json.dumps({"schemaVersion": 2, "mediaType": INDEX,
                           "manifests": [level] * width}).encode()
        level = {"mediaType": INDEX, "digest": put(data), "size": len(data)}
    return level


def _layout_bomb(root: Path) -> str:
    from imagegen import layout_with_image

    layout_with_image(root, (100,))
    blobs = root / "blobs" / "sha256"
    index = json.loads((root / "index.json").read_text())
    child = {k: v for k, v in index["manifests"][0].items() if k != "annotations"}
    child["platform"] = {"os": "linux", "architecture": "amd64"}

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}"

    top = _index_bomb(child, put, 100, 4)  # 100 million references, 4 small documents
    top["annotations"] = {"org.opencontainers.image.ref.name": "bomb"}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return f"oci:{root}:bomb"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("argv", [
    ("inspect", "{src}"), ("verify", "{src}"),
    ("copy", "{src}", "oci:{tmp}/out:t", "--platform", "all"),
    ("copy", "{src}", "oci:{tmp}/out:t", "--platform", "linux/arm64")])
def test_index_bomb_in_a_layout_is_refused_quickly(argv: tuple[str, ...], tmp_path: Path,
                                                   cli) -> None:  # type: ignore[no-untyped-def]
    """100 million references stop at the 10,000-reference budget (the timeout mark only
    guards against a hang; the budget's message is the proof)."""
    src = _layout_bomb(tmp_path / "bomb")
    args = [a.replace("{src}", src).replace("{tmp}", str(tmp_path)) for a in argv]
    code, stdout, err = cli(*args)
    _one_line_exit_2(code, stdout, err, allowed=(1, 2))
    assert "more than 10000 manifests" in err or "no image for platform" in err, err
    assert not (tmp_path / "out" / "index.json").exists()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("platform", ["all", "linux/arm64"])
def test_index_bomb_in_a_registry_is_refused_quickly(platform: str, tmp_path: Path, cli,
                                                     registry: Any) -> None:  # type: ignore[no-untyped-def]
    """60**4 references in 5 documents: each document is fetched once, not per reference."""
    import uuid

    import requests
    from imagegen import layout_with_image

    src, image = layout_with_image(tmp_path / "src", (100,))
    repo = f"hostile/bomb-{uuid.uuid4().hex[:6]}"
    code, _, err = cli("copy", src, f"{registry.host}/{repo}:image")
    assert code == 0, err
    child = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": str(image.digest), "size": image.size,
             "platform": {"os": "linux", "architecture": "amd64"}}

    def put(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        resp = requests.put(f"http://{registry.host}/v2/{repo}/manifests/{digest}", data=data,
                            headers={"Content-Type": INDEX}, timeout=10)
        assert resp.status_code == 201, resp.text
        return digest

    top = _index_bomb(child, put, 60, 4)
    resp = requests.put(f"http://{registry.host}/v2/{repo}/manifests/bomb",
                        data=requests.get(f"http://{registry.host}/v2/{repo}/manifests/"
                                          f"{top['digest']}", headers={"Accept": INDEX},
                                          timeout=10).content,
                        headers={"Content-Type": INDEX}, timeout=10)
    assert resp.status_code == 201
    mark = registry.log_mark()
    code, stdout, err = cli("copy", f"{registry.host}/{repo}:bomb", f"oci:{tmp_path / 'out'}:t",
                            "--platform", platform)
    manifests = [path for method, path, _ in registry.requests_since(mark)
                 if method in ("GET", "HEAD") and "/manifests/" in path]
    assert len(manifests) <= 2 * 5, manifests
    _one_line_exit_2(code, stdout, err, allowed=(1, 2))
    assert "more than 10000 manifests" in err or "no image for platform" in err, err
    assert not (tmp_path / "out" / "index.json").exists()


def test_index_naming_children_repeatedly_within_bounds_still_copies(tmp_path: Path,
                                                                     cli) -> None:  # type: ignore[no-untyped-def]
    """The bomb guard counts repeats but does not refuse honest repetition."""
    from imagegen import layout_with_image

    layout_with_image(tmp_path / "src", (100,))
    blobs = tmp_path / "src" / "blobs" / "sha256"
    index = json.loads((tmp_path / "src" / "index.json").read_text())
    child = {k: v for k, v in index["manifests"][0].items() if k != "annotations"}
    child["platform"] = {"os": "linux", "architecture": "amd64"}

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}"

    top = _index_bomb(child, put, 9, 3)  # 729 references: fine
    top["annotations"] = {"org.opencontainers.image.ref.name": "nested"}
    (tmp_path / "src" / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                             "manifests": [top]}))
    code, _, err = cli("copy", f"oci:{tmp_path / 'src'}:nested", f"oci:{tmp_path / 'out'}:t",
                       "--platform", "all")
    assert code == 0, err
    out_index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert out_index["manifests"][0]["digest"] == top["digest"]
    code, _, err = cli("verify", f"oci:{tmp_path / 'out'}:t")
    assert code == 0, err


def test_push_of_an_index_naming_children_repeatedly_puts_each_manifest_once(
        tmp_path: Path, cli, registry: Any) -> None:  # type: ignore[no-untyped-def]
    from faultproxy import FaultProxy
    from imagegen import layout_with_image

    layout_with_image(tmp_path / "src", (100,))
    blobs = tmp_path / "src" / "blobs" / "sha256"
    index = json.loads((tmp_path / "src" / "index.json").read_text())
    child = {k: v for k, v in index["manifests"][0].items() if k != "annotations"}
    child["platform"] = {"os": "linux", "architecture": "amd64"}

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}"

    top = _index_bomb(child, put, 9, 3)  # 820 references to 4 distinct manifests
    top["annotations"] = {"org.opencontainers.image.ref.name": "nested"}
    (tmp_path / "src" / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                             "manifests": [top]}))
    with FaultProxy(registry.host) as proxy:
        code, _, err = cli("copy", f"oci:{tmp_path / 'src'}:nested",
                           f"{proxy.host}/hostile/nested:t", "--platform", "all")
        assert code == 0, err
        assert proxy.count("PUT", r"/manifests/") == 4, "each distinct manifest once, tag last"


@pytest.mark.parametrize("where", ["layout", "registry"])
def test_config_over_four_mib_is_refused(where: str, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from fakeregistry import FakeRegistry

    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []},
                         "pad": "x" * (5 << 20)}).encode()
    config_digest = hashlib.sha256(config).hexdigest()
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": f"sha256:{config_digest}",
                                      "size": len(config)},
                           "layers": []}).encode()
    _layout_with_manifest(tmp_path / "src", manifest)
    (tmp_path / "src" / "blobs" / "sha256" / config_digest).write_bytes(config)
    out = tmp_path / "out"
    if where == "layout":
        code, stdout, err = cli("copy", f"oci:{tmp_path / 'src'}:t", f"oci:{out}:t")
    else:
        fake = FakeRegistry(tmp_path / "src", "app").start()
        try:
            code, stdout, err = cli("copy", f"{fake.host}/app:t", f"oci:{out}:t",
                                    "--retries", "0")
        finally:
            fake.stop()
    _one_line_exit_2(code, stdout, err, allowed=(1, 2))
    assert "limit" in err, err
    assert not (out / "index.json").exists()
