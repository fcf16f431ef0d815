"""Every example in docs/api.md runs as written.

Each ```python block runs in a fresh interpreter in an empty folder holding a
copy of examples/; a block naming registry.example.com runs against the
loopback registry fixture put in its place.  A block that raises, or asserts
something untrue, fails its test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from registry_fixtures import RegistryServer

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "api.md"
PLACEHOLDER = "registry.example.com"


def _blocks() -> list[tuple[str, str]]:
    """(section heading, code) of every python block, in order."""
    out: list[tuple[str, str]] = []
    heading = ""
    text = DOC.read_text()
    for match in re.finditer(r"^(#+ [^\n]*)$|^```python\n(.*?)^```$", text,
                             re.MULTILINE | re.DOTALL):
        if match.group(1):
            heading = match.group(1).lstrip("# ").strip()
        else:
            out.append((heading, match.group(2)))
    return out


BLOCKS = _blocks()


def test_the_api_page_has_an_example_for_every_area() -> None:
    headings = {heading for heading, _ in BLOCKS}
    for area in ("Values", "Transforms and layers", "Locations", "Options and the environment",
                 "Pipelines: append, copy, inspect, verify", "Export", "Registry",
                 "Signatures and referrers", "Errors"):
        assert area in headings, f"docs/api.md has no example under {area!r}"


@pytest.mark.parametrize("heading, code", BLOCKS, ids=[h for h, _ in BLOCKS])
def test_api_example_runs(heading: str, code: str, tmp_path: Path,
                          request: pytest.FixtureRequest) -> None:
    if PLACEHOLDER in code:
        registry: RegistryServer = request.getfixturevalue("registry")
        code = code.replace(PLACEHOLDER, registry.host)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "examples", work / "examples")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"example under {heading!r} failed:\n{proc.stderr[-4000:]}"
