"""Reference parsing against Docker's normalisation rules (distribution/reference)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ociforge.errors import InvalidReferenceError, OciforgeError
from ociforge.model.reference import Reference, credential_key, normalize_name

D = "sha256:" + "a" * 64

GOOD = [
    # text, registry, repository, tag, digest
    ("alpine", "docker.io", "library/alpine", "latest", None),
    ("alpine:3.20", "docker.io", "library/alpine", "3.20", None),
    ("user/app:1", "docker.io", "user/app", "1", None),
    ("docker.io/alpine", "docker.io", "library/alpine", "latest", None),
    ("index.docker.io/library/alpine", "docker.io", "library/alpine", "latest", None),
    ("registry-1.docker.io/me/app:x", "docker.io", "me/app", "x", None),
    ("docker://alpine:edge", "docker.io", "library/alpine", "edge", None),
    (f"alpine@{D}", "docker.io", "library/alpine", None, D),
    (f"alpine:3@{D}", "docker.io", "library/alpine", "3", D),
    ("localhost/app", "localhost", "app", "latest", None),
    ("localhost:5000/ns/app:v1", "localhost:5000", "ns/app", "v1", None),
    (f"127.0.0.1:5000/ns/app@{D}", "127.0.0.1:5000", "ns/app", None, D),
    ("ghcr.io/me/app:1", "ghcr.io", "me/app", "1", None),
    ("Example.COM/a", "Example.COM", "a", "latest", None),
    ("[::1]:5000/a/b", "[::1]:5000", "a/b", "latest", None),
    ("quay.io/a/b/c/d", "quay.io", "a/b/c/d", "latest", None),
    ("a__b/c--d/e.f_g", "docker.io", "a__b/c--d/e.f_g", "latest", None),
    ("app:_tag-1.X", "docker.io", "library/app", "_tag-1.X", None),
    ("app:" + "t" * 128, "docker.io", "library/app", "t" * 128, None),
    ("  alpine  ", "docker.io", "library/alpine", "latest", None),
]

BAD = [
    "",
    "   ",
    "docker://",
    "Alpine",                      # uppercase repo on Docker Hub
    "ghcr.io/Me/app",              # uppercase repo
    "app:-bad",                    # tag may not start with '-'
    "app:.bad",
    "app:" + "t" * 129,            # tag too long
    "app@sha256:abc",              # short digest
    "app@sha256:" + "A" * 64,      # uppercase hex
    "app@md5:" + "a" * 32,         # unsupported algorithm
    f"app@{D}@{D}",
    "ghcr.io/",                    # no repository
    "a//b",
    "a/b/",
    "-a/b",
    "a_/b",
    "a___b",
    "host:port:bad/x",
    "exa_mple.com/a",              # underscore in host
    "ghcr.io/" + "a" * 250,        # over 255
    "app:tag:more",
]


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), GOOD)
def test_parse_good(text: str, registry: str, repository: str, tag: str | None,
                    digest: str | None) -> None:
    ref = Reference.parse(text)
    assert ref.registry == registry
    assert ref.repository == repository
    assert ref.tag == tag
    assert (str(ref.digest) if ref.digest else None) == digest
    # str() is fully qualified and parses back to the same value
    assert Reference.parse(str(ref)) == ref


@pytest.mark.parametrize("text", BAD)
def test_parse_bad(text: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse(text)
    assert info.value.exit_code == 2


def test_lowercase_message() -> None:
    with pytest.raises(InvalidReferenceError, match="lowercase"):
        Reference.parse("ghcr.io/Me/app")


def test_docker_hub_hosts_and_keys() -> None:
    for text in ("alpine", "docker.io/library/alpine", "index.docker.io/library/alpine",
                 "registry-1.docker.io/library/alpine"):
        ref = Reference.parse(text)
        assert ref.api_host == "registry-1.docker.io"
        assert ref.credential_key == "https://index.docker.io/v1/"
        assert ref.name == "docker.io/library/alpine"
        assert ref.is_docker_hub
    other = Reference.parse("localhost:5000/app")
    assert other.api_host == "localhost:5000"
    assert other.credential_key == "localhost:5000"
    assert credential_key("index.docker.io") == "https://index.docker.io/v1/"


def test_normalize_name() -> None:
    assert normalize_name("app") == "docker.io/library/app:latest"
    assert normalize_name("me/app:1") == "docker.io/me/app:1"
    assert normalize_name("localhost:5000/app") == "localhost:5000/app:latest"
    assert normalize_name(f"app@{D}") == f"docker.io/library/app@{D}"


def test_with_tag_and_digest() -> None:
    ref = Reference.parse("ghcr.io/me/app:1")
    assert str(ref.with_tag("2")) == "ghcr.io/me/app:2"
    pinned = ref.with_digest(D)
    assert str(pinned) == f"ghcr.io/me/app:1@{D}"
    assert pinned.identifier == D
    assert ref.identifier == "1"
    assert pinned.with_tag("x").digest is None
    with pytest.raises(InvalidReferenceError):
        ref.with_tag("-x")
    with pytest.raises(InvalidReferenceError):
        ref.with_digest("sha256:nothex")


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_parse_never_raises_foreign_errors(text: str) -> None:
    try:
        ref = Reference.parse(text)
    except OciforgeError as exc:
        assert exc.exit_code == 2
    else:
        assert Reference.parse(str(ref)) == ref


_ALNUM = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(_ALNUM, min_size=1, max_size=4), _ALNUM, st.sampled_from(["", "localhost:5000/",
                                                                          "ghcr.io/"]))
def test_generated_valid_names_round_trip(parts: list[str], tag: str, host: str) -> None:
    ref = Reference.parse(f"{host}{'/'.join(parts)}:{tag}")
    assert ref.tag == tag
    assert Reference.parse(str(ref)) == ref
    assert normalize_name(str(ref)) == str(ref)


# -- the one host grammar (references, --chunk-size REGISTRY=, login/logout) ----------

@pytest.mark.parametrize(("text", "ok"), [
    ("ghcr.io", True), ("localhost:5000", True), ("[::1]:5000", True), ("127.0.0.1", True),
    ("my-registry.example:443", True), ("a..b", False), ("-a.io", False), ("a.io:", False),
    ("ghcr.io\n", False), ("[::ffff:1.2.3.4]", False), ("user@ghcr.io", False), ("", False),
    ("https://ghcr.io", False), ("ghcr.io/x", False),
])
def test_is_registry_host(text: str, ok: bool) -> None:
    from ociforge.model.reference import is_registry_host

    assert is_registry_host(text) is ok


@pytest.mark.parametrize("text", ["ghcr.io\n/app", "ghcr.io/app\n/x", "ghcr.io/app:v1\n:x"])
def test_embedded_newlines_are_refused(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        Reference.parse(text)
    with pytest.raises(InvalidReferenceError):
        Reference.parse("ghcr.io/app").with_tag("v1\n")


@pytest.mark.parametrize(("text", "registry"), [
    ("https://index.docker.io/v1/", "docker.io"), ("ghcr.io", "ghcr.io"),
    ("localhost:5000", "localhost:5000"), ("http://127.0.0.1:5000/", "127.0.0.1:5000"),
    ("registry-1.docker.io", "docker.io"),
])
def test_parse_registry(text: str, registry: str) -> None:
    from ociforge.model.reference import parse_registry

    assert parse_registry(text) == registry


@pytest.mark.parametrize("text", ["myhost", "", "https://", "bad_host.io", "ghcr\n.io",
                                  "https://me:hunter2@ghcr.io/"])
def test_parse_registry_refuses(text: str) -> None:
    from ociforge.model.reference import parse_registry

    with pytest.raises(InvalidReferenceError) as info:
        parse_registry(text)
    assert "hunter2" not in str(info.value)
