"""Docker Hub itself (skipped unless asked for: the test machines cannot reach it).

Run with ``make test-dockerhub`` and these environment variables:

* ``OCIFORGE_TEST_DOCKERHUB=1`` — enables the tests (anonymous pulls).
* ``OCIFORGE_DOCKERHUB_USER`` and ``OCIFORGE_DOCKERHUB_TOKEN`` (a personal access
  token) — enable the push tests.
* ``OCIFORGE_DOCKERHUB_REPO`` — the repository to push to (default
  ``$OCIFORGE_DOCKERHUB_USER/ociforge-test``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from registry_fixtures import make_layer
from tools import skip

from ociforge.model.image import Image
from ociforge.model.index import Index
from ociforge.model.mutate import append_layers
from ociforge.model.platform import Platform
from ociforge.model.reference import Reference
from ociforge.options import Options, RegistryOptions
from ociforge.remote.auth import Credentials
from ociforge.remote.client import RegistryClient
from ociforge.remote.pull import pull
from ociforge.remote.push import push

pytestmark = pytest.mark.dockerhub


@pytest.fixture(autouse=True)
def _dockerhub_opt_in() -> None:
    """Opt-in: CI has neither Docker Hub's address nor an account there."""
    if os.environ.get("OCIFORGE_TEST_DOCKERHUB") != "1":
        skip("Docker Hub tests need OCIFORGE_TEST_DOCKERHUB=1", can_apply_in_ci=False)

AMD64 = Options(platform=Platform.parse("linux/amd64"))


def _creds() -> Credentials:
    user = os.environ.get("OCIFORGE_DOCKERHUB_USER")
    token = os.environ.get("OCIFORGE_DOCKERHUB_TOKEN")
    if not user or not token:
        skip("push tests need OCIFORGE_DOCKERHUB_USER and OCIFORGE_DOCKERHUB_TOKEN",
             can_apply_in_ci=False)
    return Credentials(user, token)


def test_anonymous_pull_resolves_platform_and_verifies() -> None:
    ref = Reference.parse("busybox:latest")
    client = RegistryClient(ref.registry, RegistryOptions(), lambda: None)
    assert client.transport.api_host == "registry-1.docker.io"
    image = pull(client, ref, AMD64)
    assert isinstance(image, Image) and image.platform is not None
    assert str(image.platform) == "linux/amd64"
    with image.layers[0].open() as fh:            # redirected to Docker's CDN
        assert hashlib.sha256(fh.read()).hexdigest() == image.layers[0].digest.hex
    whole = pull(client, ref, Options(all_platforms=True))
    assert isinstance(whole, Index) and len(whole.children) > 1


def test_push_mounts_base_layers_from_library(tmp_path: Path) -> None:
    creds = _creds()
    repo = os.environ.get("OCIFORGE_DOCKERHUB_REPO") or f"{creds.username}/ociforge-test"
    client = RegistryClient("docker.io", RegistryOptions(), creds)
    base = pull(client, Reference.parse("busybox:latest"), AMD64)
    assert isinstance(base, Image)
    app = append_layers(base, [make_layer(tmp_path, 1000, "app.bin")], epoch=0)
    ref = Reference.parse(f"{repo}:ociforge-test")
    result = push(client, ref, app, AMD64)
    assert result.digest == app.digest
    assert result.count("mounted") + result.count("exists") >= len(base.layers)
    back = pull(client, ref, AMD64)
    assert back.digest == app.digest
