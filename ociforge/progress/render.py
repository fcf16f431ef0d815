"""Sinks for progress events: plain lines for logs, JSON lines for programs.

The terminal's live view is in tty.py (it loads a drawing library, so only
when one is drawn).  Every name shown to a person goes through display.human,
so a file or tag name cannot forge a line; JSON gets valid Unicode.
"""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import TextIO

from ..display import human, json_safe
from .events import ProgressEvent

PHASE_VERBS = MappingProxyType({
    "check": ("checking", "checked"),
    "pull": ("pulling", "pulled"),
    "scan": ("scanning", "scanned"),
    "build": ("building", "built"),
    "table": ("reading table", "read table"),
    "write": ("writing", "wrote"),
    "push": ("pushing", "pushed"),
    "attach": ("attaching to", "attached to"),
    "sign": ("signing", "signed"),
})


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def short_item(item: str) -> str:
    """A digest as people read it (``sha256:`` and 12 hex digits); any other item as it is."""
    algorithm, sep, rest = item.partition(":")
    if sep and algorithm in ("sha256", "sha512") and len(rest) > 12 and "/" not in item:
        return f"{algorithm}:{rest[:12]}"
    return item


def describe(event: ProgressEvent, past: bool = False) -> str:
    """``pushing sha256:0123456789ab``: what an event's task does, escaped for a terminal."""
    phase = event.get("phase") or ""
    verbs = PHASE_VERBS.get(phase, (phase, phase))
    what = event.get("label") or short_item(event.get("item") or "")
    return human(f"{verbs[1] if past else verbs[0]} {what}".strip())


def amount(event: ProgressEvent) -> str:
    """``3.0 MiB / 12.0 MiB, 40/120 files``: how far an event's task got."""
    parts = []
    done, total = event.get("done"), event.get("total")
    if done is not None and (done or total):
        parts.append(human_size(done) + (f" / {human_size(total)}"
                                         if total is not None and total != done else ""))
    files = event.get("files")
    if files is not None:
        total_files = event.get("files_total")
        count = f"{files}/{total_files}" if total_files is not None and total_files != files \
            else str(files)
        parts.append(f"{count} file" + ("" if (total_files or files) == 1 else "s"))
    rows = event.get("rows")
    if rows is not None:
        parts.append(f"{rows} row" + ("" if rows == 1 else "s"))
    return ", ".join(parts)


def retry_text(event: ProgressEvent) -> str:
    """``retrying in 2.0 s (attempt 2/6): 503 Service Unavailable``."""
    return human(f"retrying in {event.get('delay', 0.0):.1f} s (attempt {event.get('attempt')}/"
                 f"{event.get('attempts')}): {event.get('reason', '')}")


STATUS_SHOWN = MappingProxyType({"ok": "", "reused": "from the cache"})
UNFINISHED = ("failed", "cancelled", "stopped")  # the error line says what went wrong


def started_line(event: ProgressEvent) -> str:
    """``pushing sha256:0123456789ab (3.0 MiB)``."""
    total = event.get("total")
    return describe(event) + (f" ({human_size(total)})" if total else "")


def finished_line(event: ProgressEvent, took: bool = True) -> str | None:
    """``pushed sha256:0123456789ab (uploaded, 3.0 MiB, 0.4 s)``; None for an item that did
    not finish (failed, cancelled)."""
    status = str(event.get("status", "ok"))
    if status in UNFINISHED:
        return None
    elapsed = event.get("elapsed")
    parts = [STATUS_SHOWN.get(status, status), amount(event),
             f"{elapsed:.1f} s" if took and elapsed is not None else ""]
    detail = ", ".join(part for part in parts if part)
    return describe(event, past=True) + (f" ({detail})" if detail else "")


class PlainLines:
    """A few lines for a log: one when an item starts and one when it ends; retries
    only when ``verbose`` (no ``\\r``, no redraws)."""

    def __init__(self, stream: TextIO, verbose: bool = False):
        self.stream = stream
        self.verbose = verbose

    def __call__(self, event: ProgressEvent) -> None:
        kind = event["event"]
        line: str | None = None
        if kind == "start":
            line = started_line(event)
        elif kind == "end":
            line = finished_line(event)
        elif kind == "retry" and self.verbose:
            line = f"{describe(event)}: {retry_text(event)}"
        if line is not None:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        pass


class JsonLines:
    """One JSON object per line and event (see docs/cli.md for the schema)."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.finished = False

    def __call__(self, event: ProgressEvent) -> None:
        if event["event"] == "finish":
            if self.finished:
                return
            self.finished = True
        self.stream.write(json.dumps(json_safe(dict(event)), separators=(",", ":")) + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass
