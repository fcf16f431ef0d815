"""The delta of a root filesystem against its base (layers/delta.py), rule by rule.

Each test writes a base layer as a real tar (tarfile, so owners, mtimes, hardlinks,
whiteouts and extended attributes are exactly as a registry's layer would have
them), unpacks it with GNU tar as an application's root filesystem would be made
(owners, modes, mtimes and xattrs kept), changes it the way a user would, and reads
the delta layer back with tarfile.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import stat
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from tools import require_root, require_tool, run

from ociforge.errors import OperationError
from ociforge.layers.build import BuildSettings, layer_from_tar
from ociforge.layers.delta import DeltaOptions, DeltaResult, build_delta, index_base
from ociforge.model.layer import Layer

OLD = 1_600_000_000          # the base's mtime: long before anything here was unpacked
SETTINGS = BuildSettings(compression="gzip")
# security.capability, revision 2, effective: cap_net_raw (bit 13) permitted
CAP_NET_RAW = bytes.fromhex("01000002" "00200000" "00000000" "00000000" "00000000")


@dataclass
class Item:
    name: str
    kind: str = "file"           # file, dir, symlink, hardlink, whiteout
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    target: str = ""
    mtime: int = OLD
    xattrs: dict[str, bytes] | None = None


def base_layer(tmp: Path, items: list[Item], name: str = "base") -> Layer:
    """A real layer tar of ``items`` (in order), as ociforge reads any base layer."""
    path = tmp / f"{name}.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for item in items:
            info = tarfile.TarInfo(item.name)
            info.mode, info.uid, info.gid, info.mtime = item.mode, item.uid, item.gid, item.mtime
            if item.xattrs:
                info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                                    for k, v in item.xattrs.items()}
            data = None
            if item.kind == "dir":
                info.type = tarfile.DIRTYPE
            elif item.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, item.target
            elif item.kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, item.target
            elif item.kind == "whiteout":
                info.size = 0
                data = io.BytesIO(b"")
            else:
                info.size = len(item.data)
                data = io.BytesIO(item.data)
            tar.addfile(info, data)
    return layer_from_tar(path, SETTINGS).layer


def unpack(layers: list[Layer], rootfs: Path) -> Path:
    """Unpack layers with GNU tar as a container's root filesystem (no whiteout handling:
    the tests give single layers, or merged views they build themselves)."""
    tar = require_tool("tar")
    rootfs.mkdir(exist_ok=True)
    for layer in layers:
        assert layer.path is not None
        run([tar, "-xpf", str(layer.path), "-C", str(rootfs), "--numeric-owner", "--xattrs",
             "--xattrs-include=*"])
    return rootfs


@dataclass
class Member:
    kind: str
    mode: int
    uid: int
    gid: int
    data: bytes
    linkname: str
    pax: dict[str, str]


def members(result: DeltaResult) -> dict[str, Member]:
    """The delta layer's entries by name (directories without their trailing slash)."""
    assert result.layer.path is not None
    out: dict[str, Member] = {}
    with tarfile.open(result.layer.path, encoding="utf-8", errors="surrogateescape") as tar:
        for info in tar:
            kind = {tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
                    tarfile.LNKTYPE: "hardlink"}.get(info.type, "file")
            handle = tar.extractfile(info) if info.isfile() else None
            out[info.name.rstrip("/")] = Member(kind, info.mode, info.uid, info.gid,
                                                handle.read() if handle else b"",
                                                info.linkname, dict(info.pax_headers))
    return out


def files_of(result: DeltaResult) -> set[str]:
    """The names that are not folders (what a delta really adds, changes or deletes)."""
    return {name for name, member in members(result).items() if member.kind != "dir"}


def delta(rootfs: Path, layers: list[Layer], **options: object) -> DeltaResult:
    return build_delta(rootfs, layers, SETTINGS, DeltaOptions(**options))  # type: ignore[arg-type]


