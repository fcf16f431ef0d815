"""License and credential files inside the BASE image's layers are left out too (issue 4).

The base is built by ociforge: one clean layer, one layer with a license key, a
.netrc, a private key, a hardlink to the license key and ordinary files (an OSS
LICENSE among them), and an upper layer whose whiteout deletes another license
file of the dirty layer.  The export must keep the clean layers byte-for-byte,
rewrite the dirty one without exactly those files (everything else, with its
metadata, in the same order), report them with role base, and stay reproducible.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from tools import is_root, require_tool, run

from ociforge.app.baselayers import filter_entries
from ociforge.app.policy import Policy
from ociforge.app.spec import ExtraPatterns
from ociforge.layers.build import BuildSettings, LayerSource, build_layer
from ociforge.layers.decompress import open_decompressed
from ociforge.layers.tarsafe import DataReader, TarEntry, TarReader
from ociforge.model.image import Image
from ociforge.model.mutate import ConfigChanges, append_layers, configure, scratch
from ociforge.model.platform import Platform
from ociforge.options import Options
from ociforge.stores.locations import parse_location

PLATFORM = Platform.parse("linux/amd64")
OPTIONS = Options(platform=PLATFORM)
LICENSE_VALUE = b"FEATURE solver acme 1.0 permanent uncounted SIGN=LICKEY-0f1e2d3c"
OLD_LICENSE_VALUE = b"FEATURE old acme 0.9 SIGN=OLDKEY-99aa88bb"
NETRC_VALUE = b"machine pkgs.example.com login ci password netrc-pw-5a6b7c"
KEY_VALUE = (b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC-keydata-1d2e\n"
             b"-----END PRIVATE KEY-----\n")
ENV_VALUE = "27000@licsrv.base.example"
SECRET_VALUES = (b"LICKEY-0f1e2d3c", b"OLDKEY-99aa88bb", b"netrc-pw-5a6b7c", b"keydata-1d2e",
                 ENV_VALUE.encode())
# what the dirty layer loses, and the rule that says why
LEFT_OUT = {
    "/opt/solver/site.lic": "license-key-file",
    "/opt/solver/old.lic": "license-key-file",
    "/opt/solver/z-seat": "license-key-file",   # a hardlink to site.lic: the same bytes
    "/root/.netrc": "credential-file",
    "/etc/ssl/private/server.key": "private-key-file",
}


@dataclass
class Base:
    location: str
    image: Image


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def build_base(tmp: Path) -> Base:
    """Three layers made by ociforge: clean, dirty, and an upper one with a whiteout."""
    clean = tmp / "clean"
    _write(clean / "etc" / "os-release", b"NAME=tiny\n")
    _write(clean / "usr" / "share" / "doc" / "tiny" / "LICENSE", b"MIT License\n")
    _write(clean / "usr" / "bin" / "tool", b"#!/bin/sh\necho tool\n", 0o755)

    dirty = tmp / "dirty"
    _write(dirty / "opt" / "solver" / "site.lic", LICENSE_VALUE, 0o600)
    _write(dirty / "opt" / "solver" / "old.lic", OLD_LICENSE_VALUE, 0o600)
    os.link(dirty / "opt" / "solver" / "site.lic", dirty / "opt" / "solver" / "z-seat")
    _write(dirty / "opt" / "solver" / "LICENSE", b"Apache License 2.0 (open source)\n")
    _write(dirty / "opt" / "solver" / "licenses" / "THIRD-PARTY.txt", b"zlib license\n")
    _write(dirty / "opt" / "solver" / "bin" / "solver", b"#!/bin/sh\necho solving\n", 0o755)
    _write(dirty / "opt" / "solver" / "data.bin", os.urandom(1) * 300_000 + b"tail")
    os.symlink("site.lic", dirty / "opt" / "solver" / "current-license")
    _write(dirty / "root" / ".netrc", NETRC_VALUE, 0o600)
    _write(dirty / "root" / ".profile", b"export PS1='# '\n")
    _write(dirty / "etc" / "ssl" / "private" / "server.key", KEY_VALUE, 0o600)
    _write(dirty / "etc" / "ssl" / "certs" / "ca.pem",
           b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    long_dir = "d" * 60 + "/" + "e" * 60
    _write(dirty / "opt" / long_dir / "kept-with-a-long-name.txt", b"long\n")

    upper = tmp / "upper"
    _write(upper / "etc" / "motd", b"hello\n")

    settings = BuildSettings(epoch=1_700_000_000)
    layers = [build_layer([LayerSource(clean, "/")], settings).layer,
              build_layer([LayerSource(dirty, "/")], settings).layer,
              build_layer([LayerSource(upper, "/")], settings,
                          removes=["/opt/solver/old.lic"]).layer]
    image = append_layers(scratch(PLATFORM), layers,
                          created_by=["clean", "dirty", "upper"], epoch=1_700_000_000)
    image = configure(image, ConfigChanges(env={"PATH": "/usr/bin:/bin",
                                                "LM_LICENSE_FILE": ENV_VALUE}))
    location = f"oci:{tmp / 'base'}:1"
    parse_location(location).write(image, OPTIONS)
    return Base(location, image)


def make_app(tmp: Path, base: str) -> Path:
    app = tmp / "app"
    _write(app / "run" / "start.sh", b"#!/bin/sh\nexec /opt/solver/bin/solver\n", 0o755)
    (app / "ociforge.toml").write_text(
        '[app]\nname = "solver"\n'
        f'base = "{base}"\nplatform = "linux/amd64"\n'
        '[config]\nentrypoint = ["/app/start.sh"]\n'
        '[[layers]]\nsrc = "run"\ndest = "/app"\n')
    return app


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    return build_base(tmp_path_factory.mktemp("base"))


@pytest.fixture
def app(base: Base, tmp_path: Path) -> Path:
    return make_app(tmp_path, base.location)


def read_image(location: str) -> Image:
    image = parse_location(location).read(OPTIONS)
    assert isinstance(image, Image)
    return image


def entries(image: Image, index: int) -> list[tuple[str, tuple[object, ...], bytes]]:
    """(name, metadata, data) of every entry, in archive order, via tarsafe's reader."""
    out = []
    with image.layers[index].open() as raw:
        tar = TarReader(open_decompressed(raw))  # type: ignore[arg-type]
        for e in tar:
            meta = (e.type, e.mode, e.uid, e.gid, e.mtime, e.linkname, e.uname, e.gname, e.size)
            out.append((e.name, meta, tar.read()))
    return out


