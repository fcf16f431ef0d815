"""Running one command and measuring it: wall time, CPU time, peak RSS.

Peak RSS: a child forked from this (Python, ~40 MiB) process inherits the
parent's RSS high-water mark, and Linux keeps it across exec, so ``wait4`` on
a direct child can never report less than the harness's own size.  The
command is therefore started through GNU ``/usr/bin/time`` (a tiny C program)
and its ``%M`` is the peak of the measured command alone (for a shell
pipeline, the largest process in it).  Without GNU time we fall back to
``wait4`` and say the figure is only an upper bound.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Sample:
    """One timed run."""

    seconds: float
    cpu_seconds: float = 0.0
    maxrss_mib: float = 0.0
    ok: bool = True
    error: str = ""
    extra: dict[str, object] = field(default_factory=dict)
    stderr: str = field(default="", repr=False)   # what the command said (for checks)


GNU_TIME = "/usr/bin/time"


def rss_is_exact() -> bool:
    """True when peak RSS comes from GNU time (exact), False when it is an upper bound."""
    return os.access(GNU_TIME, os.X_OK)


class CommandFailed(Exception):
    """A measured command exited non-zero; the message is its last stderr line."""


def run_measured(argv: Sequence[str] | str, *, cwd: Path | None = None,
                 env: Mapping[str, str] | None = None, stdout_path: Path | None = None,
                 check: bool = True) -> Sample:
    """Run ``argv`` (a list, or a string for ``bash -o pipefail -c``) and measure it."""
    if isinstance(argv, str):
        argv = ["bash", "-o", "pipefail", "-c", argv]
    argv = list(argv)
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL  # noqa: SIM115
    fd, time_out = tempfile.mkstemp(prefix="bench-time-")
    os.close(fd)
    if rss_is_exact():
        argv = [GNU_TIME, "-f", "%M %U %S", "-o", time_out, *argv]
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env) if env else None,
                                stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.PIPE)
        assert proc.stderr is not None
        err = proc.stderr.read()   # the child's stderr is small; reading it avoids a full pipe
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stderr.close()
        cpu, rss_kib = usage.ru_utime + usage.ru_stime, float(usage.ru_maxrss)
        if rss_is_exact():
            cpu, rss_kib = _parse_gnu_time(Path(time_out).read_text(), cpu, rss_kib)
    finally:
        if stdout_path:
            out.close()  # type: ignore[union-attr]
        os.unlink(time_out)
    sample = Sample(seconds=elapsed, cpu_seconds=cpu, maxrss_mib=rss_kib / 1024.0,
                    stderr=err.decode(errors="replace"))
    if proc.returncode != 0:
        lines = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
        sample.ok = False
        sample.error = f"exit {proc.returncode}: {lines[-1].strip() if lines else 'no output'}"
        if check:
            raise CommandFailed(sample.error)
    return sample


def _parse_gnu_time(text: str, cpu: float, rss_kib: float) -> tuple[float, float]:
    """The last line GNU time wrote: "MAXRSS_KIB USER_S SYS_S" (earlier lines may say
    the command failed)."""
    for line in reversed(text.strip().splitlines()):
        parts = line.split()
        if len(parts) == 3:
            try:
                return float(parts[1]) + float(parts[2]), float(parts[0])
            except ValueError:
                continue
    return cpu, rss_kib


def run_quiet(argv: Sequence[str] | str, *, cwd: Path | None = None,
              env: Mapping[str, str] | None = None) -> str:
    """Untimed setup step; returns stdout; raises CommandFailed with stderr's last line."""
    if isinstance(argv, str):
        argv = ["bash", "-o", "pipefail", "-c", argv]
    proc = subprocess.run(list(argv), cwd=cwd, env=dict(env) if env else None,
                          stdin=subprocess.DEVNULL, capture_output=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
        raise CommandFailed(f"{' '.join(argv)[:80]}: exit {proc.returncode}: "
                            f"{lines[-1].strip() if lines else 'no output'}")
    return proc.stdout.decode(errors="replace")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")
