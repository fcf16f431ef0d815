"""Nothing goes to a registry by accident: which strings are registry references.

A string is a registry reference only when written ``docker://...``, when its
first component is a registry host (``.``, ``:`` or ``localhost``), or when it
carries ``:TAG`` or ``@DIGEST``.  File names, existing paths and explicit paths
never are; a bare ``a/b`` or ``name`` is refused naming both readings.  The
end-to-end tests run the real CLI with every proxy pointed at a loopback
listener that records connections: a refused destination contacts nothing and
writes nothing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ociforge.errors import InvalidInputError
from ociforge.stores.archive import DockerArchiveLocation, OciArchiveLocation
from ociforge.stores.layoutlocation import LayoutLocation
from ociforge.stores.locations import FILE_SUFFIXES, Scratch, parse_location
from ociforge.stores.registry import RegistryLocation

ROOT = Path(__file__).resolve().parent.parent
DIGEST = "sha256:" + "a" * 64

# (text, class, str of the location) -- parsed where nothing of these names exists
TABLE = [
    ("scratch", Scratch, "scratch"),
    ("docker://alpine", RegistryLocation, "docker.io/library/alpine:latest"),
    ("docker://out/hello", RegistryLocation, "docker.io/out/hello:latest"),
    ("alpine:3.19", RegistryLocation, "docker.io/library/alpine:3.19"),
    ("me/app:1.0", RegistryLocation, "docker.io/me/app:1.0"),
    ("docker:24", RegistryLocation, "docker.io/library/docker:24"),
    (f"me/app@{DIGEST}", RegistryLocation, f"docker.io/me/app@{DIGEST}"),
    ("host:5000/app", RegistryLocation, "host:5000/app:latest"),
    ("127.0.0.1:5000/team/app:v1", RegistryLocation, "127.0.0.1:5000/team/app:v1"),
    ("[::1]:5000/app", RegistryLocation, "[::1]:5000/app:latest"),
    ("localhost/app", RegistryLocation, "localhost/app:latest"),
    ("foo.com/app", RegistryLocation, "foo.com/app:latest"),
    ("ghcr.io/me/app", RegistryLocation, "ghcr.io/me/app:latest"),
    ("app.tar", DockerArchiveLocation, "docker-archive:app.tar"),
    ("out/app.tar.gz", DockerArchiveLocation, "docker-archive:out/app.tar.gz"),
    ("x.zip", DockerArchiveLocation, "docker-archive:x.zip"),
    ("hello.oci", DockerArchiveLocation, "docker-archive:hello.oci"),
    ("x.tar.zst", DockerArchiveLocation, "docker-archive:x.tar.zst"),
    ("me/app:1.json", DockerArchiveLocation, "docker-archive:me/app:1.json"),
    ("./out/hello", DockerArchiveLocation, "docker-archive:./out/hello"),
    ("../hello", DockerArchiveLocation, "docker-archive:../hello"),
    ("/abs/hello", DockerArchiveLocation, "docker-archive:/abs/hello"),
    ("oci:out/hello", LayoutLocation, "oci:out/hello"),
    ("oci:out/hello:1.0", LayoutLocation, "oci:out/hello:1.0"),
    ("oci-archive:x.tar:v1", OciArchiveLocation, "oci-archive:x.tar:v1"),
    ("docker-archive:x.tar:me/app:1", DockerArchiveLocation, "docker-archive:x.tar:me/app:1"),
    ("docker://x.tar:1", RegistryLocation, "docker.io/library/x.tar:1"),
    ("docker://me/app.json@" + DIGEST, RegistryLocation, f"docker.io/me/app.json@{DIGEST}"),
    ("./x.tar:1", DockerArchiveLocation, "docker-archive:./x.tar:1"),
    ("localhost:5000/a.b:1", RegistryLocation, "localhost:5000/a.b:1"),
    ("localhost:5000/app.tar:1", RegistryLocation, "localhost:5000/app.tar:1"),
    ("ghcr.io/me/app.json@" + DIGEST, RegistryLocation, f"ghcr.io/me/app.json@{DIGEST}"),
    ("localhost:5000/app.tar", DockerArchiveLocation, "docker-archive:localhost:5000/app.tar"),
]

# A file name with a :TAG or @DIGEST after it, no registry host first: (text, the file name)
TAGGED_FILES = [
    ("x.tar:latest", "x.tar"),
    ("me/app.tar:1", "me/app.tar"),
    ("out/hello.oci:v1", "out/hello.oci"),
    ("x.tar.gz:1.0", "x.tar.gz"),
    ("hello.zip:latest", "hello.zip"),
    (f"me/app.json@{DIGEST}", "me/app.json"),
    (f"x.tar:1@{DIGEST}", "x.tar"),
]

AMBIGUOUS = ["out/hello", "hello", "alpine", "me/app", "a/b/c", "Foo/bar", "foo.com"]
MISSPELLED = [
    ("oci-archve:x.tar", "oci-archive:"),
    ("oci-layout:x", "oci:"),
    ("ocl:out", "oci:"),
    ("OCI:out", "oci:"),
    ("dockerarchive:x.tar", "docker-archive:"),
    ("docker-archiv:x.tar:app", "docker-archive:"),
    ("oci_archive:x", "oci-archive:"),
    ("ftp://host/img", None),
    ("my:file.tar", None),
    ("foo:bar/baz", None),
]


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


@pytest.mark.parametrize(("text", "kind", "shown"), TABLE)
def test_the_table(text: str, kind: type, shown: str, empty: Path, monkeypatch) -> None:
    monkeypatch.chdir(empty)
    location = parse_location(text)
    assert type(location) is kind
    assert str(location) == shown


@pytest.mark.parametrize("text", AMBIGUOUS)
def test_a_bare_name_is_refused_naming_both_readings(text: str, empty: Path) -> None:
    with pytest.raises(InvalidInputError) as refused:
        parse_location(text, role="destination", base_dir=empty)
    message = str(refused.value)
    assert refused.value.exit_code == 2
    assert "\n" not in message
    assert f"{text!r} could be a folder or a Docker Hub repository" in message
    assert f"oci:{text} for a layout" in message
    assert f"./{text}.tar for an archive" in message
    assert f"docker://{text} (or {text}:latest) to push" in message


@pytest.mark.parametrize(("text", "name"), TAGGED_FILES)
def test_a_tagged_file_name_is_refused_naming_both_readings(text: str, name: str,
                                                            empty: Path) -> None:
    with pytest.raises(InvalidInputError) as refused:
        parse_location(text, role="destination", base_dir=empty)
    message = str(refused.value)
    assert refused.value.exit_code == 2
    assert "\n" not in message
    assert f"{text!r} could be the file {name} or a Docker Hub image" in message
    assert f"docker://{text} to push" in message
    if "@" in text:
        assert "a digest names no file" in message
        assert f"oci-archive:{name})" in message
    else:
        tag = text[len(name) + 1:]
        assert f"oci-archive:{name}:{tag} for an OCI archive" in message
        assert f"docker-archive:{name}:NAME:{tag} for a docker archive" in message


def test_a_tagged_file_name_under_a_local_folder_named_like_a_host_is_refused(
        empty: Path) -> None:
    """``out.d/x.tar:1`` names a registry host only when no folder ``out.d`` is here."""
    assert isinstance(parse_location("out.d/x.tar:1", base_dir=empty), RegistryLocation)
    (empty / "out.d").mkdir()
    with pytest.raises(InvalidInputError, match=r"could be the file out\.d/x\.tar or a registry "
                                                r"image"):
        parse_location("out.d/x.tar:1", base_dir=empty)


def test_a_tagged_file_name_as_a_source_gets_the_pull_spelling(empty: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"or docker://base.tar:1 to pull$"):
        parse_location("base.tar:1", role="source", base_dir=empty)


def test_a_bare_source_is_refused_with_the_pull_spelling(empty: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"docker://alpine \(or alpine:latest\) to pull"):
        parse_location("alpine", role="source", base_dir=empty)


@pytest.mark.parametrize(("text", "guess"), MISSPELLED)
def test_a_misspelled_transport_is_an_unknown_scheme(text: str, guess: str | None,
                                                     empty: Path) -> None:
    with pytest.raises(InvalidInputError) as refused:
        parse_location(text, base_dir=empty)
    message = str(refused.value)
    assert refused.value.exit_code == 2
    assert "unknown location scheme" in message
    assert "oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], " \
           "docker://REF" in message
    if guess is not None:
        assert f"did you mean {guess!r}" in message


def test_a_registry_host_without_a_repository_is_refused(empty: Path) -> None:
    for text in ("localhost:5000", "registry.example.com:443"):
        with pytest.raises(InvalidInputError, match="names a registry but no repository"):
            parse_location(text, base_dir=empty)


def test_an_existing_path_is_never_a_registry(empty: Path) -> None:
    (empty / "alpine:3").write_bytes(b"")  # would be a tagged Docker Hub name
    (empty / "me" / "app:1.0").mkdir(parents=True)
    (empty / "me" / "app:1.0" / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (empty / "hello").mkdir()
    assert type(parse_location("alpine:3", base_dir=empty)) is DockerArchiveLocation
    assert type(parse_location("me/app:1.0", base_dir=empty)) is LayoutLocation
    with pytest.raises(InvalidInputError, match="'hello' is a directory; name an image layout"):
        parse_location("hello", base_dir=empty)


def test_relative_paths_are_taken_from_base_dir(empty: Path) -> None:
    assert parse_location("oci:lay:1", base_dir=empty).path == str(empty / "lay")  # type: ignore[attr-defined]
    assert parse_location("base.tar", base_dir=empty).path == str(empty / "base.tar")  # type: ignore[attr-defined]
    assert parse_location("/abs/base.tar", base_dir=empty).path == "/abs/base.tar"  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", ["x.zip", "hello.oci", "x.tar.zst", "out/x.json"])
def test_a_bare_file_name_ociforge_does_not_write_is_refused_as_a_destination(
        text: str, empty: Path) -> None:
    location = parse_location(text, base_dir=empty)
    with pytest.raises(InvalidInputError, match="is not an archive name ociforge writes"):
        location.check_destination()  # type: ignore[attr-defined]


# -- properties --------------------------------------------------------------------

_component = st.from_regex(r"[a-z0-9]{1,6}(-[a-z0-9]{1,4})?", fullmatch=True)
_names = st.lists(_component, min_size=1, max_size=3).map("/".join)
_EMPTY = Path("/nonexistent-ociforge-location-rule")


@settings(max_examples=300, deadline=None)
@given(_names, st.sampled_from(FILE_SUFFIXES), st.sampled_from(["", ":1.0", ":latest"]))
def test_a_name_with_a_file_suffix_is_never_a_registry(name: str, suffix: str, tag: str
                                                       ) -> None:
    text = name + tag + suffix
    try:
        location = parse_location(text, base_dir=_EMPTY)
    except InvalidInputError:
        return  # refused is fine; published is not
    assert not isinstance(location, RegistryLocation), text


@settings(max_examples=300, deadline=None)
@given(_names, st.sampled_from(FILE_SUFFIXES),
       st.sampled_from([":1", ":latest", ":v1.0", "@" + DIGEST, ":1@" + DIGEST]))
def test_a_file_name_with_a_tag_or_digest_after_it_is_refused(name: str, suffix: str,
                                                                tail: str) -> None:
    text = name + suffix + tail
    with pytest.raises(InvalidInputError, match="could be the file "):
        parse_location(text, base_dir=_EMPTY)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["registry.example.com", "localhost", "127.0.0.1:5000", "[::1]:5000"]),
       _names, st.sampled_from(FILE_SUFFIXES), st.sampled_from([":1", "@" + DIGEST]))
def test_a_file_name_with_a_tag_under_a_registry_host_is_that_registry(
        host: str, name: str, suffix: str, tail: str) -> None:
    location = parse_location(f"{host}/{name}{suffix}{tail}", base_dir=_EMPTY)
    assert isinstance(location, RegistryLocation)
    assert location.reference.registry == host


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["/", "./", "../", "~/", "~"]), _names,
       st.sampled_from(["", ":1.0", "@" + DIGEST]))
def test_an_explicit_path_is_never_a_registry(prefix: str, name: str, tail: str) -> None:
    try:
        location = parse_location(prefix + name + tail, base_dir=_EMPTY)
    except InvalidInputError:
        return
    assert not isinstance(location, RegistryLocation)


@settings(max_examples=300, deadline=None)
@given(_names)
def test_a_bare_repository_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidInputError, match="could be a folder or a Docker Hub repository"):
        parse_location(name, base_dir=_EMPTY)


@settings(max_examples=300, deadline=None)
@given(_names, st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", fullmatch=True))
def test_a_tagged_name_is_a_docker_hub_reference(name: str, tag: str) -> None:
    text = f"{name}:{tag}"
    try:
        location = parse_location(text, base_dir=_EMPTY)
    except InvalidInputError:
        return  # a tag that looks like a file name or a transport typo: refused, not pushed
    if isinstance(location, RegistryLocation):
        assert location.reference.registry == "docker.io"
        assert location.reference.tag == tag


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["registry.example.com", "localhost", "127.0.0.1:5000", "host:5000",
                        "[::1]:5000"]), _names)
def test_a_name_under_a_registry_host_is_that_registry(host: str, name: str) -> None:
    location = parse_location(f"{host}/{name}", base_dir=_EMPTY)
    assert isinstance(location, RegistryLocation)
    assert location.reference.registry == host


# -- end to end: nothing contacted, nothing written ----------------------------------


class _Listener:
    """A loopback TCP listener that records every connection and closes it at once."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.connections.append(conn.recv(200))
                except OSError:
                    self.connections.append(b"")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    found = _Listener()
    try:
        yield found
    finally:
        found.close()


