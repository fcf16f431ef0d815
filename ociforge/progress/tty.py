"""The live view on a terminal: one redrawn line per item at work, finished items and
retries printed above it.

Drawn with rich (its Progress/Live): parallel transfers update from several
threads, the view is redrawn in place at a steady rate whatever the update
rate, lines printed meanwhile (retries, log messages written to sys.stderr)
go above the live lines, and the terminal's width is respected.  rich is
imported on the first event, so a command that shows nothing (``--help``,
``--version``, a run on a pipe) never loads it.
"""

from __future__ import annotations

from typing import Any, TextIO

from .events import ProgressEvent
from .render import amount, describe, finished_line, retry_text


class TtyView:
    """A terminal sink (``--progress tty``, or ``auto`` on a terminal)."""

    def __init__(self, stream: TextIO, force: bool = False):
        self.stream = stream
        self.force = force
        self._progress: Any = None
        self._text: Any = None
        self._tasks: dict[tuple[str | None, str | None], Any] = {}

    def _start(self) -> Any:
        if self._progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
            from rich.text import Text

            console = Console(file=self.stream, force_terminal=True if self.force else None,
                              highlight=False, soft_wrap=False)
            self._text = Text
            self._progress = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(bar_width=24),
                TextColumn("{task.fields[amount]}", markup=False),
                TimeElapsedColumn(),
                console=console, transient=True, redirect_stdout=False,
                redirect_stderr=True)
            self._progress.start()
        return self._progress

    def __call__(self, event: ProgressEvent) -> None:
        kind = event["event"]
        if kind == "finish":
            self.close()
            return
        view = self._start()
        key = (event.get("phase"), event.get("item"))
        if kind == "start":
            self._tasks[key] = view.add_task(describe(event), total=event.get("total"),
                                             completed=event.get("done") or 0,
                                             amount=amount(event))
        elif kind == "progress":
            task = self._tasks.get(key)
            if task is not None:
                view.update(task, completed=event.get("done") or 0, total=event.get("total"),
                            amount=amount(event))
        elif kind == "end":
            task = self._tasks.pop(key, None)
            if task is not None:
                view.remove_task(task)
                view.refresh()  # the line printed next goes above the view without it
            line = finished_line(event, took=False)
            if line is not None:
                view.console.print(self._text(line), overflow="ellipsis", no_wrap=True)
        elif kind == "retry":
            view.console.print(self._text(f"{describe(event)}: {retry_text(event)}"),
                               overflow="ellipsis", no_wrap=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._tasks.clear()
