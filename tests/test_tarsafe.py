"""The untrusted-tar reader: hostile archives refused, real ones read, nothing else escapes."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ociforge.errors import HostileInputError, InvalidInputError, OciforgeError
from ociforge.layers import tarformat
from ociforge.layers.tarsafe import Limits, TarReader, check_layer, iter_entries


def make_tar(
    *members: tuple[tarfile.TarInfo, bytes | None], fmt: int = tarfile.PAX_FORMAT
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def reg(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def entries(blob: bytes, limits: Limits | None = None) -> list:
    return list(iter_entries(io.BytesIO(blob), limits))


def test_reads_an_ordinary_layer() -> None:
    blob = make_tar(
        special("./", tarfile.DIRTYPE),
        special("./etc/", tarfile.DIRTYPE),
        reg("./etc/hosts", b"127.0.0.1 localhost\n"),
        special("./etc/abs", tarfile.SYMTYPE, "/usr/share/zoneinfo/UTC"),
        special("./etc/up", tarfile.SYMTYPE, "../../../../outside"),  # a symlink is just data
        special("./etc/hosts2", tarfile.LNKTYPE, "./etc/hosts"),
        special("./dev/null", tarfile.CHRTYPE),
        reg("./" + "n" * 150, b"long"),
        reg("./\u00fcn\u00efcode", b"u"),
        reg("./etc/.wh.gone", b""),
    )
    got = entries(blob)
    assert [e.name for e in got] == [
        "", "etc", "etc/hosts", "etc/abs", "etc/up", "etc/hosts2", "dev/null", "n" * 150,
        "\u00fcn\u00efcode", "etc/.wh.gone",
    ]
    by = {e.name: e for e in got}
    assert by["etc/abs"].type == "symlink" and by["etc/abs"].linkname == "/usr/share/zoneinfo/UTC"
    assert by["etc/hosts2"].type == "hardlink" and by["etc/hosts2"].linkname == "etc/hosts"
    assert by["etc/hosts"].size == 20
    assert by["etc/.wh.gone"].is_whiteout


def test_reader_gives_entry_data() -> None:
    blob = make_tar(reg("a", b"alpha" * 300), reg("b", b"beta"))
    reader = TarReader(io.BytesIO(blob))
    contents = {}
    for entry in reader:
        if entry.name == "a":
            contents[entry.name] = reader.read(7) + reader.read()
        # "b" is left unread: the reader skips it
    assert contents == {"a": b"alpha" * 300}


def test_check_layer_diff_id_and_count_over_compressed_input() -> None:
    plain = make_tar(reg("a", b"1"), reg("b", b"2")) + b"\0" * 512  # trailing bytes count too
    for blob in (plain, gzip.compress(plain)):
        diff_id, count = check_layer(io.BytesIO(blob))
        assert diff_id.hex == hashlib.sha256(plain).hexdigest()
        assert count == 2


def test_our_own_tar_headers_read_back() -> None:
    name = ("d" * 90 + "/\u00e9" * 40).encode()
    blob = (
        tarformat.header(
            name, mode=0o755, uid=5, gid=6, size=3, mtime=9, typeflag=tarformat.REGTYPE
        )
        + b"abc" + tarformat.padding(3)
        + tarformat.header(b"l", mode=0o777, uid=0, gid=0, size=0, mtime=0,
                           typeflag=tarformat.SYMTYPE, linkname=b"/" + b"t" * 200)
        + tarformat.END_OF_ARCHIVE
    )
    got = entries(blob)
    assert got[0].name == name.decode() and got[0].mode == 0o755 and got[0].uid == 5
    assert got[1].linkname == "/" + "t" * 200
    with tarfile.open(fileobj=io.BytesIO(blob)) as tf:
        assert tf.getnames() == [name.decode(), "l"]


HOSTILE = {
    "dotdot": make_tar(reg("../../etc/passwd")),
    "dotdot-inside": make_tar(reg("a/../../x")),
    "absolute": make_tar(reg("/etc/passwd")),
    "slip-symlink-dir": make_tar(
        special("evil", tarfile.SYMTYPE, "/etc"), reg("evil/passwd", b"root::0:0::/:/bin/sh")
    ),
    "slip-relative-symlink": make_tar(
        special("a", tarfile.DIRTYPE),
        special("a/up", tarfile.SYMTYPE, "../.."),
        reg("a/up/x"),
    ),
    "slip-hardlink-through-symlink": make_tar(
        special("evil", tarfile.SYMTYPE, "/etc"),
        special("pw", tarfile.LNKTYPE, "evil/shadow"),
    ),
    "hardlink-to-missing": make_tar(special("h", tarfile.LNKTYPE, "nothing-here")),
    "hardlink-to-later": make_tar(special("h", tarfile.LNKTYPE, "later"), reg("later")),
    "hardlink-dotdot": make_tar(reg("a"), special("h", tarfile.LNKTYPE, "../a")),
    "hardlink-absolute": make_tar(reg("a"), special("h", tarfile.LNKTYPE, "/etc/shadow")),
    "pax-path-dotdot": make_tar(reg("x" * 120 + "/../../../../../../../tmp/pwn")),
    "gnu-longname-dotdot": make_tar(reg("../" * 40 + "etc/cron.d/x"), fmt=tarfile.GNU_FORMAT),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused(case: str) -> None:
    with pytest.raises(HostileInputError):
        entries(HOSTILE[case])


def test_error_names_the_entry() -> None:
    with pytest.raises(HostileInputError, match=r"evil/passwd.*symlink 'evil'"):
        entries(HOSTILE["slip-symlink-dir"])


def raw_pax(records: bytes, then: bytes | None = None) -> bytes:
    pax = tarformat._header_block(b"././@PaxHeader", 0o644, 0, 0, len(records), 0, b"x", b"")
    body = then or tarformat.header(b"f", mode=0o644, uid=0, gid=0, size=0, mtime=0,
                                    typeflag=tarformat.REGTYPE)
    return pax + records + tarformat.padding(len(records)) + body + tarformat.END_OF_ARCHIVE


@pytest.mark.parametrize(
    "records",
    [
        b"99999 path=x\n",  # length beyond the header
        b"5 p\n",  # no '='
        b"abc path=x\n",  # length not a number
        b"12 path=a\0b\n",  # NUL in a name
        tarformat.pax_record(b"size", b"-5"),
        tarformat.pax_record(b"size", b"1" * 30),
        tarformat.pax_record(b"mtime", b"nan"),
        tarformat.pax_record(b"uid", b"0x10"),
    ],
)
def test_pax_abuse_is_refused(records: bytes) -> None:
    with pytest.raises(HostileInputError):
        entries(raw_pax(records))


def test_oversized_pax_header_is_refused() -> None:
    records = tarformat.pax_record(b"comment", b"x" * (2 << 20))
    with pytest.raises(HostileInputError, match="PAX"):
        entries(raw_pax(records))


def test_limits() -> None:
    many = make_tar(*(reg(f"f{i}") for i in range(50)))
    with pytest.raises(HostileInputError, match="headers"):
        entries(many, Limits(max_entries=10))
    big = make_tar(reg("big", b"x" * 100_000))
    with pytest.raises(HostileInputError, match="big"):
        entries(big, Limits(max_entry_size=10_000))
    with pytest.raises(HostileInputError, match="limit"):
        check_layer(io.BytesIO(big), Limits(max_total_bytes=50_000))


def test_claimed_huge_size_is_refused_without_reading() -> None:
    header = tarformat.header(b"huge", mode=0o644, uid=0, gid=0, size=1 << 40, mtime=0,
                              typeflag=tarformat.REGTYPE)
    with pytest.raises(HostileInputError, match="huge"):
        entries(header)


def test_gzip_bomb_layer_is_bounded() -> None:
    # a 1 GiB entry of zeros as a ~1 MiB multi-member gzip: one 16 MiB member, repeated
    header = tarformat.header(b"zeros", mode=0o644, uid=0, gid=0, size=1 << 30, mtime=0,
                              typeflag=tarformat.REGTYPE)
    member = gzip.compress(b"\0" * (16 << 20), compresslevel=1)
    bomb = gzip.compress(header) + member * 64
    assert len(bomb) < 8 << 20
    with pytest.raises(HostileInputError, match="limit"):
        check_layer(io.BytesIO(bomb), Limits(max_total_bytes=32 << 20))


@pytest.mark.parametrize(
    "blob",
    [
        make_tar(reg("a", b"data" * 1000))[:700],  # truncated in the data
        make_tar(reg("a"))[:300],  # truncated in a header
        b"\x01" * 512,  # bad checksum
        make_tar(special("s", b"S")),  # GNU sparse
        make_tar(special("v", b"V")),  # volume label
    ],
)
def test_malformed_archives_are_invalid_input(blob: bytes) -> None:
    with pytest.raises(InvalidInputError):
        entries(blob)


def test_empty_stream_is_an_empty_layer() -> None:
    assert entries(b"") == []
    assert entries(b"\0" * 1024) == []


VALID = make_tar(
    special("d/", tarfile.DIRTYPE),
    reg("d/f", b"hello"),
    special("d/l", tarfile.SYMTYPE, "/abs"),
    special("d/h", tarfile.LNKTYPE, "d/f"),
    reg("x" * 130, b"long"),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_only_raise_our_errors(blob: bytes) -> None:
    with contextlib.suppress(OciforgeError):
        check_layer(io.BytesIO(blob), Limits(max_total_bytes=1 << 20))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=12
    ),
    st.sampled_from(["none", "gzip"]),
)
def test_mutated_tars_only_raise_our_errors(flips: list[tuple[int, int]], wrap: str) -> None:
    blob = bytearray(VALID)
    for pos, value in flips:
        blob[pos] = value
    data = gzip.compress(bytes(blob)) if wrap == "gzip" else bytes(blob)
    try:
        for entry in iter_entries(io.BytesIO(data), Limits(max_total_bytes=1 << 20)):
            assert ".." not in entry.name.split("/")
            assert not entry.name.startswith("/")
    except OciforgeError:
        pass


NAME_PARTS = st.sampled_from(["a", "b", "..", ".", "", "l", "\u00e9", "x" * 60])
TYPES = st.sampled_from(
    [tarformat.REGTYPE, tarformat.DIRTYPE, tarformat.SYMTYPE, tarformat.LNKTYPE]
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(NAME_PARTS, min_size=1, max_size=4),
            TYPES,
            st.lists(NAME_PARTS, max_size=3),
            st.booleans(),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_accepted_archives_never_escape(
    spec: list[tuple[list[str], bytes, list[str], bool]],
) -> None:
    """Structured archives of tricky names: whatever is accepted stays inside the root."""
    blob = b""
    for parts, kind, link_parts, absolute in spec:
        name = ("/" if absolute else "") + "/".join(parts)
        link = "/".join(link_parts)
        blob += tarformat.header(
            name.encode(), mode=0o644, uid=0, gid=0, size=0, mtime=0, typeflag=kind,
            linkname=link.encode() if kind in (tarformat.SYMTYPE, tarformat.LNKTYPE) else b"",
        )
    blob += tarformat.END_OF_ARCHIVE
    try:
        accepted = list(iter_entries(io.BytesIO(blob)))
    except OciforgeError:
        return
    symlinks: set[str] = set()
    files: set[str] = set()
    for entry in accepted:
        parts = entry.name.split("/")
        assert ".." not in parts and not entry.name.startswith("/")
        assert not any("/".join(parts[:i]) in symlinks for i in range(1, len(parts)))
        if entry.type == "symlink":
            symlinks.add(entry.name)
        if entry.type == "hardlink":
            assert entry.linkname in files
        if entry.type != "dir":
            files.add(entry.name)
