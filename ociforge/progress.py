"""A tiny progress line on stderr for long copies and writes.

Shown only when asked (``Options.progress``: a terminal outside CI, or ``-v``)
and only when stderr is a terminal or ``-v`` forced it; redrawn at most a few
times a second so it never slows a copy down.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import IO, TextIO

from .display import human


def human_size(n: float) -> str:
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
        self.label = human(label)  # a path in the label must not break the line
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
        text = f"{self.label}  {human_size(self.done)}"
        if self.total:
            pct = min(100, int(self.done * 100 / self.total))
            text += f" / {human_size(self.total)}  {pct}%"
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


class Activity:
    """A line for a long step that reports no bytes itself (building a layer).

    ``building layer 1/2 from ./app  12.0 MiB  3.4s``: ``measure()`` (optional)
    says how far it got (e.g. the size of the blob being written) and a
    background thread redraws the line, so the step itself needs no hook.  When
    it ends one final line says how long it took.  Quiet unless ``enabled``.
    """

    def __init__(
        self,
        label: str,
        enabled: bool = False,
        measure: Callable[[], int | None] | None = None,
        stream: TextIO | None = None,
        interval: float | None = None,
    ):
        self.label = human(label)
        self.enabled = enabled
        self.measure = measure
        self.stream = stream if stream is not None else sys.stderr
        tty = self.stream.isatty()
        self.interval = interval if interval is not None else (0.2 if tty else 5.0)
        self.started = time.monotonic()
        self.elapsed = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self._width = 0

    def _text(self, final: bool = False) -> str:
        seconds = time.monotonic() - self.started
        amount = None
        if self.measure is not None:
            try:
                amount = self.measure()
            except OSError:
                amount = None
        size = f"  {human_size(amount)}" if amount else ""
        return f"{self.label}{size}  {seconds:.1f}s" + (" done" if final else "")

    def _draw(self, final: bool = False) -> None:
        with self._write_lock:
            tty = self.stream.isatty()
            text = self._text(final)
            if tty:  # overwrite what is left of a longer line drawn before
                text, self._width = text.ljust(self._width), len(text)
            self.stream.write(text + ("\r" if tty and not final else "\n"))
            self.stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw()

    def __enter__(self) -> Activity:
        self.started = time.monotonic()
        if self.enabled:
            if not self.stream.isatty():
                self._draw()  # a log gets a line when the step starts
            self._thread = threading.Thread(target=self._loop, name="ociforge-activity",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.elapsed = time.monotonic() - self.started
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            if exc_type is None:
                self._draw(final=True)
            elif self.stream.isatty():
                with self._write_lock:
                    self.stream.write("\n")
                    self.stream.flush()