def gnu_tar_list(image: Image, index: int, tmp: Path) -> list[str]:
    blob = tmp / f"layer-{index}.tgz"
    with image.layers[index].open() as raw, open(blob, "wb") as fh:
        while chunk := raw.read(1 << 20):
            fh.write(chunk)
    return run(["tar", "-tzf", str(blob)]).stdout.splitlines()


def export(cli, app: Path, out: Path, *extra: str) -> tuple[Image, dict, str]:  # type: ignore[no-untyped-def,type-arg]
    report_path = out.parent / (out.name + ".json")
    code, stdout, stderr = cli("export", app, "-o", f"oci:{out}", "--report", report_path,
                               *extra)
    assert code == 0, stderr
    image = read_image(f"oci:{out}:latest")
    assert stdout.strip() == str(image.digest)
    text = stdout + stderr + report_path.read_text()
    return image, json.loads(report_path.read_text()), text


def test_dirty_base_layer_is_rewritten_and_clean_ones_kept(cli, base: Base, app: Path,  # type: ignore[no-untyped-def]
                                                          tmp_path: Path) -> None:
    image, report, text = export(cli, app, tmp_path / "out")
    old = base.image
    assert len(image.layers) == 4                       # three base layers + the runtime layer
    # clean layers: the very same blobs
    assert image.layers[0].digest == old.layers[0].digest
    assert image.layers[2].digest == old.layers[2].digest   # it holds the whiteout: kept as is
    assert image.diff_ids[0] == old.diff_ids[0] and image.diff_ids[2] == old.diff_ids[2]
    # the dirty layer: a new blob and diff_id, in place
    assert image.layers[1].digest != old.layers[1].digest
    assert image.diff_ids[1] == str(image.layers[1].diff_id) != old.diff_ids[1]
    assert image.layers[1].media_type == old.layers[1].media_type
    assert len(image.config["history"]) >= len(old.config["history"]) + 1
    assert [h.get("created_by") for h in image.config["history"][:3]] == [
        "clean", "dirty", "upper"]

    before, after = entries(old, 1), entries(image, 1)
    expected = [e for e in before if "/" + e[0] not in LEFT_OUT]
    assert len(expected) == len(before) - len(LEFT_OUT)
    assert after == expected        # same order, same headers' metadata, same bytes
    names = {name for name, _, _ in after}
    assert {"opt/solver/LICENSE", "opt/solver/licenses/THIRD-PARTY.txt", "etc/ssl/certs/ca.pem",
            "opt/solver/current-license", "root/.profile", "opt/solver/data.bin"} <= names
    assert any(name.endswith("kept-with-a-long-name.txt") for name in names)
    # GNU tar reads the rewritten blob and sees the same list
    listed = [n.rstrip("/") for n in gnu_tar_list(image, 1, tmp_path)]
    assert listed == [name for name, _, _ in after]
    # the whiteout above still hides old.lic (nothing resurrected)
    assert any(name == "opt/solver/.wh.old.lic" for name, _, _ in entries(image, 2))

    left = {e["path"]: e for e in report["left_out_files"] if e["layer"] == "base"}
    assert {p: e["rule"] for p, e in left.items()} == LEFT_OUT
    assert all(e["base_layer"] == 1 for e in left.values())
    assert report["base_scanned"] is True
    layers = report["layers"]
    assert [entry["role"] for entry in layers] == ["base", "base", "base", "runtime"]
    assert [entry["rewritten"] for entry in layers[:3]] == [False, True, False]
    assert layers[1]["original"] == {"digest": str(old.layers[1].digest),
                                     "diff_id": old.diff_ids[1]}
    assert layers[1]["digest"] == str(image.layers[1].digest)
    assert layers[1]["files"] == len([n for n, meta, _ in after if meta[0] != "dir"])
    assert {"license-key-file", "credential-file", "private-key-file"} <= set(report["rules"])
    assert "rewritten (was" in text
    # the base's license variable is dropped too; no value anywhere
    env = dict(item.split("=", 1) for item in image.config["config"]["Env"])
    assert "LM_LICENSE_FILE" not in env and env["PATH"] == "/usr/bin:/bin"
    everything = b"".join([image.manifest_bytes, image.config_bytes, text.encode()]
                          + [data + name.encode() for i in range(len(image.layers))
                             for name, _, data in entries(image, i)])
    for value in SECRET_VALUES:
        assert value not in everything, value
    # the image is whole: every blob, diff_id and document checks out
    code, _, stderr = cli("verify", f"oci:{tmp_path / 'out'}:latest")
    assert code == 0, stderr


