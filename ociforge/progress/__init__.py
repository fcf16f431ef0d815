"""Progress: the events a run reports, and the sinks that show them.

* events.py: ``ProgressEvent``, the run's reporter ``Progress`` and its
  ``Task``s (throttled updates, cancelling, retries), and the serialised
  callback every event goes through.
* render.py: plain lines for logs and JSON lines for programs.
* tty.py: the live view on a terminal (rich, loaded only when drawing).

``sink(mode, stream, verbose)`` makes the sink for ``--progress MODE``.  This
module itself stays light (``--help`` reads the mode names); the names of
events.py and render.py are imported from it on first use.
"""

from __future__ import annotations

import importlib
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, Protocol, TextIO, TypeAlias

if TYPE_CHECKING:
    from .events import NULL_TASK as NULL_TASK
    from .events import Progress as Progress
    from .events import ProgressCallback as ProgressCallback
    from .events import ProgressEvent as ProgressEvent
    from .events import Task as Task
    from .events import retry_pause as retry_pause
    from .events import transfer as transfer
    from .render import JsonLines as JsonLines
    from .render import PlainLines as PlainLines
    from .render import human_size as human_size

ProgressMode: TypeAlias = Literal["auto", "tty", "plain", "json"]
PROGRESS_MODES: tuple[ProgressMode, ...] = ("auto", "tty", "plain", "json")

_EXPORTS = MappingProxyType({
    **dict.fromkeys(("NULL_TASK", "Progress", "ProgressCallback", "ProgressEvent", "Task",
                     "retry_pause", "transfer"), "events"),
    **dict.fromkeys(("JsonLines", "PlainLines", "human_size"), "render"),
})

__all__ = ["PROGRESS_MODES", "ProgressMode", "Sink", "sink", *sorted(_EXPORTS)]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


class Sink(Protocol):
    """A progress callback the command line closes when the command ends."""

    def __call__(self, event: ProgressEvent) -> None: ...

    def close(self) -> None: ...


def sink(mode: ProgressMode, stream: TextIO, verbose: bool = False) -> Sink:
    """The sink for ``--progress MODE`` on ``stream`` (stderr): ``auto`` draws on a
    terminal and writes plain lines elsewhere."""
    if mode == "json":
        from .render import JsonLines

        return JsonLines(stream)
    if mode == "tty" or (mode == "auto" and _is_terminal(stream)):
        from .tty import TtyView

        return TtyView(stream, force=mode == "tty")
    from .render import PlainLines

    return PlainLines(stream, verbose)


def _is_terminal(stream: TextIO) -> bool:
    from ..options import environ_value

    try:
        return stream.isatty() and environ_value("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False
