"""Running groups round by round and collecting results per case."""

from __future__ import annotations

import shutil
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

from .cases import Case, Group
from .measure import CommandFailed, Sample, median


@dataclass
class CaseResult:
    key: str
    label: str
    group: str
    tool: str
    input_bytes: int = 0
    samples: list[Sample] = field(default_factory=list)
    skipped: str = ""      # why the case did not run (tool missing, group not selected)
    error: str = ""        # why it stopped (a failed command)

    @property
    def measured(self) -> bool:
        return bool(self.samples) and not self.error and not self.skipped

    @property
    def median(self) -> float | None:
        return median([s.seconds for s in self.samples]) if self.measured else None

    @property
    def best(self) -> float | None:
        return min(s.seconds for s in self.samples) if self.measured else None

    @property
    def cpu(self) -> float | None:
        return median([s.cpu_seconds for s in self.samples]) if self.measured else None

    @property
    def peak_rss(self) -> float | None:
        return max(s.maxrss_mib for s in self.samples) if self.samples else None

    @property
    def throughput(self) -> float | None:
        med = self.median
        if not med or not self.input_bytes:
            return None
        return self.input_bytes / med / 1e6

    def why_missing(self) -> str:
        return self.skipped or self.error or "no samples"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "label": self.label, "group": self.group, "tool": self.tool,
            "input_bytes": self.input_bytes, "skipped": self.skipped, "error": self.error,
            "median_s": self.median, "best_s": self.best, "cpu_s": self.cpu,
            "peak_rss_mib": self.peak_rss, "mb_per_s": self.throughput,
            "samples": [{"seconds": s.seconds, "cpu_seconds": s.cpu_seconds,
                         "maxrss_mib": s.maxrss_mib, "extra": s.extra} for s in self.samples],
        }


def log(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def _result(group: Group, case: Case) -> CaseResult:
    return CaseResult(case.key, case.label, group.key, case.tool)


def skip_group(group: Group, reason: str) -> list[CaseResult]:
    results = [_result(group, case) for case in group.cases]
    for res in results:
        res.skipped = reason
    return results


def run_group(group: Group) -> list[CaseResult]:
    """Prepare, then run every case once per round; a failing case stops, others go on."""
    results = {case.key: _result(group, case) for case in group.cases}
    active: list[Case] = []
    for case in group.cases:
        missing = [tool for tool in case.needs if shutil.which(tool) is None]
        if missing:
            results[case.key].skipped = f"{', '.join(missing)} not installed"
            log(f"{case.key}: skipped ({results[case.key].skipped})")
        else:
            active.append(case)
    log(f"== {group.title}")
    try:
        if group.prepare is not None and active:
            try:
                group.prepare()
            except Exception as exc:
                reason = f"setup failed: {_describe(exc)}"
                log(reason)
                for case in active:
                    results[case.key].error = reason
                return list(results.values())
        for case in active:
            results[case.key].input_bytes = case.input_bytes
        for rnd in range(group.rounds):
            for case in active:
                res = results[case.key]
                if res.error:
                    continue
                try:
                    sample = case.run(rnd)
                except Exception as exc:
                    res.error = _describe(exc)
                    log(f"{case.key}: FAILED {res.error}")
                    continue
                if not sample.ok:
                    res.error = sample.error
                    log(f"{case.key}: FAILED {res.error}")
                    continue
                res.samples.append(sample)
                extra = f" {sample.extra}" if sample.extra else ""
                log(f"{case.key} round {rnd + 1}/{group.rounds}: {sample.seconds:.3f} s, "
                    f"{sample.maxrss_mib:.0f} MiB{extra}")
    finally:
        if group.finish is not None:
            try:
                group.finish()
            except Exception as exc:
                log(f"{group.key}: cleanup failed: {_describe(exc)}")
    return list(results.values())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CommandFailed):
        return str(exc)
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"
