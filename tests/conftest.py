"""Shared fixtures.  Registry, PostgreSQL, Docker Engine and base-image fixtures live in
their own plugin modules; skip_guard.py fails unguarded skips in CI (see tests/tools.py)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tools import skip

pytest_plugins = [
    name for name in ("skip_guard", "registry_fixtures", "postgres_fixtures", "docker_fixtures",
                      "base_fixtures")
    if (Path(__file__).parent / f"{name}.py").exists()
]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test reads the developer's docker/podman credentials, cache or SOURCE_DATE_EPOCH."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(home / "auth.json"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home / "run"))
    monkeypatch.setenv("OCIFORGE_CACHE_DIR", str(home / "cache"))  # each test its own cache
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("OCIFORGE_CACHE_MAX_SIZE", raising=False)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A private copy of the example application (examples/hello) as <tmp>/hello."""
    target = tmp_path / "hello"
    shutil.copytree(FIXTURES.parent / "examples" / "hello", target, symlinks=True)
    return target


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """No backoff sleeps between retries (Retry-After capped at 50 ms when the base is 0)."""
    monkeypatch.setenv("OCIFORGE_RETRY_BASE", "0")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """An OCI layout holding one image of one 3000-byte layer."""
    from imagegen import layout_with_image

    layout_with_image(tmp_path / "src", (3000,))
    return tmp_path / "src"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run the CLI in-process: returns (exit_code, stdout, stderr)."""
    from ociforge.cli import main

    def _run(*argv: str) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run



@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may create files in: a 0555 folder, or /sys for root (root ignores
    permission bits, but sysfs refuses new files to everyone)."""
    if os.geteuid() == 0:
        folder = Path("/sys")
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        os.chmod(folder, 0o555)
    try:
        (folder / "probe").write_text("x")
    except OSError:
        pass
    else:
        (folder / "probe").unlink()
        skip(f"{folder} is writable here: no folder refuses new files")
    yield folder
    if folder != Path("/sys"):
        os.chmod(folder, 0o755)
