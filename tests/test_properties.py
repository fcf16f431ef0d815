"""Property tests over every parser of untrusted input (issue 6 item 4).

The property is the same everywhere: whatever the input, the parser either
returns a value or raises one of ociforge's own errors (an OciforgeError
subclass, which the CLI turns into one line and exit 2).  A KeyError,
IndexError, UnicodeError or RecursionError escaping would be a traceback for
the user, so hypothesis hunts for one.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ociforge.errors import InvalidInputError, OciforgeError

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
HEX = "0123456789abcdef"
DIGEST = "sha256:" + "a" * 64


# -- references -------------------------------------------------------------

_ref_alphabet = st.sampled_from([*"abcAZ09._-/:@[]+ \t\n\x00é", "sha256:", "docker://",
                                 "localhost", ".."])
_near_refs = st.lists(_ref_alphabet, max_size=40).map("".join)


def _structured_refs() -> st.SearchStrategy[str]:
    component = st.from_regex(r"[a-z0-9]{1,8}([._-]{1,2}[a-z0-9]{1,8}){0,2}", fullmatch=True)
    host = st.one_of(st.just(""), st.sampled_from(["docker.io/", "localhost:5000/",
                                                   "127.0.0.1:1/", "[::1]:5000/", "ghcr.io/",
                                                   "EXAMPLE.com/", "a_b.com/", "h:99999999/"]))
    tag = st.one_of(st.just(""), st.text(alphabet="aZ09_.-:", min_size=1, max_size=140)
                    .map(lambda t: ":" + t))
    digest = st.one_of(st.just(""), st.text(alphabet=HEX + "AG:", min_size=0, max_size=70)
                       .map(lambda h: "@sha256:" + h), st.just("@" + DIGEST))
    return st.tuples(host, st.lists(component, min_size=0, max_size=4).map("/".join), tag,
                     digest).map("".join)


@FAST
@given(st.one_of(st.text(max_size=300), _near_refs, _structured_refs()))
@example("a" * 300)
@example("docker://" + "/" * 10)
@example("[::1/a")
@example("localhost:/a")
def test_reference_parser_raises_only_ociforge_errors(text: str) -> None:
    from ociforge.model.reference import Reference

    try:
        ref = Reference.parse(text)
    except OciforgeError as exc:
        assert isinstance(exc, InvalidInputError), f"{text!r}: {type(exc).__name__}"
        return
    # what parses prints and re-parses to the same value
    assert Reference.parse(str(ref)) == ref
    assert ref.repository == ref.repository.lower()


@FAST
@given(st.one_of(st.text(max_size=100), _near_refs))
def test_location_parser_raises_only_ociforge_errors(text: str) -> None:
    from ociforge.stores.locations import parse_location

    with contextlib.suppress(OciforgeError):
        parse_location(text)


# -- platforms ----------------------------------------------------------------

_plat_parts = st.sampled_from(["linux", "windows", "darwin", "amd64", "arm64", "arm", "x86_64",
                               "aarch64", "v7", "v8", "7", "LINUX", "", " ", "é", "x" * 70, "*"])


@FAST
@given(st.one_of(st.text(max_size=100),
                 st.lists(_plat_parts, max_size=5).map("/".join)))
def test_platform_parser_raises_only_ociforge_errors(text: str) -> None:
    from ociforge.model.platform import Platform

    try:
        platform = Platform.parse(text)
    except OciforgeError as exc:
        assert isinstance(exc, InvalidInputError)
        return
    assert Platform.parse(str(platform)) == platform


_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                          st.text(max_size=20))
_json = st.recursive(_json_scalars,
                     lambda inner: st.one_of(st.lists(inner, max_size=4),
                                             st.dictionaries(st.text(max_size=12), inner,
                                                             max_size=5)),
                     max_leaves=20)


@FAST
@given(st.one_of(_json, st.fixed_dictionaries(
    {}, optional={"os": _json, "architecture": _json, "variant": _json, "os.version": _json,
                  "os.features": _json})))
def test_platform_from_document_raises_only_ociforge_errors(data: Any) -> None:
    from ociforge.model.platform import Platform

    with contextlib.suppress(OciforgeError):
        Platform.from_dict(data)


# -- manifests, configs, descriptors read from disk or a registry --------------

_descriptor_like = st.fixed_dictionaries({}, optional={
    "mediaType": st.one_of(st.sampled_from(["application/vnd.oci.image.layer.v1.tar+gzip",
                                            "application/vnd.oci.image.config.v1+json",
                                            "bad", ""]), _json),
    "digest": st.one_of(st.just(DIGEST), st.text(alphabet=HEX + "sha256:", max_size=80), _json),
    "size": st.one_of(st.integers(min_value=-2, max_value=1 << 70), _json),
    "annotations": _json, "platform": _json, "urls": _json, "artifactType": _json, "data": _json,
})


@FAST
@given(st.one_of(_json, _descriptor_like))
def test_descriptor_from_document_raises_only_ociforge_errors(data: Any) -> None:
    from ociforge.model.descriptor import Descriptor

    with contextlib.suppress(OciforgeError):
        Descriptor.from_dict(data)


def _manifests() -> st.SearchStrategy[bytes]:
    doc = st.fixed_dictionaries({}, optional={
        "schemaVersion": _json, "mediaType": _json,
        "config": st.one_of(_descriptor_like, _json),
        "layers": st.one_of(st.lists(st.one_of(_descriptor_like, _json), max_size=3), _json),
        "manifests": st.one_of(st.lists(st.one_of(_descriptor_like, _json), max_size=3), _json),
        "annotations": _json, "subject": _json,
    })
    return st.one_of(doc.map(lambda d: json.dumps(d).encode()), st.binary(max_size=200),
                     _json.map(lambda d: json.dumps(d).encode()),
                     st.just(b"[" * 100_000 + b"]" * 100_000),
                     st.just(b'{"a":' + b"1" * 5000 + b"}"))


@FAST
@given(_manifests(), st.one_of(st.binary(max_size=100), _json.map(lambda d: json.dumps(d)
                                                                 .encode())))
def test_image_from_documents_raises_only_ociforge_errors(manifest: bytes, config: bytes) -> None:
    from ociforge.model.descriptor import Descriptor
    from ociforge.model.image import Image
    from ociforge.model.layer import Layer

    def opener(desc: Descriptor) -> Layer:
        return Layer(desc, None, lambda: io.BytesIO(b""))

    with contextlib.suppress(OciforgeError):
        Image.from_documents(manifest, config, opener)


def test_documents_over_four_mib_are_refused() -> None:
    from ociforge.model.jsonutil import MAX_DOCUMENT, parse_object

    big = b'{"a":"' + b"x" * MAX_DOCUMENT + b'"}'
    with pytest.raises(InvalidInputError, match="limit"):
        parse_object(big, "image manifest")


# -- ociforge.toml --------------------------------------------------------------

_SCHEMA = {
    "app": ["name", "base", "platform", "licensed"],
    "config": ["entrypoint", "cmd", "env", "env_file", "workdir", "user", "ports", "labels",
               "volumes", "stop_signal"],
    "layers": ["src", "dest", "exclude"],
    "files": ["src", "dest", "exclude"],
    "tables": ["name", "source", "table", "query", "format", "dest"],
    "licenses": ["env", "files"],
    "secrets": ["env", "files"],
}

_toml_scalars = st.one_of(
    st.booleans(), st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["app", "/", "../x", "/etc", "sqlite:///db.sqlite", "postgresql://u:p@h/d",
                     "linux/amd64", "8080/tcp", "0", "70000", "a..b", "~", ".", "data",
                     "scratch", "\x00", "x/../../y", "parquet", "csv"]),
)
_toml_values = st.recursive(
    _toml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)


def _section(name: str) -> st.SearchStrategy[dict[str, Any]]:
    keys = st.one_of(st.sampled_from(_SCHEMA[name]), st.text(min_size=1, max_size=6))
    return st.dictionaries(keys, _toml_values, max_size=5)


_spec_docs = st.fixed_dictionaries({}, optional={
    "app": st.one_of(_section("app"), _toml_values,
                     st.fixed_dictionaries({"name": st.sampled_from(["app", "App", "a/b"])},
                                           optional={"base": _toml_values,
                                                     "platform": _toml_values,
                                                     "licensed": _toml_values})),
    "config": st.one_of(_section("config"), _toml_values),
    "layers": st.one_of(st.lists(_section("layers"), max_size=2), _toml_values),
    "files": st.one_of(_section("files"), _toml_values),
    "tables": st.one_of(st.lists(_section("tables"), max_size=2), _toml_values),
    "licenses": st.one_of(_section("licenses"), _toml_values),
    "secrets": _section("secrets"),
    "extra": _toml_values,
})


def _toml_key(key: str) -> str:
    return json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def to_toml(doc: dict[str, Any]) -> str:
    """A small TOML writer: tables as [headers], arrays of tables as [[headers]]."""
    lines: list[str] = []
    for name, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"[{_toml_key(name)}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                lines.append(f"[[{_toml_key(name)}]]")
                lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items()]
        else:
            lines.insert(0, f"{_toml_key(name)} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def app_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "app"
        (root / "bin").mkdir(parents=True)
        (root / "bin" / "run").write_text("#!/bin/sh\n")
        (root / "data").mkdir()
        (root / ".env").write_text("A=1\n")
        (root / "out").symlink_to("/etc")
        yield root


def _load(app_dir: Path, text: str | bytes) -> None:
    from ociforge.app.spec import load_spec

    target = app_dir / "ociforge.toml"
    if isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_spec(app_dir)
    except OciforgeError as exc:
        assert isinstance(exc, InvalidInputError), type(exc)
        assert str(exc).strip()


@FAST
@given(doc=_spec_docs)
def test_toml_loader_raises_only_ociforge_errors_structured(app_dir: Path,
                                                          doc: dict[str, Any]) -> None:
    _load(app_dir, to_toml(doc))


@FAST
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=200)))
@example(text='[app]\nname = "app"\n[config]\nports = [99999]\n')
@example(text='[app]\nname = "app"\n[[layers]]\nsrc = "out"\ndest = "/x"\n')
@example(text='[app]\nname = "app"\n[[layers]]\nsrc = "bin\\u0000"\ndest = "/x"\n')
@example(text='[app]\nname = "app"\n[config]\nenv_file = ".env"\nentrypoint = "a \'b"\n')
@example(text=b"\xff\xfe[app]")
@example(text='[app]\nname = "app"\n[[tables]]\nsource = "sqlite:///x"\ntable = "t"\n'
         'name = "t"\n[[tables]]\nsource = "sqlite:///x"\ntable = "t"\n')
def test_toml_loader_raises_only_ociforge_errors_text(app_dir: Path, text: str | bytes) -> None:
    _load(app_dir, text)


def test_toml_wrong_types_name_key_and_line(app_dir: Path) -> None:
    from ociforge.app.spec import load_spec
    from ociforge.errors import ConfigFileError

    cases = {
        '[app]\nname = "app"\nlicensed = "yes"\n': ("app.licensed", ":3"),
        '[app]\nname = 5\n': ("app.name", ":2"),
        '[app]\nname = "app"\n\n[config]\nenv = ["A=1"]\n': ("config.env", ":5"),
        '[app]\nname = "app"\n[[layers]]\nsrc = "bin"\ndest = 7\n': ("layers[0].dest", ":5"),
        '[app]\nname = "app"\n[config]\nports = [true]\n': ("config.ports", ":4"),
        '[app]\nname = "app"\n[[tables]]\nsource = 1\ntable = "t"\n': ("tables[0].source", ":4"),
        '[app]\nname = "app"\n[[layers]]\nsrc = "../etc"\ndest = "/x"\n': ("layers[0].src", ":4"),
    }
    for text, (key, line) in cases.items():
        (app_dir / "ociforge.toml").write_text(text)
        with pytest.raises(ConfigFileError) as info:
            load_spec(app_dir)
        message = str(info.value)
        assert key in message and line in message, (text, message)
        assert info.value.exit_code == 2


# -- tar layers ---------------------------------------------------------------------


def _valid_tar() -> bytes:
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("a", b"hello"), ("dir/b" + "é" * 60, b"x" * 700)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("dir/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
        hard = tarfile.TarInfo("hard")
        hard.type = tarfile.LNKTYPE
        hard.linkname = "a"
        tar.addfile(hard)
    return out.getvalue()


VALID_TAR = _valid_tar()


@st.composite
def _mutated_tars(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID_TAR)
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        pos = draw(st.integers(min_value=0, max_value=len(data) - 1))
        data[pos] = draw(st.integers(min_value=0, max_value=255))
    cut = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=len(data))))
    return bytes(data[:cut] if cut is not None else data)


@FAST
@given(st.one_of(st.binary(max_size=3000), _mutated_tars(),
                 _mutated_tars().map(lambda b: __import__("gzip").compress(b, mtime=0))))
@example(VALID_TAR)
@example(b"\x1f\x8b" + b"\x00" * 30)
@example(b"\x28\xb5\x2f\xfd" + b"\x00" * 30)
def test_tar_reader_raises_only_ociforge_errors(data: bytes) -> None:
    from ociforge.layers import tarsafe

    limits = tarsafe.Limits(max_entries=50, max_total_bytes=1 << 20, max_entry_size=1 << 19)
    try:
        list(tarsafe.iter_entries(io.BytesIO(data), limits))
        tarsafe.check_layer(io.BytesIO(data), limits)
    except OciforgeError as exc:
        assert isinstance(exc, InvalidInputError), type(exc)


# -- env files captured from running applications ----------------------------------------

_env_lines = st.lists(st.one_of(
    st.text(max_size=40),
    st.tuples(st.sampled_from(["", "export ", "  export   "]),
              st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
              st.sampled_from(["=", " = ", "=="]),
              st.one_of(st.text(max_size=20), st.text(max_size=20).map(lambda v: f'"{v}"'),
                        st.text(max_size=20).map(lambda v: f"'{v}'"))).map("".join)),
    max_size=8).map("\n".join)


@FAST
@given(_env_lines)
def test_env_file_parser_never_shows_a_value_in_errors(text: str) -> None:
    from ociforge.app.envfile import parse_env_text

    try:
        env = parse_env_text(text, "runtime.env")
    except OciforgeError as exc:
        assert isinstance(exc, InvalidInputError)
        # errors name the file and line, never the value (it may be a secret)
        assert str(exc).startswith("runtime.env:"), str(exc)
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())


# -- headers a hostile registry controls ------------------------------------------------------

_challenge_parts = st.sampled_from(['Bearer ', 'Basic ', 'bearer ', 'Negotiate', 'realm=',
                                    'realm="http://h/t"', 'service="s"', 'scope="a:b:pull"',
                                    ',', '"', '\\\\', '=', ' ', 'error="invalid_token"',
                                    'realm="a,b"', '\t', 'é', '\x00'])


@FAST
@given(st.one_of(st.text(max_size=200), st.lists(_challenge_parts, max_size=12).map("".join)))
@example('Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"')
@example('Bearer realm="unterminated')
@example("Basic")
def test_www_authenticate_parser_raises_only_ociforge_errors(header: str) -> None:
    from ociforge.remote.auth import parse_challenges

    try:
        challenges = parse_challenges(header)
    except OciforgeError:
        return
    assert isinstance(challenges, list)


_auth_entry = st.fixed_dictionaries({}, optional={
    "auth": st.one_of(_json, st.sampled_from(["dTpw", "OnA=", "dTo=", "!!", "dQ==", ""])),
    "username": _json, "password": _json, "identitytoken": _json, "registrytoken": _json,
})
_config_docs = st.fixed_dictionaries({}, optional={
    "auths": st.one_of(_json, st.dictionaries(
        st.sampled_from(["127.0.0.1:5000", "http://127.0.0.1:5000/v1/", "https://127.0.0.1:5000",
                         "127.0.0.1:5000/ns", "other"]), st.one_of(_auth_entry, _json),
        max_size=3)),
    "credHelpers": st.one_of(_json, st.dictionaries(st.just("127.0.0.1:5000"), _json,
                                                    max_size=1)),
    "credsStore": st.one_of(st.none(), st.integers(), st.just("")),
})


@FAST
@given(st.one_of(_config_docs.map(lambda d: json.dumps(d).encode()), st.binary(max_size=100)))
def test_credential_files_raise_only_ociforge_errors(data: bytes) -> None:
    import os

    from ociforge.remote.credentials import lookup

    path = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    try:
        lookup("127.0.0.1:5000", "ns/app")
    except OciforgeError as exc:
        assert isinstance(exc, InvalidInputError), type(exc)
