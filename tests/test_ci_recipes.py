"""docs/ci.md's GitHub Actions and GitLab CI recipes, run as those services would run them.

Each recipe's YAML is parsed; its shell commands (all but ``pip install``: ociforge
is already installed here) run in bash, in a git checkout of examples/hello, with
the variables the CI service sets (the registry, user and token among them)
pointing at the loopback registry with htpasswd auth over TLS.  Afterwards the
image is in the registry under the commit's tag, stamped with the commit's time,
and the credentials went only into the docker config, never into the output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from registry_fixtures import RegistryServer
from tools import require_tool

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello"
COMMIT_TIME = 1_767_225_600   # 2026-01-01T00:00:00Z


def _recipes() -> dict[str, dict[str, Any]]:
    text = (ROOT / "docs" / "ci.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    found = {}
    for block in blocks:
        first = block.splitlines()[0]
        found["github" if ".github/workflows" in first else "gitlab"] = yaml.safe_load(block)
    assert set(found) == {"github", "gitlab"}, "docs/ci.md has one recipe for each"
    return found


def _shell(lines: list[str]) -> str:
    kept = [line for line in lines if not line.strip().startswith("pip install")]
    assert len(kept) < len(lines), "the recipe installs ociforge with pip"
    return "set -eu\n" + "\n".join(kept) + "\n"


def _checkout(tmp_path: Path) -> tuple[Path, str]:
    """examples/hello as the root of a git repository with one commit at COMMIT_TIME."""
    git = require_tool("git")
    repo = tmp_path / "checkout"
    shutil.copytree(HELLO, repo)
    env = dict(os.environ, GIT_AUTHOR_DATE=f"@{COMMIT_TIME} +0000",
               GIT_COMMITTER_DATE=f"@{COMMIT_TIME} +0000", GIT_AUTHOR_NAME="ci",
               GIT_AUTHOR_EMAIL="ci@example.com", GIT_COMMITTER_NAME="ci",
               GIT_COMMITTER_EMAIL="ci@example.com")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "app"]):
        subprocess.run([git, *args], cwd=repo, env=env, check=True, capture_output=True)
    sha = subprocess.run([git, "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                         check=True).stdout.strip()
    return repo, sha


def _run(script: str, repo: Path, env: dict[str, str], tls_registry: RegistryServer
         ) -> subprocess.CompletedProcess[str]:
    bash = require_tool("bash")
    full = dict(os.environ)
    full.update(env)
    full["PATH"] = str(Path(sys.executable).parent) + os.pathsep + full.get("PATH", "")
    full["PYTHONPATH"] = str(ROOT)
    full["SSL_CERT_FILE"] = str(tls_registry.ca_path)   # the runner trusts this registry
    return subprocess.run([bash, "-c", script], cwd=repo, env=full, capture_output=True,
                          text=True, timeout=600)


def _check_pushed(cli, tls_registry: RegistryServer, ref: str, done: Any) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert tls_registry.password not in done.stdout + done.stderr
    config = json.loads((Path(os.environ["DOCKER_CONFIG"]) / "config.json").read_text())
    assert tls_registry.host in config["auths"]
    code, out, err = cli("inspect", ref, "--ca-cert", tls_registry.ca_path)
    assert code == 0, err
    assert json.loads(out)["created"] == "2026-01-01T00:00:00Z"   # the commit's time


@pytest.mark.parametrize("service", ["github", "gitlab"])
def test_ci_recipe_exports_and_pushes(cli, tls_registry: RegistryServer, tmp_path: Path,
                                      service: str) -> None:
    recipe = _recipes()[service]
    repo, sha = _checkout(tmp_path)
    host = tls_registry.host
    if service == "github":
        job = recipe["jobs"]["export"]
        assert job["permissions"]["packages"] == "write"
        steps = [s for s in job["steps"] if "run" in s]
        script = _shell([line for s in steps for line in s["run"].splitlines()])
        env = {"REGISTRY": host, "GITHUB_TOKEN": tls_registry.password,
               "GITHUB_ACTOR": tls_registry.username, "GITHUB_REPOSITORY": "Acme/Hello-App",
               "GITHUB_SHA": sha, "GITHUB_WORKSPACE": str(repo)}
        step_env = next(s for s in steps if "env" in s)["env"]
        assert step_env == {"GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}"}
        ref = f"{host}/acme/hello-app:{sha[:12]}"
    else:
        job = recipe["export"]
        assert "services" not in job          # no Docker-in-Docker
        script = _shell(job["script"])
        env = {"CI_REGISTRY": host, "CI_REGISTRY_USER": tls_registry.username,
               "CI_REGISTRY_PASSWORD": tls_registry.password,
               "CI_REGISTRY_IMAGE": f"{host}/group/hello", "CI_COMMIT_SHORT_SHA": sha[:8],
               "CI_COMMIT_TIMESTAMP": "2026-01-01T00:00:00+00:00"}
        ref = f"{host}/group/hello:{sha[:8]}"
    assert "docker " not in script             # exports and pushes without Docker
    done = _run(script, repo, env, tls_registry)
    _check_pushed(cli, tls_registry, ref, done)
    report = json.loads((repo / "report.json").read_text())
    assert report["image"]["destinations"][0]["location"] == ref
    # a wrong token fails the login step, before anything is built or pushed
    bad = dict(env)
    for key in ("GITHUB_TOKEN", "CI_REGISTRY_PASSWORD"):
        if key in bad:
            bad[key] = "not-the-token"
    failed = _run(script, repo, bad, tls_registry)
    assert failed.returncode != 0 and "not-the-token" not in failed.stdout + failed.stderr
