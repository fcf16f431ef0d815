"""A tiny progress line on stderr for long copies and writes.

Shown only when asked (``Options.progress``: a terminal outside CI, or ``-v``)
and only when stderr is a terminal or ``-v`` forced it; redrawn at most a few
times a second so it never slows a copy down.
"""

from __future__ import annotations

import sys
import time
from typing import IO, TextIO


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Progress:
    """Counts bytes and redraws one line: ``label  12.0 MiB / 40.0 MiB  30%``."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        enabled: bool = False,
        stream: TextIO | None = None,
        interval: float | None = None,
    ):
        self.label = label
        self.total = total
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        # a terminal line is redrawn in place; a log (-v in CI) gets a line every few seconds
        self.interval = interval if interval is not None else (
            0.2 if self.stream.isatty() else 5.0)
        self.done = 0
        self._last = 0.0
        self._drawn = False

    def advance(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        text = f"{self.label}  {_human(self.done)}"
        if self.total:
            pct = min(100, int(self.done * 100 / self.total))
            text += f" / {_human(self.total)}  {pct}%"
        end = "\r" if self.stream.isatty() else "\n"
        self.stream.write(text + end)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self.enabled and (self._drawn or self.done):
            self._draw()
            if self.stream.isatty():
                self.stream.write("\n")
                self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CountingReader:
    """Wraps a binary stream and reports bytes read to a Progress."""

    def __init__(self, raw: IO[bytes], progress: Progress):
        self._raw = raw
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._progress.advance(len(data))
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()
