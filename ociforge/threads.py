"""Threads: a consumer on its own thread, and a callback one thread calls at a time.

Hashing, compressing and writing release the GIL, so handing chunks to a
thread (``BackgroundWriter``) lets them run on another core while the caller
reads the next ones: the one way ociforge overlaps such work.  ``Serialised``
lets work on many threads (parallel transfers) report through one callback.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import OperationError

T = TypeVar("T")


class BackgroundWriter:
    """Feeds chunks to ``consume`` on its own thread, in order, through a bounded queue.

    Hashing and writing release the GIL, so moving them off the thread that
    reads files and builds headers lets them overlap on another core.  Chunks
    must not be mutated after ``write``.  An error in ``consume`` is raised by
    the next ``write`` or by ``close``.
    """

    def __init__(self, consume: Callable[[Any], Any], depth: int = 8):
        self._consume = consume
        self._queue: queue.Queue[Any] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ociforge-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._consume(item)
                except BaseException as exc:  # handed to the producer thread
                    self._error = exc

    def write(self, data: Any) -> None:
        if self._error is not None:
            raise self._error
        if len(data):
            self._queue.put(data)

    def close(self) -> None:
        """Wait until every chunk is consumed; raise what consuming raised."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """Stop after an error elsewhere: drop what is queued, raise nothing."""
        if self._error is None:
            self._error = OperationError("stream abandoned")
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class ThreadedFeed:
    """Feeds ``consume`` (a hasher's update) the chunks of a stream: small ones inline,
    and from the first chunk of ``threshold`` bytes on, every one on a thread of its own
    (``BackgroundWriter``), so hashing a large stream overlaps the reading of it."""

    def __init__(self, consume: Callable[[Any], Any], threshold: int = 256 << 10):
        self._consume = consume
        self._threshold = threshold
        self._writer: BackgroundWriter | None = None

    def __call__(self, data: Any) -> None:
        if self._writer is None and len(data) >= self._threshold:
            self._writer = BackgroundWriter(self._consume, depth=4)
        if self._writer is not None:
            self._writer.write(data)
        else:
            self._consume(data)

    def wait(self) -> None:
        """Every chunk consumed (raises what consuming raised); feeding may go on after."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def abandon(self) -> None:
        """Stop after an error elsewhere (see ``BackgroundWriter.abandon``)."""
        if self._writer is not None:
            self._writer.abandon()
            self._writer = None


class Serialised(Generic[T]):
    """A callback called by one thread at a time, in the order the calls came."""

    def __init__(self, callback: Callable[[T], None]):
        self.callback = callback
        self._lock = threading.Lock()

    def __call__(self, item: T) -> None:
        with self._lock:
            self.callback(item)


def serialised(callback: Callable[[T], None]) -> Callable[[T], None]:
    """``callback`` behind one lock (itself when it is one already)."""
    return callback if isinstance(callback, Serialised) else Serialised(callback)
