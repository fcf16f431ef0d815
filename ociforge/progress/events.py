"""Progress events: what a run reports while it works, and how often.

A run reports through the ``on_progress`` callback of its Options (the CLI's
terminal, plain or JSON sink, or a program's own function).  ``Progress.of(options)``
hands out ``Task``s: one per step and item (a layer being built, a blob being
pushed, a table being read), each saying ``start``, ``progress`` (at most one
per ``UPDATE_INTERVAL`` seconds, so a log stays small) and ``end``.  Retries
are events of their own, and a pipeline's last event is ``finish``.

Blob transfers run on parallel threads: ``Options`` wraps the callback in
``threads.Serialised``, so it sees one event at a time, in the order they happened.

A registry client is shared by the calls of a run (``Options.session``), so it
cannot be handed one task's reporter per request; the task a thread is working
on is kept in a context variable instead (``current_task``), which
``retry_pause`` reports to and ``remote.parallel`` hands on to its workers.

Cancelling: ``Options.cancel`` (a ``threading.Event``) is looked at on every
update and while waiting to retry; once set, the run raises ``Cancelled``
where it is, and cleans up as after Ctrl-C.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Literal, Required, TypedDict

from ..errors import Cancelled

if TYPE_CHECKING:
    from ..options import Options

UPDATE_INTERVAL = 0.1   # seconds between two progress events of one task

EventKind = Literal["start", "progress", "end", "retry", "finish"]
Phase = Literal["check", "pull", "scan", "build", "table", "write", "push", "attach", "sign"]


class ProgressEvent(TypedDict, total=False):
    """One progress event; docs/cli.md describes every field.

    ``done``/``total`` count bytes (``total`` None when unknown); a build also
    counts ``files``, a table ``rows``.  ``finish`` carries no phase or item.
    """

    event: Required[EventKind]
    phase: Required[str | None]
    item: Required[str | None]
    done: Required[int | None]
    total: Required[int | None]
    label: str                   # start, end: what a person is shown for the item
    files: int                   # build: files written so far (not folders)
    files_total: int             # build: files the layer will hold
    rows: int                    # table: rows read so far
    status: str                  # end: ok, failed, cancelled, uploaded, mounted, exists, reused
    digest: str                  # end of a build: the layer's digest
    elapsed: float               # end: seconds since start
    attempt: int                 # retry: the attempt about to be made (2 = the first retry)
    attempts: int                # retry: attempts allowed in all
    delay: float                 # retry: seconds waited before it
    reason: str                  # retry: what failed ("503 Service Unavailable")
    error: str                   # finish: the one-line error of a failed run
    exit_code: int               # finish: what the command line exits with
    completed: list[str]         # finish: destinations written in full
    not_completed: list[str]     # finish: destinations not (fully) written


ProgressCallback = Callable[[ProgressEvent], None]


_CURRENT: contextvars.ContextVar[Task | None] = contextvars.ContextVar(
    "ociforge_progress_task", default=None)


def current_task() -> Task | None:
    """The task this thread is working on (the innermost one), if any reports."""
    return _CURRENT.get()


class Progress:
    """A run's reporter: where its events go and whether it was cancelled."""

    def __init__(self, callback: ProgressCallback | None = None,
                 cancel: threading.Event | None = None):
        self.callback = callback
        self.cancel = cancel

    @classmethod
    def of(cls, options: Options | None) -> Progress:
        if options is None:
            return cls()
        return cls(options.on_progress, options.cancel)

    @property
    def active(self) -> bool:
        return self.callback is not None or self.cancel is not None

    def emit(self, event: ProgressEvent) -> None:
        if self.callback is not None:
            self.callback(event)

    def check(self) -> None:
        """Raise Cancelled once the run's cancel event is set."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()

    def wait(self, seconds: float, sleep: Callable[[float], None] = time.sleep) -> None:
        """Sleep, but stop (Cancelled) as soon as the run is cancelled."""
        if self.cancel is None:
            sleep(seconds)
        elif self.cancel.wait(seconds):
            raise Cancelled()

    def task(self, phase: Phase, item: str, total: int | None = None,
             label: str | None = None) -> Task:
        """A step on one item; use it as a context manager (start ... end)."""
        if not self.active:
            return NULL_TASK
        return Task(self, phase, item, total, label)

    def finish(self, status: str, **fields: Any) -> None:
        """The run's last event: ``ok``, ``failed`` or ``cancelled``."""
        event: ProgressEvent = {"event": "finish", "phase": None, "item": None, "done": None,
                                "total": None, "status": status}
        event.update(fields)  # type: ignore[typeddict-item]
        self.emit(event)