def standard_base() -> list[Item]:
    return [
        Item("etc", "dir", mode=0o755),
        Item("etc/app.conf", data=b"mode=one\n"),
        Item("etc/shadow", data=b"root:*:1::::::\n", mode=0o640, gid=42),
        Item("srv", "dir", mode=0o750, uid=33, gid=33),
        Item("srv/www", "dir", mode=0o755, uid=33, gid=33),
        Item("srv/www/index.html", data=b"<p>hi</p>\n", uid=33, gid=33),
        Item("usr", "dir", mode=0o755),
        Item("usr/bin", "dir", mode=0o755),
        Item("usr/bin/tool", data=b"#!/bin/sh\necho tool\n", mode=0o755),
        Item("usr/bin/alias", "symlink", target="tool", mode=0o777),
        Item("usr/share", "dir", mode=0o755),
        Item("usr/share/doc", "dir", mode=0o755),
        Item("usr/share/doc/pkg", "dir", mode=0o755),
        Item("usr/share/doc/pkg/README", data=b"read me\n"),
        Item("usr/share/doc/pkg/examples", "dir", mode=0o755),
        Item("usr/share/doc/pkg/examples/one", data=b"1\n"),
        Item("usr/share/doc/other", "dir", mode=0o755),
        Item("usr/share/doc/other/README", data=b"other\n"),
        Item("opt", "dir", mode=0o755),
        Item("opt/set", "dir", mode=0o755),
        Item("opt/set/a", data=b"a\n"),
        Item("opt/set/b", data=b"b\n"),
        Item("opt/single", "dir", mode=0o755),
        Item("opt/single/only", data=b"only\n"),
    ]


@pytest.fixture
def std(tmp_path: Path) -> tuple[list[Layer], Path]:
    require_root("unpacking a base keeps its owners only as root")
    layers = [base_layer(tmp_path, standard_base())]
    return layers, unpack(layers, tmp_path / "rootfs")


def test_an_untouched_rootfs_gives_an_empty_layer_and_the_same_bytes_twice(
        std: tuple[list[Layer], Path]) -> None:
    layers, rootfs = std
    first = delta(rootfs, layers)
    assert members(first) == {}
    assert (first.stats.added, first.stats.changed, first.stats.deleted) == (0, 0, 0)
    assert first.stats.hashed == 0          # nothing needed its content looked at
    (rootfs / "etc" / "new").write_text("x")
    again = [delta(rootfs, layers) for _ in range(2)]
    assert again[0].layer.digest == again[1].layer.digest
    assert again[0].layer.digest != first.layer.digest


def test_added_changed_and_deleted_with_their_folders_own_attributes(
        std: tuple[list[Layer], Path]) -> None:
    layers, rootfs = std
    (rootfs / "etc" / "app.conf").write_text("mode=two\n")          # edited
    (rootfs / "srv" / "www" / "new.html").write_text("new\n")        # added, owner 33's folder
    os.chown(rootfs / "srv" / "www" / "new.html", 33, 33)
    (rootfs / "usr" / "share" / "doc" / "other" / "README").unlink()  # deleted, alone
    result = delta(rootfs, layers)
    got = members(result)
    assert got["etc/app.conf"].data == b"mode=two\n"
    assert got["srv/www/new.html"].uid == 33
    # the folders above a change are written with the rootfs's own mode and owner,
    # never a default that would change them in the image
    assert (got["srv"].mode, got["srv"].uid, got["srv"].gid) == (0o750, 33, 33)
    assert got["srv/www"].uid == 33
    assert "usr/share/doc/other/.wh.README" in got
    assert files_of(result) == {"etc/app.conf", "srv/www/new.html",
                                "usr/share/doc/other/.wh.README"}
    assert (result.stats.added, result.stats.changed, result.stats.deleted) == (1, 1, 1)


def test_mode_owner_and_symlink_target_changes_alone(std: tuple[list[Layer], Path]) -> None:
    layers, rootfs = std
    os.chmod(rootfs / "usr" / "bin" / "tool", 0o4750)              # setuid kept, not normalised
    os.chown(rootfs / "etc" / "app.conf", 1000, 1000)
    os.unlink(rootfs / "usr" / "bin" / "alias")
    os.symlink("/opt/elsewhere", rootfs / "usr" / "bin" / "alias")
    got = members(delta(rootfs, layers))
    assert got["usr/bin/tool"].mode == 0o4750
    assert got["usr/bin/tool"].data == b"#!/bin/sh\necho tool\n"
    assert (got["etc/app.conf"].uid, got["etc/app.conf"].gid) == (1000, 1000)
    assert got["usr/bin/alias"].kind == "symlink"
    assert got["usr/bin/alias"].linkname == "/opt/elsewhere"
    assert set(got) - {"etc", "usr", "usr/bin"} == {"usr/bin/tool", "etc/app.conf",
                                                    "usr/bin/alias"}


