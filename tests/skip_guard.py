"""The CI half of the skip guard in tests/tools.py.

In CI (CI=true) every tool is installed and the job runs as root, so a skipped
test is a test that silently did not run.  ``tools.skip`` already fails there
unless the caller says the reason cannot apply in CI; this plugin catches every
other way to skip (a plain ``pytest.skip``, ``pytest.importorskip``, a ``skip``
or ``skipif`` mark, a skip raised in a fixture or at module level) and turns it
into a failure that names the reason.  Outside CI it changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tools import IN_CI, NOT_IN_CI


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    text = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(
        longrepr)
    return text.removeprefix("Skipped: ")


def _refuse_unguarded_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not IN_CI or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _reason(report)
    if reason.startswith(NOT_IN_CI):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped in CI, where every tool is installed and tests run as root: {reason}\n"
        "(skip only through tests/tools.py: skip(reason, can_apply_in_ci=False) for a "
        "reason that cannot hold in CI, require_tool/require_module/require_root otherwise)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    _refuse_unguarded_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _refuse_unguarded_skip(outcome.get_result())