class Task:
    """One step on one item: start, throttled updates, end (see the module doc).

    A task is advanced by the thread that runs it; its events go through the
    run's serialised callback.
    """

    def __init__(self, progress: Progress, phase: Phase, item: str, total: int | None,
                 label: str | None):
        self.progress = progress
        self.phase = phase
        self.item = item
        self.total = total
        self.label = label
        self.done = 0
        self.files = 0
        self.rows = 0
        self.files_total: int | None = None
        self.ending: dict[str, Any] = {}
        self._started = 0.0
        self._last = 0.0
        self._token: contextvars.Token[Task | None] | None = None

    # -- the life of a task ------------------------------------------------------

    def __enter__(self) -> Task:
        self.start()
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None
        self.end(kind)

    def start(self) -> None:
        self.progress.check()
        self._started = self._last = time.monotonic()
        self.progress.emit(self._event("start"))

    def end(self, kind: type[BaseException] | None = None) -> None:
        if kind is None:
            status = self.ending.pop("status", "ok")
        else:
            status = "cancelled" if issubclass(kind, KeyboardInterrupt) else "failed"
        event = self._event("end")
        event["status"] = status
        event["elapsed"] = round(time.monotonic() - self._started, 3)
        event.update(self.ending)  # type: ignore[typeddict-item]
        self.progress.emit(event)

    def set(self, **fields: Any) -> None:
        """Fields for the end event (``status``, ``digest``); ``done`` sets the count."""
        if "done" in fields:
            self.done = max(self.done, int(fields.pop("done")))
        self.ending.update(fields)

    def expect(self, total: int | None, files_total: int | None = None) -> None:
        """The total became known after the start: said at once, not throttled."""
        self.total = total
        self.files_total = files_total
        self._update(force=True)

    # -- updates -----------------------------------------------------------------

    def advance(self, n: int = 0, *, files: int = 0, rows: int = 0) -> None:
        """``n`` more bytes done (and files, rows); an event at most every 1/10 s."""
        self.done += n
        self.files += files
        self.rows += rows
        self._update()

    def reach(self, position: int) -> None:
        """``position`` bytes are done; a transfer sent again from the start (a retry)
        keeps its count until it gets further, so ``done`` never goes back."""
        if position > self.done:
            self.done = position
        self._update()

    def reading(self, raw: IO[bytes]) -> IO[bytes]:
        """``raw``, counting every byte read on this task."""
        return _Counting(raw, self)  # type: ignore[return-value]

    def _update(self, force: bool = False) -> None:
        self.progress.check()
        now = time.monotonic()
        if force or now - self._last >= UPDATE_INTERVAL:
            self._last = now
            self.progress.emit(self._event("progress"))

    def _event(self, kind: EventKind) -> ProgressEvent:
        event: ProgressEvent = {"event": kind, "phase": self.phase, "item": self.item,
                                "done": self.done, "total": self.total}
        if self.label is not None and kind in ("start", "end"):
            event["label"] = self.label
        if self.files or self.files_total is not None:
            event["files"] = self.files
            if self.files_total is not None:
                event["files_total"] = self.files_total
        if self.rows:
            event["rows"] = self.rows
        return event

    # -- retries -----------------------------------------------------------------

    def retry(self, attempt: int, attempts: int, delay: float, reason: str) -> None:
        event = self._event("retry")
        event.update({"attempt": attempt, "attempts": attempts, "delay": round(delay, 3),
                      "reason": reason})
        self.progress.emit(event)


class _NullTask(Task):
    """The task of a run nobody watches: every method does nothing."""

    def __init__(self) -> None:
        super().__init__(Progress(), "build", "", None, None)

    def __enter__(self) -> Task:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        pass

    def start(self) -> None:
        pass

    def end(self, kind: type[BaseException] | None = None) -> None:
        pass

    def set(self, **fields: Any) -> None:
        pass

    def expect(self, total: int | None, files_total: int | None = None) -> None:
        pass

    def advance(self, n: int = 0, *, files: int = 0, rows: int = 0) -> None:
        pass

    def reach(self, position: int) -> None:
        pass

    def reading(self, raw: IO[bytes]) -> IO[bytes]:
        return raw

    def retry(self, attempt: int, attempts: int, delay: float, reason: str) -> None:
        pass


NULL_TASK: Task = _NullTask()


class _Counting:
    """A binary stream whose reads advance a task."""

    def __init__(self, raw: IO[bytes], task: Task):
        self._raw = raw
        self._task = task

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._task.advance(len(data))
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> _Counting:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Transfer(_Counting):
    """A blob stream that is a task of its own: it starts when opened and ends when
    closed (``stopped`` when closed before its last byte).  While it reads, it is the
    current task (a resumed download is its retry)."""

    def __init__(self, raw: IO[bytes], task: Task):
        super().__init__(raw, task)
        try:
            task.start()
        except BaseException:
            raw.close()
            raise
        self._open = True

    def read(self, n: int = -1) -> bytes:
        token = _CURRENT.set(self._task)
        try:
            return super().read(n)
        finally:
            _CURRENT.reset(token)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._open:
                self._open = False
                total = self._task.total
                if total is not None and self._task.done < total:
                    self._task.set(status="stopped")
                self._task.end()


def transfer(progress: Progress, phase: Phase, item: str, total: int | None,
             open_raw: Callable[[], IO[bytes]]) -> IO[bytes]:
    """``open_raw()`` as a task of its own (a download: start on open, end on close)."""
    raw = open_raw()
    if not progress.active:
        return raw
    return _Transfer(raw, Task(progress, phase, item, total, None))  # type: ignore[return-value]


def retry_pause(attempt: int, attempts: int, delay: float, reason: str,
                sleep: Callable[[float], None] = time.sleep) -> None:
    """Say a retry is coming (to the current task, if any) and wait ``delay`` seconds
    (with ``sleep``), cut short by the run's cancel event."""
    task = current_task()
    if task is None:
        sleep(delay)
        return
    task.retry(attempt, attempts, delay, reason)
    task.progress.wait(delay, sleep)

