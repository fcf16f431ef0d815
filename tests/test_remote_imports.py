"""Start-up cost: commands that never touch a registry must not import the HTTP stack.

``import requests`` (urllib3, charset_normalizer, http.cookiejar ...) costs
65-110 ms, more than an offline command's whole start.  Checked in a fresh
interpreter with ``-X importtime``, which lists every module imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from registry_fixtures import RegistryServer

HTTP_STACK = {"requests", "urllib3", "charset_normalizer", "idna", "http.cookiejar"}


def _imported(*argv: str, cwd: Path) -> tuple[set[str], str]:
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "ociforge", *argv],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = {line.rpartition("|")[2].strip() for line in proc.stderr.splitlines()
               if line.startswith("import time:")}
    return modules, proc.stdout


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("imports")
    (root / "tree").mkdir()
    (root / "tree" / "file.txt").write_text("hello\n")
    from ociforge.cli import main

    assert main(["append", "scratch", "--layer", f"{root / 'tree'}:/app",
                 "-o", f"oci:{root / 'src'}:t"]) == 0
    return root


@pytest.mark.parametrize("argv", [
    ("copy", "oci:{root}/src:t", "oci:{root}/dst:t"),
    ("append", "scratch", "--layer", "{root}/tree:/app", "-o", "oci:{root}/built:t"),
    ("inspect", "oci:{root}/src:t"),
    ("copy", "oci:{root}/src:t", "docker-archive:{root}/image.tar"),
    ("--version",),
    ("--help",),
], ids=["copy", "append", "inspect", "docker-archive", "version", "help"])
def test_offline_commands_do_not_import_requests(layout: Path, argv: tuple[str, ...]) -> None:
    modules, _ = _imported(*(a.format(root=layout) for a in argv), cwd=layout)
    assert "ociforge" in modules or argv[0].startswith("--")
    assert not modules & HTTP_STACK, sorted(modules & HTTP_STACK)


def test_push_does_not_import_subprocess_without_a_credential_helper(
        registry: RegistryServer,
                                                                    layout: Path) -> None:
    """Credential helpers run as subprocesses; with none configured, no subprocess import."""
    modules, out = _imported("copy", f"oci:{layout}/src:t", f"{registry.host}/imports/app:1",
                             cwd=layout)
    assert "requests" in modules             # the registry path does need it
    assert "ociforge.remote.credentials" in modules
    assert "subprocess" not in modules
    assert out.startswith("sha256:")