def test_export_with_a_dirty_base_is_reproducible(cli, base: Base, app: Path,  # type: ignore[no-untyped-def]
                                                 tmp_path: Path) -> None:
    first, report1, _ = export(cli, app, tmp_path / "one")
    second, report2, _ = export(cli, app, tmp_path / "two")
    assert first.digest == second.digest
    assert report1["report_digest"] == report2["report_digest"]
    assert first.layers[1].digest == second.layers[1].digest


def test_zstd_export_rewrites_with_zstd_and_keeps_clean_gzip_layers(cli, base: Base, app: Path,  # type: ignore[no-untyped-def]
                                                                   tmp_path: Path) -> None:
    image, _, _ = export(cli, app, tmp_path / "z", "--compression", "zstd")
    assert image.layers[0].digest == base.image.layers[0].digest
    assert image.layers[1].media_type.endswith("+zstd")
    assert [name for name, _, _ in entries(image, 1)] == [
        name for name, _, _ in entries(base.image, 1) if "/" + name not in LEFT_OUT]
    code, _, stderr = cli("verify", f"oci:{tmp_path / 'z'}:latest")
    assert code == 0, stderr


def test_keep_base_layers_uses_them_as_they_are_and_says_so(cli, base: Base, app: Path,  # type: ignore[no-untyped-def]
                                                           tmp_path: Path) -> None:
    image, report, text = export(cli, app, tmp_path / "k", "--keep-base-layers")
    assert [layer.digest for layer in image.layers[:3]] == [
        layer.digest for layer in base.image.layers]
    assert report["base_scanned"] is False
    assert [entry["scanned"] for entry in report["layers"][:3]] == [False] * 3
    assert not [e for e in report["left_out_files"] if e["layer"] == "base"]
    assert any("not scanned" in w for w in report["warnings"])
    assert "NOT scanned" in text


