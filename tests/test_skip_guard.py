"""The skip guard: in CI only a skip that cannot apply there stays a skip.

An inner pytest session runs a file that skips every way pytest allows (plain
pytest.skip, importorskip, skip/skipif marks, a skipping fixture, a module-level
skip) plus the two guarded ways, once with CI=true and once without, and its JUnit
report says what each test came to.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SKIPPING = '''
import pytest
from tools import require_tool, skip

def test_plain():
    pytest.skip("plain")

def test_importorskip():
    pytest.importorskip("no_such_module_for_the_skip_guard")

@pytest.mark.skip(reason="mark")
def test_mark():
    pass

@pytest.mark.skipif(True, reason="skipif")
def test_skipif():
    pass

@pytest.fixture
def missing():
    pytest.skip("fixture")

def test_fixture(missing):
    pass

def test_guarded_tool():
    require_tool("no-such-tool-for-the-skip-guard")

def test_cannot_apply_in_ci():
    skip("needs credentials CI never has", can_apply_in_ci=False)

def test_runs():
    pass  # the control: it must pass while the others skip or fail
'''

MODULE_LEVEL = '''
import pytest
pytest.importorskip("no_such_module_for_the_skip_guard")

def test_never_collected():
    pass
'''


def _outcomes(tmp_path: Path, ci: bool) -> dict[str, str]:
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    (tmp_path / "test_module_level.py").write_text(MODULE_LEVEL)
    report = tmp_path / f"report-{ci}.xml"
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(TESTS)
    if ci:
        env["CI"] = "true"
    subprocess.run([sys.executable, "-m", "pytest", "-p", "skip_guard", "-p",
                    "no:cacheprovider", "-q", "--continue-on-collection-errors",
                    f"--junitxml={report}", "--rootdir",
                    str(tmp_path), "-c", os.devnull, str(tmp_path)],
                   cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = case.get("name") or case.get("classname") or "?"
        kinds = {child.tag for child in case}
        outcome = ("failed" if kinds & {"failure", "error"} else
                   "skipped" if "skipped" in kinds else "passed")
        outcomes[name] = outcome
    return outcomes


def test_outside_ci_every_skip_is_a_skip(tmp_path: Path) -> None:
    outcomes = _outcomes(tmp_path, ci=False)
    assert outcomes.pop("test_runs") == "passed"
    assert set(outcomes.values()) == {"skipped"}, outcomes
    assert {"test_plain", "test_importorskip", "test_mark", "test_skipif", "test_fixture",
            "test_guarded_tool", "test_cannot_apply_in_ci"} <= set(outcomes)


def test_in_ci_only_a_skip_that_cannot_apply_there_stays_a_skip(tmp_path: Path) -> None:
    outcomes = _outcomes(tmp_path, ci=True)
    assert outcomes.pop("test_runs") == "passed"
    assert outcomes.pop("test_cannot_apply_in_ci") == "skipped"
    for name in ("test_plain", "test_importorskip", "test_mark", "test_skipif", "test_fixture",
                 "test_guarded_tool"):
        assert outcomes.pop(name) == "failed", name
    # the module-level importorskip: a collection error (it stops a normal run at once)
    assert outcomes == {"test_module_level": "failed"}, outcomes


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_ci_is_recognised(value: str) -> None:
    probe = subprocess.run([sys.executable, "-c", "import tools; print(tools.IN_CI)"],
                           env={**os.environ, "CI": value, "PYTHONPATH": str(TESTS)},
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "True"