def test_a_file_replaced_by_a_folder_and_a_folder_by_a_file(
        std: tuple[list[Layer], Path]) -> None:
    layers, rootfs = std
    (rootfs / "etc" / "app.conf").unlink()
    (rootfs / "etc" / "app.conf").mkdir()
    (rootfs / "etc" / "app.conf" / "part").write_text("p\n")
    shutil.rmtree(rootfs / "usr" / "share" / "doc" / "pkg")
    (rootfs / "usr" / "share" / "doc" / "pkg").write_text("now a file\n")
    result = delta(rootfs, layers)
    got = members(result)
    assert got["etc/app.conf"].kind == "dir" and got["etc/app.conf/part"].data == b"p\n"
    assert got["usr/share/doc/pkg"].kind == "file"
    # no whiteout inside a folder that is now a file: the file replaces it whole
    assert not [name for name in got if "/.wh." in name or name.startswith(".wh.")]
    assert result.stats.deleted == 0


def test_deletions_get_one_whiteout_per_deleted_subtree_and_opaque_folders(
        std: tuple[list[Layer], Path]) -> None:
    layers, rootfs = std
    shutil.rmtree(rootfs / "usr" / "share" / "doc" / "pkg")        # a folder and all in it
    for name in ("a", "b"):                                         # all children replaced
        (rootfs / "opt" / "set" / name).unlink()
    (rootfs / "opt" / "set" / "c").write_text("c\n")
    (rootfs / "opt" / "single" / "only").unlink()                   # the one child of a folder
    result = delta(rootfs, layers)
    names = files_of(result)
    assert names == {"usr/share/doc/.wh.pkg", "opt/set/.wh..wh..opq", "opt/set/c",
                     "opt/single/.wh.only"}
    assert result.stats.opaque == 1 and result.stats.deleted == 3


def test_hardlinks_stay_hardlinks(tmp_path: Path) -> None:
    require_root("unpacking a base keeps its owners only as root")
    items = [Item("data", "dir", mode=0o755), Item("data/one", data=b"same\n"),
             Item("data/two", "hardlink", target="data/one"),
             Item("data/solo", data=b"solo\n"), Item("data/buddy", data=b"buddy\n")]
    layers = [base_layer(tmp_path, items)]
    rootfs = unpack(layers, tmp_path / "rootfs")
    assert os.stat(rootfs / "data" / "one").st_ino == os.stat(rootfs / "data" / "two").st_ino
    assert files_of(delta(rootfs, layers)) == set()                 # base hardlinks: unchanged
    # a new pair
    (rootfs / "data" / "new").write_text("new\n")
    os.link(rootfs / "data" / "new", rootfs / "data" / "new-link")
    # a base file, unchanged, gets a new name that is a hardlink to it: both are written,
    # the unchanged one as the file, so the image keeps them one inode
    os.link(rootfs / "data" / "solo", rootfs / "data" / "solo-link")
    got = members(delta(rootfs, layers))
    assert got["data/new"].kind == "file" and got["data/new-link"].kind == "hardlink"
    assert got["data/new-link"].linkname == "data/new"
    assert got["data/solo"].kind == "file" and got["data/solo"].data == b"solo\n"
    assert got["data/solo-link"].linkname == "data/solo"
    assert "data/one" not in got and "data/buddy" not in got
    # a rule leaves one name out: its other names (the same bytes) go with it
    os.link(rootfs / "data" / "new", rootfs / "data" / "key.lic")
    result = delta(rootfs, layers,
                   skip=lambda image_path, host: "license-key-file"
                   if image_path.endswith(".lic") else None)
    got = members(result)
    assert not {"data/new", "data/new-link", "data/key.lic"} & set(got)
    assert sorted(result.stats.left_out) == [("data/new", "license-key-file"),
                                             ("data/new-link", "license-key-file")]