def test_umoci_unpack_shows_no_license_or_credential_files(cli, base: Base, app: Path,  # type: ignore[no-untyped-def]
                                                          tmp_path: Path) -> None:
    umoci = require_tool("umoci")
    export(cli, app, tmp_path / "u")
    bundle = tmp_path / "bundle"
    rootless = [] if is_root() else ["--rootless"]
    run([umoci, "unpack", *rootless, "--image", f"{tmp_path / 'u'}:latest", str(bundle)])
    rootfs = bundle / "rootfs"
    found = {"/" + str(p.relative_to(rootfs)) for p in rootfs.rglob("*")}
    for path in LEFT_OUT:
        assert path not in found, path
    assert not [p for p in found if p.endswith((".lic", ".netrc", ".key"))]
    assert (rootfs / "opt/solver/LICENSE").read_bytes().startswith(b"Apache")
    assert (rootfs / "usr/share/doc/tiny/LICENSE").exists()
    assert (rootfs / "opt/solver/data.bin").stat().st_size == 300_004
    assert (rootfs / "etc/motd").read_bytes() == b"hello\n"
    assert os.readlink(rootfs / "opt/solver/current-license") == "site.lic"   # dangling, kept
    assert (rootfs / "app/start.sh").exists()
    walked = b"".join(p.read_bytes() for p in rootfs.rglob("*")
                      if p.is_file() and not p.is_symlink())
    for value in SECRET_VALUES:
        assert value not in walked, value


# -- the stream filter on tars that other tools wrote -------------------------------------

def _policy() -> Policy:
    return Policy.for_app(ExtraPatterns(), ExtraPatterns())


def _filter(data: bytes) -> tuple[list[str], bytes]:
    out = bytearray()
    found = filter_entries(io.BytesIO(data), _policy(), "test", out.extend)
    assert str(found.diff_id) == "sha256:" + hashlib.sha256(data).hexdigest()
    return [item.path for item in found.left_out], bytes(out) + b"\0" * 1024


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", **kw: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in kw.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_filter_keeps_foreign_headers_and_global_pax(fmt: int) -> None:
    """Long names (PAX or GNU 'L' headers), a global PAX header before a dropped entry."""
    buf = io.BytesIO()
    extra = {"pax_headers": {"comment": "global"}} if fmt == tarfile.PAX_FORMAT else {}
    with tarfile.open(fileobj=buf, mode="w", format=fmt, **extra) as tar:  # type: ignore[call-overload]
        _add(tar, "a.lic", b"KEY-1")
        _add(tar, "x" * 150 + "/kept.txt", b"kept", uname="someone", mtime=1234)
        _add(tar, "y" * 150 + ".lic", b"KEY-2")
        _add(tar, "etc", type=tarfile.DIRTYPE, mode=0o700)
        _add(tar, "etc/.netrc", b"password pw")
        _add(tar, "etc/hosts", b"127.0.0.1 localhost\n")
        _add(tar, "hard", type=tarfile.LNKTYPE, linkname="a.lic")
    data = buf.getvalue()
    left_out, filtered = _filter(data)
    assert left_out == ["/a.lic", "/" + "y" * 150 + ".lic", "/etc/.netrc", "/hard"]
    with tarfile.open(fileobj=io.BytesIO(filtered)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["x" * 150 + "/kept.txt", "etc", "etc/hosts"]
        assert members[0].uname == "someone" and members[0].mtime == 1234
        assert members[1].mode == 0o700
        if fmt == tarfile.PAX_FORMAT:
            assert tar.pax_headers.get("comment") == "global"
        handle = tar.extractfile(members[2])
        assert handle is not None and handle.read() == b"127.0.0.1 localhost\n"
    assert b"KEY-" not in filtered and b"password pw" not in filtered


def test_filter_leaves_out_a_whole_folder_and_keeps_whiteouts() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "home/u/.ssh", type=tarfile.DIRTYPE)
        _add(tar, "home/u/.ssh/keys", type=tarfile.DIRTYPE)
        _add(tar, "home/u/.ssh/keys/deploy", b"deploy-key")
        _add(tar, "home/u/.ssh/id_rsa.pub", b"ssh-rsa AAAA public")
        _add(tar, "home/u/.wh.site.lic")
        _add(tar, "home/u/.wh..wh..opq")
    left_out, filtered = _filter(buf.getvalue())
    assert left_out == ["/home/u/.ssh/keys/"]       # a folder: its contents go with it
    with tarfile.open(fileobj=io.BytesIO(filtered)) as tar:
        assert tar.getnames() == ["home/u/.ssh", "home/u/.ssh/id_rsa.pub", "home/u/.wh.site.lic",
                                  "home/u/.wh..wh..opq"]
    assert b"deploy-key" not in filtered


