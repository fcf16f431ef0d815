"""Run blob transfers on a bounded set of daemon threads.

Not a ThreadPoolExecutor: its workers are joined when the interpreter exits,
so one transfer stalled in a socket read would hold Ctrl-C hostage until its
timeout.  Daemon workers let the main thread stop at once: it waits on a queue
with a short timeout (so KeyboardInterrupt is delivered), and the first error
or interrupt tells the other workers to take no new work.  Each worker runs in a
copy of the caller's context, so what it reports (a retry) goes to the caller's
progress task.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_parallel(fn: Callable[[T], R], items: Sequence[T], jobs: int,
                 name: str = "ociforge-transfer") -> list[R]:
    """``[fn(x) for x in items]`` on up to ``jobs`` threads; the first error is raised."""
    if jobs <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    stop = threading.Event()
    todo: queue.SimpleQueue[tuple[int, T]] = queue.SimpleQueue()
    for pair in enumerate(items):
        todo.put(pair)
    done: queue.SimpleQueue[tuple[int, bool, object]] = queue.SimpleQueue()

    def worker() -> None:
        while not stop.is_set():
            try:
                index, item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((index, True, fn(item)))
            except BaseException as exc:  # handed to the main thread, raised there
                done.put((index, False, exc))
                return

    threads = [threading.Thread(target=contextvars.copy_context().run, args=(worker,),
                                name=f"{name}-{n}", daemon=True)
               for n in range(min(jobs, len(items)))]
    for thread in threads:
        thread.start()
    results: list[object] = [None] * len(items)
    remaining = len(items)
    try:
        while remaining:
            try:
                index, ok, value = done.get(timeout=0.2)
            except queue.Empty:
                if not any(t.is_alive() for t in threads) and done.empty():
                    raise RuntimeError("transfer workers stopped without a result") from None
                continue
            if not ok:
                assert isinstance(value, BaseException)
                raise value
            results[index] = value
            remaining -= 1
    finally:
        stop.set()
    return results  # type: ignore[return-value]