def test_names_that_are_not_utf8(std: tuple[list[Layer], Path], tmp_path: Path) -> None:
    layers, rootfs = std
    added = os.fsencode(rootfs / "etc") + b"/caf\xe9-\xff.conf"
    with open(added, "wb") as fh:
        fh.write(b"latin-1 name\n")
    result = delta(rootfs, layers)
    with tarfile.open(result.layer.path, encoding="utf-8", errors="surrogateescape") as tar:
        names = [os.fsencode(info.name) for info in tar]
    assert b"etc/caf\xe9-\xff.conf" in names
    # and a base name that is not UTF-8, deleted
    items = [Item("d", "dir", mode=0o755), Item("d/" + b"n\xe4me".decode("utf-8",
                                                                         "surrogateescape"),
                                                   data=b"x"), Item("d/keep", data=b"k")]
    other = [base_layer(tmp_path, items, "latin")]
    rootfs2 = unpack(other, tmp_path / "rootfs2")
    os.unlink(os.fsencode(rootfs2 / "d") + b"/n\xe4me")
    with tarfile.open(delta(rootfs2, other).layer.path, encoding="utf-8",
                      errors="surrogateescape") as tar:
        names = [os.fsencode(info.name) for info in tar]
    assert b"d/.wh.n\xe4me" in names


def test_extended_attributes(tmp_path: Path) -> None:
    require_root("unpacking a base keeps its owners only as root")
    items = [Item("bin", "dir", mode=0o755),
             Item("bin/ping", data=b"\x7fELF...", mode=0o755,
                  xattrs={"security.capability": CAP_NET_RAW}),
             Item("bin/plain", data=b"plain", mode=0o755)]
    layers = [base_layer(tmp_path, items)]
    rootfs = unpack(layers, tmp_path / "rootfs")
    try:
        os.setxattr(rootfs / "bin" / "plain", "user.probe", b"1")
        os.removexattr(rootfs / "bin" / "plain", "user.probe")
    except OSError:
        from tools import skip
        skip("this file system has no user extended attributes", can_apply_in_ci=True)
    assert os.getxattr(rootfs / "bin" / "ping", "security.capability")  # tar restored it
    assert files_of(delta(rootfs, layers)) == set()     # the base's capability: unchanged
    os.setxattr(rootfs / "bin" / "plain", "user.origin", b"\x00binary\xff")  # attribute only
    (rootfs / "bin" / "new").write_text("n")
    os.setxattr(rootfs / "bin" / "new", "user.mime_type", b"text/plain")
    got = members(delta(rootfs, layers))
    assert set(got) == {"bin", "bin/plain", "bin/new"}
    assert got["bin/plain"].data == b"plain"
    assert got["bin/plain"].pax["SCHILY.xattr.user.origin"].encode("utf-8",
                                                                     "surrogateescape") \
        == b"\x00binary\xff"
    assert got["bin/new"].pax["SCHILY.xattr.user.mime_type"] == "text/plain"


