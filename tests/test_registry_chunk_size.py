"""Per-registry chunk sizes (``--chunk-size REGISTRY=SIZE``, $OCIFORGE_CHUNK_SIZE) against
two real registries: only the named one gets chunked PATCH uploads."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from registry_fixtures import RegistryServer, start_registry

from ociforge.cli.commands.common import chunk_sizes_from
from ociforge.options import RegistryOptions

LAYER_BYTES = 300_000


@pytest.fixture(scope="module")
def second_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = start_registry(tmp_path_factory.mktemp("second-registry"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image with one incompressible ~300 kB layer (several 64 KiB chunks)."""
    from ociforge.cli import main

    root = tmp_path_factory.mktemp("chunk-src")
    (root / "tree").mkdir()
    (root / "tree" / "blob.bin").write_bytes(
        b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(LAYER_BYTES // 32)))
    assert main(["append", "scratch", "--layer", f"{root / 'tree'}:/data", "--compression",
                 "none", "-o", f"oci:{root / 'src'}:t"]) == 0
    return f"oci:{root / 'src'}:t"


def _uploads(server: RegistryServer, mark: int, repo: str) -> tuple[int, int]:
    """(chunk PATCHes, blob-completing PUTs) for ``repo`` since ``mark``, from the access log.

    A monolithic upload is one PUT and no PATCH; a chunked one is PATCHes, then a PUT.
    """
    text = server.log_since(mark)
    patches = len(re.findall(rf'"PATCH /v2/{repo}/blobs/uploads/[^"]*" 202', text))
    puts = len(re.findall(rf'"PUT /v2/{repo}/blobs/uploads/[^"]*" 201', text))
    return patches, puts


def _push(cli: Any, source: str, dests: list[str], *flags: str) -> str:
    code, out, err = cli("copy", source, *dests, *flags)
    assert code == 0, err
    digests = {line.split()[0] for line in out.splitlines()}
    assert len(digests) == 1
    return digests.pop()


def test_named_registry_chunked_other_monolithic(
        cli: Any, registry: RegistryServer, second_registry: RegistryServer, source: str) -> None:
    marks = registry.log_mark(), second_registry.log_mark()
    _push(cli, source, [f"{registry.host}/chunk/named:1", f"{second_registry.host}/chunk/named:1"],
          "--chunk-size", f"{registry.host}=64K")
    patches, puts = _uploads(registry, marks[0], "chunk/named")
    assert patches >= LAYER_BYTES // (64 << 10)
    assert puts == 2                        # each blob's closing PUT
    other_patches, other_puts = _uploads(second_registry, marks[1], "chunk/named")
    assert other_patches == 0 and other_puts == 2


def test_environment_names_the_registry(
        cli: Any, registry: RegistryServer, second_registry: RegistryServer, source: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCIFORGE_CHUNK_SIZE", f"example.invalid=1M,{second_registry.host}=64K")
    marks = registry.log_mark(), second_registry.log_mark()
    _push(cli, source, [f"{registry.host}/chunk/env:1", f"{second_registry.host}/chunk/env:1"])
    assert _uploads(registry, marks[0], "chunk/env")[0] == 0
    assert _uploads(second_registry, marks[1], "chunk/env")[0] >= LAYER_BYTES // (64 << 10)


def test_plain_size_for_every_registry_and_an_override(
        cli: Any, registry: RegistryServer, second_registry: RegistryServer, source: str) -> None:
    marks = registry.log_mark(), second_registry.log_mark()
    _push(cli, source, [f"{registry.host}/chunk/both:1", f"{second_registry.host}/chunk/both:1"],
          "--chunk-size", "64K", "--chunk-size", f"{second_registry.host}=256K")
    small = _uploads(registry, marks[0], "chunk/both")[0]
    large = _uploads(second_registry, marks[1], "chunk/both")[0]
    assert small >= LAYER_BYTES // (64 << 10)
    assert 1 <= large < small


@pytest.mark.parametrize("flags, env, says", [
    (["--chunk-size", "ghcr.io=lots"], None, "'lots' is not a positive number"),
    (["--chunk-size", "https://ghcr.io=4M"], None, "is not a registry host[:port]"),
    (["--chunk-size", "=4M"], None, "is not a registry host[:port]"),
    (["--chunk-size", "ghcr.io=0"], None, "not a positive number"),
    (["--chunk-size", "2G"], None, "at most 1G"),
    ([], "ghcr.io=4M,quay.io=x", "$OCIFORGE_CHUNK_SIZE 'quay.io=x'"),
], ids=["size", "scheme", "no-registry", "zero", "huge", "env"])
def test_bad_chunk_sizes_are_bad_input(
        cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str],
        env: str | None, says: str) -> None:
    if env is not None:
        monkeypatch.setenv("OCIFORGE_CHUNK_SIZE", env)
    code, out, err = cli("append", "scratch", "-o", f"oci:{tmp_path / 'o'}:t", *flags)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and says in err, err
    assert not (tmp_path / "o").exists()


def test_options_pick_the_registry_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCIFORGE_CHUNK_SIZE", "8M,ghcr.io=4M")
    default, per_registry = chunk_sizes_from(["index.docker.io=2M", "GHCR.io=1M"])
    options = RegistryOptions(chunk_size=default, chunk_sizes=per_registry)
    assert options.chunk_size_for("ghcr.io") == 1 << 20           # the flag wins over the variable
    assert options.chunk_size_for("docker.io") == 2 << 20         # Docker Hub aliases are one
    assert options.chunk_size_for("registry-1.docker.io") == 2 << 20
    assert options.chunk_size_for("quay.io") == 8 << 20           # the plain size, from the env
    assert RegistryOptions().chunk_size_for("ghcr.io") is None    # default: monolithic
    assert hash(options) == hash(RegistryOptions(chunk_size=default, chunk_sizes=per_registry))
