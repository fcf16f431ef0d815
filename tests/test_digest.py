"""Digest parsing and the verifying reader that guards every blob read."""

from __future__ import annotations

import hashlib
import io

import pytest

from ociforge.errors import DigestMismatchError, InvalidInputError, SizeMismatchError
from ociforge.model.digest import Digest, HashingWriter, VerifyingReader, read_all_verified

DATA = b"hello, layers\n" * 1000
HEX = hashlib.sha256(DATA).hexdigest()


def test_parse_roundtrip() -> None:
    d = Digest.parse(f"sha256:{HEX}")
    assert d.algorithm == "sha256" and d.hex == HEX
    assert str(d) == f"sha256:{HEX}"
    assert d == Digest.of_bytes(DATA)


@pytest.mark.parametrize(
    "text",
    ["", "sha256", "sha256:", f"SHA256:{HEX}", f"sha256:{HEX.upper()}", f"sha256:{HEX[:-1]}",
     f"md5:{HEX}", "sha256:zz", f" sha256:{HEX}", f"sha512:{HEX}"],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidInputError):
        Digest.parse(text)


def test_hashing_writer_counts_and_hashes() -> None:
    sink = io.BytesIO()
    w = HashingWriter(sink)
    for i in range(0, len(DATA), 333):
        w.write(DATA[i : i + 333])
    assert w.size == len(DATA)
    assert w.digest == Digest.of_bytes(DATA)
    assert sink.getvalue() == DATA


def test_verifying_reader_accepts_good_blob() -> None:
    r = VerifyingReader(io.BytesIO(DATA), Digest.of_bytes(DATA), len(DATA))
    out = b""
    while chunk := r.read(4096):
        out += chunk
    assert out == DATA


def test_verifying_reader_rejects_wrong_bytes() -> None:
    bad = DATA[:-1] + b"X"
    r = VerifyingReader(io.BytesIO(bad), Digest.of_bytes(DATA), len(DATA))
    with pytest.raises(DigestMismatchError, match=HEX[:12]):
        r.read()


def test_verifying_reader_rejects_truncated_and_overlong() -> None:
    with pytest.raises(SizeMismatchError):
        VerifyingReader(io.BytesIO(DATA[:-10]), Digest.of_bytes(DATA), len(DATA)).read()
    with pytest.raises(SizeMismatchError):
        VerifyingReader(io.BytesIO(DATA + b"more"), Digest.of_bytes(DATA), len(DATA)).read()


def test_read_all_verified_enforces_limit() -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        read_all_verified(io.BytesIO(DATA), Digest.of_bytes(DATA), None, limit=100)
    assert read_all_verified(io.BytesIO(DATA), Digest.of_bytes(DATA), len(DATA), 1 << 20) == DATA
