"""Platform parsing, normalisation and matching."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ociforge.errors import InvalidPlatformError, OciforgeError
from ociforge.model.platform import Platform


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("amd64", "linux/amd64"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/v6", "linux/arm/v6"),
        ("LINUX/AMD64", "linux/amd64"),
        ("windows/amd64", "windows/amd64"),
        ("linux/riscv64", "linux/riscv64"),
    ],
)
def test_parse(text: str, expected: str) -> None:
    assert str(Platform.parse(text)) == expected


@pytest.mark.parametrize(
    "text", ["", "/", "linux/", "linux//v7", "linux/amd64/v1/x", "plan10/amd64", "linux/z80",
             "linux/amd 64", "linux\\amd64"]
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidPlatformError):
        Platform.parse(text)


def test_matches_normalises_aliases() -> None:
    assert Platform("linux", "aarch64").matches(Platform.parse("linux/arm64/v8"))
    assert not Platform.parse("linux/arm/v6").matches(Platform.parse("linux/arm/v7"))
    assert not Platform.parse("linux/amd64").matches(Platform.parse("linux/arm64"))


def test_dict_roundtrip() -> None:
    p = Platform("windows", "amd64", None, "10.0.17763.1234", ("win32k",))
    assert Platform.from_dict(p.to_dict()) == p
    assert Platform.parse("linux/arm/v7").to_dict() == {
        "architecture": "arm", "os": "linux", "variant": "v7"}


def test_host_is_parseable() -> None:
    host = Platform.host()
    assert Platform.parse(str(host)).matches(host)


@given(st.text(max_size=40))
def test_parse_never_raises_foreign_errors(text: str) -> None:
    with contextlib.suppress(OciforgeError):
        Platform.parse(text)


@given(st.dictionaries(st.sampled_from(["os", "architecture", "variant", "os.version",
                                        "os.features"]),
                       st.one_of(st.text(max_size=5), st.integers(), st.none(),
                                 st.lists(st.text(max_size=3)))))
def test_from_dict_never_raises_foreign_errors(data: dict) -> None:
    with contextlib.suppress(OciforgeError):
        Platform.from_dict(data)
