"""Exports in the engine most recipients use: a real Docker Engine (docker_fixtures.py).

* an export written as a tarball is loaded with ``docker load`` and run with
  ``docker run --network none``: it prints what examples/hello prints, keeps
  the environment it should and none it should not, and Docker's image ID is
  ociforge's config digest;
* an export pushed to the loopback registry is pulled with ``docker pull`` by
  its digest and run;
* a ``docker save`` archive of an image Docker made itself (``docker import``)
  is the base of ``ociforge append`` and ``ociforge export``: the results load
  and run, on top of the base's own layers, unchanged.

The example's base is scratch (no shell), so the app runs on busybox made by
``ociforge append scratch --layer`` (base_fixtures.py).  Layers are gzip: this
engine (20.10) cannot unpack zstd.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import uuid
from pathlib import Path

import pytest
from base_fixtures import ociforge
from docker_fixtures import DockerEngine

from ociforge.model.platform import Platform

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello"
PLATFORM = str(Platform.host())
GREETING = "Hello from ociforge, world! (mode: demo, lang: en)"
CONFIG_LINE = "config: greeting = friendly"


def hello_on(base: str, folder: Path) -> Path:
    """examples/hello with its base switched to ``base`` (and the host's platform)."""
    app = folder / "hello"
    shutil.copytree(EXAMPLE, app, symlinks=True)
    toml = (app / "ociforge.toml").read_text()
    assert 'base = "scratch"' in toml and 'platform = "linux/amd64"' in toml
    toml = toml.replace('base = "scratch"', f'base = "{base}"')
    toml = toml.replace('platform = "linux/amd64"', f'platform = "{PLATFORM}"')
    (app / "ociforge.toml").write_text(toml)
    return app


def unique(name: str) -> str:
    return f"ociforge-test/{name}:{uuid.uuid4().hex[:8]}"


def root_layers(engine: DockerEngine, image: str) -> list[str]:
    out = engine.docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", image).stdout
    return list(json.loads(out))


def test_exported_tarball_loads_and_runs_in_docker(docker_engine: DockerEngine,
                                                   busybox_base: str, tmp_path: Path) -> None:
    app = hello_on(busybox_base, tmp_path)
    name = unique("hello-load")
    archive = tmp_path / "hello.tar"
    ociforge("export", app, "--with-files", "--compression", "gzip", "--tag", name,
             "-o", archive)
    config_digest = json.loads(ociforge("inspect", archive, "--json").stdout)["config"]["digest"]
    try:
        loaded = docker_engine.load(archive)
        assert f"Loaded image: {name}" in loaded, loaded
        image_id = docker_engine.docker("image", "inspect", "--format", "{{.Id}}", name).stdout
        assert image_id.strip() == config_digest

        lines = docker_engine.run_image(name).splitlines()
        assert lines[:3] == [GREETING, CONFIG_LINE, "project files:"], lines
        assert sorted(lines[3:]) == ["README.md", "inputs.csv", "notes", "tables"], lines

        env = docker_engine.run_image(name, entrypoint="env")
        variables = dict(line.split("=", 1) for line in env.splitlines() if "=" in line)
        assert variables["HELLO_GREETING"] == "Hello from ociforge"
        assert variables["HELLO_LANG"] == "en" and variables["HELLO_MODE"] == "demo"
        for dropped in ("LM_LICENSE_FILE", "HELLO_API_TOKEN", "HELLO_SEAT_POOL"):
            assert dropped not in variables
        listing = docker_engine.run_image(name, "-a", "/app", "/files", entrypoint="ls").split()
        assert "LICENSE" in listing and "bin" in listing and "README.md" in listing
        assert "solver.lic" not in listing and ".env.local" not in listing
    finally:
        docker_engine.remove(name)


def test_pushed_export_pulls_and_runs_in_docker(docker_engine: DockerEngine, busybox_base: str,
                                                registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = hello_on(busybox_base, tmp_path)
    repo = f"{registry.host}/docker/hello"
    ref = f"{repo}:{uuid.uuid4().hex[:8]}"
    result = json.loads(ociforge("export", app, "--compression", "gzip", "-o", ref,
                                 "--json").stdout)
    digest = result["digest"]
    try:
        pulled = docker_engine.docker("pull", f"{repo}@{digest}").stdout
        assert f"Digest: {digest}" in pulled, pulled
        by_tag = docker_engine.docker("pull", ref).stdout   # the tag names the same manifest
        assert f"Digest: {digest}" in by_tag, by_tag
        repo_digests = json.loads(docker_engine.docker(
            "image", "inspect", "--format", "{{json .RepoDigests}}", ref).stdout)
        assert f"{repo}@{digest}" in repo_digests
        lines = docker_engine.run_image(ref).splitlines()
        assert lines == [GREETING, CONFIG_LINE], lines   # app only: no project files
    finally:
        docker_engine.remove(ref, f"{repo}@{digest}")


@pytest.fixture
def docker_saved_base(docker_engine: DockerEngine, busybox_rootfs: Path,
                      tmp_path: Path) -> tuple[Path, list[str]]:
    """A busybox image made by Docker itself (docker import), then ``docker save``-d:
    (archive, its RootFS layer diff IDs as Docker sees them)."""
    rootfs_tar = tmp_path / "busybox-rootfs.tar"
    with tarfile.open(rootfs_tar, "w") as tar:
        tar.add(busybox_rootfs, arcname=".")
    name = unique("busybox-imported")
    docker_engine.docker("import", "--change", "ENV PATH=/bin", "--change", 'CMD ["/bin/sh"]',
                         rootfs_tar, name)
    archive = tmp_path / "docker-saved.tar"
    try:
        docker_engine.docker("save", "-o", archive, name)
        layers = root_layers(docker_engine, name)
    finally:
        docker_engine.remove(name)
    return archive, layers


def test_docker_save_archive_is_a_base_for_append(docker_engine: DockerEngine,
                                                  docker_saved_base: tuple[Path, list[str]],
                                                  tmp_path: Path) -> None:
    base, base_layers = docker_saved_base
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "message.txt").write_text("appended by ociforge\n")
    name = unique("appended")
    out = tmp_path / "appended.tar"
    ociforge("append", f"docker-archive:{base}", "--layer", f"{extra}:/opt/extra",
             "--cmd", '["cat", "/opt/extra/message.txt"]', "--compression", "gzip",
             "--tag", name, "-o", out)
    try:
        docker_engine.load(out)
        layers = root_layers(docker_engine, name)
        assert layers[:-1] == base_layers and len(layers) == len(base_layers) + 1
        assert docker_engine.run_image(name) == "appended by ociforge\n"
        # the base's own config (PATH from docker import) is kept under ours
        assert docker_engine.run_image(name, "sh", "-c", "echo $PATH") == "/bin\n"
    finally:
        docker_engine.remove(name)


def test_docker_save_archive_is_a_base_for_export(docker_engine: DockerEngine,
                                                  docker_saved_base: tuple[Path, list[str]],
                                                  tmp_path: Path) -> None:
    base, base_layers = docker_saved_base
    app = hello_on(f"docker-archive:{base}", tmp_path)
    name = unique("hello-on-docker-save")
    out = tmp_path / "exported.tar"
    ociforge("export", app, "--compression", "gzip", "--tag", name, "-o", out)
    try:
        docker_engine.load(out)
        layers = root_layers(docker_engine, name)
        assert layers[:len(base_layers)] == base_layers, "the base's layers are used unchanged"
        assert len(layers) > len(base_layers)
        lines = docker_engine.run_image(name).splitlines()
        assert lines == [GREETING, CONFIG_LINE], lines
    finally:
        docker_engine.remove(name)