def test_content_changed_with_size_and_mtime_kept(std: tuple[list[Layer], Path]) -> None:
    """The documented rule: metadata alone cannot see it; a ctime after the rootfs was made
    (``changed_after_ns``) sends the file to hashing, and ``compare='content'`` always does."""
    layers, rootfs = std
    made = time.time_ns()
    time.sleep(0.05)
    conf = rootfs / "etc" / "app.conf"
    before = conf.stat()
    conf.write_text("mode=TWO\n")                       # same size
    os.utime(conf, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert files_of(delta(rootfs, layers)) == set()     # as docker commit's differ sees it
    seen = delta(rootfs, layers, changed_after_ns=made)
    assert files_of(seen) == {"etc/app.conf"} and seen.stats.hashed == 1
    assert files_of(delta(rootfs, layers, compare="content")) == {"etc/app.conf"}
    # a file only touched after that time is hashed and found unchanged
    index_file = rootfs / "srv" / "www" / "index.html"
    os.utime(index_file, ns=(time.time_ns(), index_file.stat().st_mtime_ns))
    again = delta(rootfs, layers, changed_after_ns=made)
    assert files_of(again) == {"etc/app.conf"} and again.stats.hashed == 2


def test_a_file_written_in_the_second_its_mtime_names_is_hashed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a time the rootfs was made (a folder), only such a file needs its content,
    which is rare: the base's stream does not look at the rootfs for it (no lstat per base
    file); the base is read once more after the walk.  Where the time is known (a live
    root), the stream hashes what the walk will need, in its one read."""
    require_root("unpacking a base keeps its owners only as root")
    future = int(time.time()) + 3600     # an mtime not yet passed: any ctime is "as early"
    layers = [base_layer(tmp_path, [Item("f", data=b"aaaa", mtime=future),
                                    Item("g", data=b"gggg", mtime=future)])]
    rootfs = unpack(layers, tmp_path / "rootfs")
    (rootfs / "f").write_bytes(b"bbbb")
    os.utime(rootfs / "f", (future, future))
    opened: list[str] = []
    real_open = Layer.open

    def counting(self: Layer) -> object:
        opened.append(str(self.digest))
        return real_open(self)

    monkeypatch.setattr(Layer, "open", counting)
    result = delta(rootfs, layers)
    assert files_of(result) == {"f"}
    assert result.stats.hashed == 2      # f (differs) and g (same): both decided by content
    assert len(opened) == 2
    opened.clear()
    live = delta(rootfs, layers, changed_after_ns=time.time_ns() - 3_600_000_000_000)
    assert files_of(live) == {"f"} and live.stats.hashed == 2
    assert len(opened) == 1


def test_a_base_of_several_layers_is_merged_before_comparing(tmp_path: Path) -> None:
    require_root("unpacking a base keeps its owners only as root")
    lower = base_layer(tmp_path, [
        Item("a", "dir", mode=0o755), Item("a/gone", data=b"1"), Item("a/kept", data=b"2"),
        Item("b", "dir", mode=0o755), Item("b/old1", data=b"1"), Item("b/old2", data=b"2"),
        Item("c", "dir", mode=0o755), Item("c/inside", data=b"c"),
        Item("d", data=b"file first"),
    ], "lower")
    upper = base_layer(tmp_path, [
        Item("a", "dir", mode=0o755), Item("a/.wh.gone", "whiteout"),
        Item("b", "dir", mode=0o755), Item("b/.wh..wh..opq", "whiteout"),
        Item("b/new", data=b"n"),
        Item("c", data=b"c is a file now"),
        Item("d", "dir", mode=0o755), Item("d/x", data=b"x"),
    ], "upper")
    index = index_base([lower, upper], tmp_path, DeltaOptions())
    assert sorted(index.records) == [b"a", b"a/kept", b"b", b"b/new", b"c", b"d", b"d/x"]
    # the rootfs as a container would see that base: the delta is empty
    rootfs = tmp_path / "merged"
    (rootfs / "a").mkdir(parents=True)
    (rootfs / "a" / "kept").write_bytes(b"2")
    (rootfs / "b").mkdir()
    (rootfs / "b" / "new").write_bytes(b"n")
    (rootfs / "c").write_bytes(b"c is a file now")
    (rootfs / "d").mkdir()
    (rootfs / "d" / "x").write_bytes(b"x")
    for path in rootfs.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.utime(path, (OLD, OLD))
    assert members(delta(rootfs, [lower, upper])) == {}
    # each record is small: the packed attributes, a digest only when hashed, a link target
    assert max(len(record) for record in index.records.values()) <= 35


def test_pruned_paths_are_neither_exported_nor_deleted(std: tuple[list[Layer], Path]) -> None:
    layers, rootfs = std
    shutil.rmtree(rootfs / "usr" / "share" / "doc")             # pruned below: not a deletion
    (rootfs / "srv" / "www" / "index.html").write_text("changed, but pruned\n")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(rootfs / "etc" / "control.sock"))
        rules = {b"usr/share/doc": "docs", b"srv": "served"}
        result = delta(rootfs, layers, prune=lambda path, host: rules.get(path),
                       protected=frozenset(rules))
    finally:
        sock.close()
    assert files_of(result) == set()
    assert sorted(result.stats.pruned) == [("etc/control.sock", "socket"), ("srv", "served")]


def test_another_file_system_below_the_rootfs_is_left_out(
        std: tuple[list[Layer], Path]) -> None:
    layers, rootfs = std
    mount = require_tool("mount")
    volume = rootfs / "srv" / "data"
    volume.mkdir()
    run([mount, "-t", "tmpfs", "-o", "size=1m", "ociforge-test", str(volume)])
    try:
        (volume / "db").write_text("volume data\n")
        result = delta(rootfs, layers)
    finally:
        run([require_tool("umount"), str(volume)])
    assert ("srv/data", "other-filesystem") in result.stats.pruned
    assert not [name for name in members(result) if name.startswith("srv/data")]


def test_rules_judge_only_what_changed(std: tuple[list[Layer], Path]) -> None:
    layers, rootfs = std
    (rootfs / "etc" / "app.conf").write_text("changed\n")
    (rootfs / "etc" / "site.lic").write_text("LICENSE KEY\n")
    asked: list[str] = []

    def skip(image_path: str, host: Path) -> str | None:
        asked.append(image_path)
        return "license-key-file" if image_path.endswith(".lic") else None

    result = delta(rootfs, layers, skip=skip)
    assert sorted(asked) == ["etc/app.conf", "etc/site.lic"]
    assert files_of(result) == {"etc/app.conf"}


def test_a_file_that_changes_while_it_is_read_is_an_error_naming_it(
        std: tuple[list[Layer], Path]) -> None:
    layers, rootfs = std
    grows = rootfs / "srv" / "growing.log"
    grows.write_bytes(b"x" * 4096)

    def writer(image_path: str, host: Path) -> None:
        # after the walk saw the file (the rules are asked about it), a writer appends
        if image_path == "srv/growing.log":
            with open(host, "ab") as fh:
                fh.write(b"more")
        return None

    with pytest.raises(OperationError, match=r"srv/growing\.log grew"):
        delta(rootfs, layers, skip=writer)

    def replacer(image_path: str, host: Path) -> None:
        if image_path == "srv/growing.log":     # another file takes its name
            os.replace(host, rootfs / "srv" / "moved.log")
            (rootfs / "srv" / "growing.log").write_bytes(b"y" * 4100)
        return None

    with pytest.raises(OperationError, match=r"growing\.log was replaced"):
        delta(rootfs, layers, skip=replacer)


def test_special_files_are_reported_not_read(std: tuple[list[Layer], Path]) -> None:
    layers, rootfs = std
    os.mkfifo(rootfs / "etc" / "pipe")
    result = delta(rootfs, layers)
    assert files_of(result) == set()
    assert any("etc/pipe" in warning and "fifo" in warning for warning in result.build.warnings)
    assert stat.S_ISFIFO(os.lstat(rootfs / "etc" / "pipe").st_mode)



def test_a_kept_index_reads_the_base_again_only_for_content_it_must_compare(
        std: tuple[list[Layer], Path]) -> None:
    """An index kept without digests (the cache's) decides by metadata alone; a file whose
    content must decide is hashed from the layers after the walk, in one more read."""
    from ociforge.layers.delta import BaseIndex

    layers, rootfs = std
    made = time.time_ns()
    time.sleep(0.05)
    kept = index_base(layers, rootfs, DeltaOptions(changed_after_ns=made)).to_bytes()
    assert len(kept) < 60 * len(standard_base())       # compact: bytes, no digests
    with pytest.raises(ValueError):
        BaseIndex.from_bytes(kept[:-3], os.fsencode(rootfs), DeltaOptions(), layers)

    def again(**options: object) -> DeltaResult:
        opts = DeltaOptions(**options)  # type: ignore[arg-type]
        index = BaseIndex.from_bytes(kept, os.fsencode(rootfs), opts, layers)
        return build_delta(rootfs, index, SETTINGS, opts)

    (rootfs / "srv" / "www" / "new.html").write_text("new\n")
    plain = again(changed_after_ns=made)
    assert files_of(plain) == {"srv/www/new.html"} and plain.stats.hashed == 0
    conf = rootfs / "etc" / "app.conf"
    before = conf.stat()
    conf.write_text("mode=TWO\n")
    os.utime(conf, ns=(before.st_atime_ns, before.st_mtime_ns))
    index_file = rootfs / "srv" / "www" / "index.html"
    os.utime(index_file, ns=(time.time_ns(), index_file.stat().st_mtime_ns))  # only touched
    result = again(changed_after_ns=made)
    assert files_of(result) == {"srv/www/new.html", "etc/app.conf"}
    assert result.stats.hashed == 2
    assert result.layer.digest == delta(rootfs, layers, changed_after_ns=made).layer.digest
