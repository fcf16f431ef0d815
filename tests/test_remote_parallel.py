"""The bounded daemon-thread runner used for parallel blob transfers."""

from __future__ import annotations

import threading
import time

import pytest

from ociforge.errors import TransportError
from ociforge.remote.parallel import run_parallel


def test_results_in_order_and_concurrency_bounded() -> None:
    """The first three items meet at a barrier: they finish only once all three run at
    once (so three workers do run together, however loaded the machine), and an item
    started beside them would show as a fourth running at once."""
    lock = threading.Lock()
    running = peak = 0
    together = threading.Barrier(3)

    def work(x: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        if x < 3:
            together.wait(timeout=60)
        else:
            time.sleep(0.01)
        with lock:
            running -= 1
        return x * x

    assert run_parallel(work, list(range(12)), 3) == [x * x for x in range(12)]
    assert peak == 3


def test_first_error_is_raised_and_stops_new_work() -> None:
    started: list[int] = []

    def work(x: int) -> int:
        started.append(x)
        if x == 1:
            raise TransportError("boom")
        time.sleep(0.05)
        return x

    with pytest.raises(TransportError, match="boom"):
        run_parallel(work, list(range(50)), 2)
    time.sleep(0.2)
    assert len(started) < 10


def test_serial_when_one_job() -> None:
    seen: list[str] = []
    assert run_parallel(lambda x: seen.append(threading.current_thread().name) or x,
                        [1, 2], 1) == [1, 2]
    assert set(seen) == {threading.current_thread().name}
