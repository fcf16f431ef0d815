"""The bounded daemon-thread runner used for parallel blob transfers."""

from __future__ import annotations

import threading
import time

import pytest

from ociforge.errors import TransportError
from ociforge.remote.parallel import run_parallel


def test_results_in_order_and_concurrency_bounded() -> None:
    lock = threading.Lock()
    running = peak = 0

    def work(x: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return x * x

    assert run_parallel(work, list(range(12)), 3) == [x * x for x in range(12)]
    assert 1 < peak <= 3


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
