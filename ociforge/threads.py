"""A consumer on its own thread: the one way ociforge overlaps work that releases the GIL.

Hashing, compressing and writing release the GIL, so handing chunks to a
thread lets them run on another core while the caller reads the next ones.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from .errors import OperationError


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