class _Recorder:
    """Reads every entry's data as an index or inventory would: a small piece, then
    the rest."""

    def __init__(self) -> None:
        self.seen: dict[str, bytes] = {}
        self.finished = 0

    def entry(self, entry: TarEntry, data: DataReader) -> None:
        first = data.read(7)
        self.seen[entry.name] = first + data.read()

    def done(self) -> None:
        self.finished += 1


def test_an_observer_of_the_scan_sees_every_entry_and_all_its_data() -> None:
    """Where a content rule read a file's head to decide, the observer (the rootfs index
    and inventory, on the same read) still gets the file from its first byte."""
    big = b"".join(b"line %d of some notes\n" % i for i in range(80_000))  # over 1 MiB
    assert len(big) > 1 << 20 and _policy().content_rules_for("srv/app/notes.txt")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, ".", type=tarfile.DIRTYPE)
        _add(tar, "srv/app", type=tarfile.DIRTYPE)
        _add(tar, "srv/app/notes.txt", big)
        _add(tar, "srv/app/short.txt", b"short")
        _add(tar, "srv/app/site.lic", b"licensed")
        _add(tar, "srv/.wh.old")
    recorder = _Recorder()
    found = filter_entries(io.BytesIO(buf.getvalue()), _policy(), "test", None,
                           observer=recorder)
    assert [item.path for item in found.left_out] == ["/srv/app/site.lic"]
    expected = {"": b"", "srv/app": b"", "srv/app/notes.txt": big, "srv/app/short.txt": b"short",
                "srv/app/site.lic": b"licensed", "srv/.wh.old": b""}
    assert {name: (len(data), hashlib.sha256(data).hexdigest())
            for name, data in recorder.seen.items()} == \
        {name: (len(data), hashlib.sha256(data).hexdigest()) for name, data in expected.items()}
    assert recorder.finished == 1
    with pytest.raises(ValueError):     # a rewrite routes bytes by position: no observer
        filter_entries(io.BytesIO(buf.getvalue()), _policy(), "test", bytearray().extend,
                       observer=recorder)


def test_a_clean_tar_passes_through_unchanged() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        _add(tar, "LICENSE", b"MIT")
        _add(tar, "COPYING", b"GPL")
        _add(tar, "share/licenses/x/LICENSE.txt", b"BSD")
    data = buf.getvalue()
    left_out, filtered = _filter(data)
    assert left_out == []
    # every byte up to the end-of-archive blocks is the original's
    assert filtered == data[:len(filtered)] and not data[len(filtered):].strip(b"\0")