def _run(args: list[str], cwd: Path, listener: _Listener, home: Path
         ) -> subprocess.CompletedProcess[str]:
    proxy = f"http://127.0.0.1:{listener.port}"
    docker = home / ".docker"
    docker.mkdir(parents=True, exist_ok=True)
    (docker / "config.json").write_text(json.dumps(
        {"auths": {"https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"}}}))
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(PYTHONPATH=str(ROOT), DOCKER_CONFIG=str(docker), HTTPS_PROXY=proxy,
               HTTP_PROXY=proxy, https_proxy=proxy, http_proxy=proxy, ALL_PROXY=proxy,
               OCIFORGE_RETRIES="0", OCIFORGE_TIMEOUT="5")
    return subprocess.run([sys.executable, "-m", "ociforge", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


REFUSED = ["out/hello", "x.zip", "hello.oci", "x.tar.zst", "oci-archve:x.tar", "hello",
           "oci-layout:out", "x.tar:latest", "me/app.tar:1", "out/hello.oci:v1",
           f"me/app.json@{DIGEST}"]


@pytest.mark.parametrize("dest", REFUSED)
def test_append_to_a_refused_destination_contacts_nothing_and_writes_nothing(
        dest: str, tmp_path: Path, listener: _Listener) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.txt").write_text("private project file\n")
    before = _tree(work)
    result = _run(["append", "scratch", "--layer", "data.txt:/data.txt", "-o", dest],
                  work, listener, tmp_path / "home")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert listener.connections == []
    assert _tree(work) == before


@pytest.mark.parametrize("dest", ["out/hello", "x.zip", "oci-archve:x.tar", "x.tar:latest",
                                  "me/app.tar:1"])
def test_export_with_files_to_a_refused_destination_contacts_nothing(
        dest: str, tmp_path: Path, listener: _Listener) -> None:
    app = tmp_path / "app"
    (app / "project").mkdir(parents=True)
    (app / "project" / "secret-plan.txt").write_text("not for Docker Hub\n")
    (app / "ociforge.toml").write_text(
        '[app]\nname = "acme/hello"\nplatform = "linux/amd64"\n'
        '[files]\nsrc = "project"\n')
    before = _tree(tmp_path)
    result = _run(["export", str(app), "--with-files", "-o", dest], tmp_path, listener,
                  tmp_path / "home")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert listener.connections == []
    assert _tree(tmp_path) - before <= {"home", "home/.docker", "home/.docker/config.json"}


def test_a_bare_source_is_refused_before_any_contact(tmp_path: Path,
                                                     listener: _Listener) -> None:
    result = _run(["append", "alpine", "-o", "oci:out"], tmp_path, listener, tmp_path / "home")
    assert result.returncode == 2, result.stderr
    assert "docker://alpine (or alpine:latest) to pull" in result.stderr
    assert listener.connections == []
    assert not (tmp_path / "out").exists()


def test_the_listener_does_see_a_real_docker_hub_destination(tmp_path: Path,
                                                             listener: _Listener) -> None:
    """The control: an explicit Docker Hub reference does go out (through the proxy)."""
    (tmp_path / "data.txt").write_text("x\n")
    result = _run(["append", "scratch", "--layer", "data.txt:/data.txt", "-o", "me/app:1.0",
                   "--retries", "0"], tmp_path, listener, tmp_path / "home")
    assert result.returncode == 1, result.stderr
    assert listener.connections, "the proxy listener saw nothing: the harness proves nothing"
    assert any(b"docker.io" in c for c in listener.connections), listener.connections


@pytest.mark.parametrize("command", [["sign", "--key", "cosign.key"], ["verify-signature", "--key",
                                                                       "cosign.pub"],
                                     ["referrers"]])
def test_signing_and_referrers_follow_the_same_rule(command: list[str], tmp_path: Path,
                                                    listener: _Listener) -> None:
    from ociforge.trust.keys import write_key_pair

    write_key_pair(tmp_path / "cosign", None)
    result = _run([command[0], "out/hello", *command[1:]], tmp_path, listener,
                  tmp_path / "home")
    assert result.returncode == 2, result.stderr
    assert "'out/hello' could be a folder or a Docker Hub repository" in result.stderr
    assert listener.connections == []