def test_corrupt_base_diff_id_is_refused(cli, base: Base, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A base whose config names another diff_id than its layer has: exit 1, nothing written."""
    import dataclasses

    from ociforge.model.digest import Digest
    from ociforge.model.mutate import replace_layers

    wrong = dataclasses.replace(base.image.layers[1], diff_id=Digest("sha256", "ab" * 32))
    broken = replace_layers(base.image, {1: wrong})
    assert broken.diff_ids[1] == "sha256:" + "ab" * 32
    parse_location(f"oci:{tmp_path / 'broken'}:1").write(broken, OPTIONS)
    app = make_app(tmp_path, f"oci:{tmp_path / 'broken'}:1")
    out = tmp_path / "out"
    code, _, stderr = cli("export", app, "-o", f"oci:{out}")
    assert code == 1 and "diff_id" in stderr, stderr
    assert not (out / "index.json").exists()


def test_registry_base_is_read_once_and_filtered(cli, base: Base, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                 registry) -> None:
    """A base pulled from a registry: each layer blob is downloaded once (scan and write
    share a local copy), the clean ones keep their digests, the dirty one is rewritten."""
    ref = f"{registry.host}/bases/solver-base:1"
    parse_location(ref).write(base.image, OPTIONS)
    app = make_app(tmp_path, ref)
    mark = registry.log_mark()
    image, report, _ = export(cli, app, tmp_path / "r")
    log = registry.log_since(mark)
    for layer in base.image.layers:  # the access log: '"GET /v2/.../blobs/sha256:... HTTP/1.1"'
        gets = [line for line in log.splitlines()
                if f'"GET /v2/bases/solver-base/blobs/{layer.digest} ' in line]
        assert len(gets) == 1, (layer.digest, gets)
    assert [str(layer.digest) for layer in image.layers[:3]] == [
        str(base.image.layers[0].digest), report["layers"][1]["digest"],
        str(base.image.layers[2].digest)]
    assert report["layers"][1]["rewritten"] is True
    assert {e["path"] for e in report["left_out_files"] if e["layer"] == "base"} == set(LEFT_OUT)
    code, _, stderr = cli("verify", f"oci:{tmp_path / 'r'}:latest")
    assert code == 0, stderr


def test_taking_allow_files_away_leaves_the_base_file_out_again(cli, base: Base, app: Path,  # type: ignore[no-untyped-def]
                                                                tmp_path: Path) -> None:
    """The cached scan of a base layer is keyed on the whole policy: a scan made while
    [secrets] allow_files kept .netrc is not reused once it no longer does."""
    spec = app / "ociforge.toml"
    original = spec.read_text()
    spec.write_text(original + '[secrets]\nallow_files = [".netrc"]\n')
    _, report, _ = export(cli, app, tmp_path / "allowed")
    assert "/root/.netrc" not in {f["path"] for f in report["left_out_files"]}
    spec.write_text(original)
    image, report, _ = export(cli, app, tmp_path / "again")
    assert "/root/.netrc" in {f["path"] for f in report["left_out_files"]}
    assert image.digest == export(cli, app, tmp_path / "plain", "--no-cache")[0].digest


def test_an_uncompressed_base_layer_is_checked_by_its_own_digest(cli, tmp_path: Path  # type: ignore[no-untyped-def]
                                                                   ) -> None:
    """A base layer that is a plain tar (as `docker save` writes them): its diff_id is its
    blob digest, verified as the scan reads it (not hashed twice).  The export keeps it,
    a config naming another diff_id is refused, and a blob whose bytes changed is refused
    naming its digest, with nothing written."""
    import dataclasses

    from ociforge.model.digest import Digest
    from ociforge.model.mutate import replace_layers

    tree = tmp_path / "tree"
    _write(tree / "etc" / "os-release", b"NAME=plain\n")
    _write(tree / "usr" / "bin" / "tool", os.urandom(200_000), 0o755)
    layer = build_layer([LayerSource(tree, "/")],
                        BuildSettings(epoch=1_700_000_000, compression="none")).layer
    assert layer.diff_id == layer.digest
    image = append_layers(scratch(PLATFORM), [layer], created_by=["plain"],
                          epoch=1_700_000_000)
    parse_location(f"oci:{tmp_path / 'plain'}:1").write(image, OPTIONS)

    exported, _, _ = export(cli, make_app(tmp_path, f"oci:{tmp_path / 'plain'}:1"),
                            tmp_path / "out")
    assert exported.layers[0].digest == layer.digest
    assert exported.diff_ids[0] == str(layer.digest)

    wrong = replace_layers(image, {0: dataclasses.replace(layer, diff_id=Digest("sha256",
                                                                                "cd" * 32))})
    parse_location(f"oci:{tmp_path / 'wrong'}:1").write(wrong, OPTIONS)
    code, _, stderr = cli("export", make_app(tmp_path / "w", f"oci:{tmp_path / 'wrong'}:1"),
                          "-o", f"oci:{tmp_path / 'out-wrong'}")
    assert code == 1 and "diff_id" in stderr, stderr
    assert not (tmp_path / "out-wrong" / "index.json").exists()

    blob = tmp_path / "plain" / "blobs" / "sha256" / layer.digest.hex
    data = bytearray(blob.read_bytes())
    data[600] ^= 1                                  # inside the first file's data
    blob.write_bytes(bytes(data))
    code, _, stderr = cli("export", make_app(tmp_path / "c", f"oci:{tmp_path / 'plain'}:1"),
                          "-o", f"oci:{tmp_path / 'out-corrupt'}", "--no-cache")
    assert code == 1 and layer.digest.hex[:12] in stderr, stderr
    assert not (tmp_path / "out-corrupt" / "index.json").exists()
