"""Deadlines for whole answers and a stall rule for blob transfers.

Socket timeouts bound one read or write, so a server that trickles a byte a
second is never cut off by them.  A ``Watchdog`` (one per Transport, its thread
running only while something is watched) ends such exchanges by shutting
down the connection's socket, which wakes the thread blocked on it:

* a *deadline* guard (manifests, tokens, error bodies, every request's answer)
  fires when its whole exchange, headers and body, has taken longer than the
  deadline;
* a *transfer* guard (blob bodies, either way) fires when the transfer makes no
  real progress: less than ``MIN_RATE`` bytes per second over the last
  ``window`` seconds spent waiting on the network.  Only time blocked on the
  network counts, so a slow consumer (a disk, a decompressor) never looks like
  a stalled server.  An upload's progress is what the peer acknowledged (the
  bytes handed to the socket minus what is still queued in it, where the
  system tells, as Linux does); once all of it is delivered, the answer must
  come within ``answer_within`` seconds.

The thread that owns a guard checks ``fired`` after an error or a short read
and reports it; the watchdog itself never raises.
"""

from __future__ import annotations

import array
import collections
import contextlib
import fcntl
import os
import socket
import termios
import threading
import time
from collections.abc import Callable, Iterator

# Real progress: at least this many bytes per second, averaged over the window.
MIN_RATE = 1024
# Samples per window for the sliding average.
_SAMPLES = 16
# The thread ends after this long with nothing to watch.
_IDLE_EXIT = 5.0


class Guard:
    """One watched exchange; use as a context manager (closing detaches it)."""

    def __init__(self, watchdog: Watchdog, *, deadline: float | None = None,
                 window: float | None = None, answer_within: float | None = None):
        self._watchdog = watchdog
        self.expires_at = time.monotonic() + deadline if deadline is not None else None
        self.window = window
        self._answer_within = answer_within
        self._answering = False
        self.fired = False
        self.reason = ""
        self._socket: socket.socket | None = None
        self._stops: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        # transfer accounting: seconds spent waiting on the network, bytes moved, and
        # (waited, progress) samples taken by the watchdog for the sliding window
        self._waited = 0.0
        self._armed_since: float | None = None
        self.moved_bytes = 0
        self._samples: collections.deque[tuple[float, int]] = collections.deque([(0.0, 0)])

    # -- what the watched thread does ------------------------------------------------

    def attach(self, sock: socket.socket) -> None:
        """Watch this socket (a duplicate is held, so a closed original is no risk)."""
        try:
            fd = sock.fileno()
        except OSError:
            return
        if fd < 0:
            return
        with self._lock:
            if self.fired:
                return
            if self._socket is not None:
                try:
                    if os.path.sameopenfile(self._socket.fileno(), fd):
                        return
                except OSError:
                    pass
            if self._socket is not None:
                self._socket.close()
            self._socket = socket.socket(fileno=os.dup(fd))

    def on_fire(self, stop: Callable[[], None]) -> None:
        """Also call ``stop`` when the guard fires (e.g. a response's shutdown)."""
        with self._lock:
            self._stops.append(stop)

    def answering(self) -> None:
        """The body is handed to the socket and the answer awaited: what is still
        queued must be delivered (progress as before), then the answer has a deadline."""
        if self.window is not None and self._answer_within is not None:
            self._answering = True
            self._armed_since = time.monotonic()
            self._watchdog.wake()

    def arm(self) -> None:
        """A blocking network read or write of the transfer starts."""
        self._armed_since = time.monotonic()

    def moved(self, count: int) -> None:
        """It ended, having moved ``count`` bytes."""
        armed, self._armed_since = self._armed_since, None
        if armed is not None:
            self._waited += time.monotonic() - armed
        self.moved_bytes += count

    def close(self) -> None:
        self._watchdog.forget(self)
        with self._lock:   # never while fire() is shutting the socket down
            if self._socket is not None:
                self._socket.close()
                self._socket = None
            self._stops.clear()

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the watchdog does --------------------------------------------------------

    def due(self, now: float) -> str | None:
        """Why this guard must fire now, or None (only the watchdog thread calls it)."""
        if self.expires_at is not None and now >= self.expires_at:
            return "deadline"
        window, armed = self.window, self._armed_since
        if window is None or armed is None:
            return None
        queued = self._queued() if self._answer_within is not None else 0
        if self._answering and queued == 0 and self._answer_within is not None:
            self.window = None      # all delivered: now the answer has its deadline
            self.expires_at = now + self._answer_within
            return None
        progress = self.moved_bytes - queued
        waited = self._waited + (now - armed)
        if waited - self._samples[-1][0] >= window / _SAMPLES:
            self._samples.append((waited, progress))
            while len(self._samples) > _SAMPLES + 2:
                self._samples.popleft()
        if waited < window:
            return None
        # progress over the last ``window`` seconds of waiting (sampled)
        base = self._samples[0]
        for sample in self._samples:
            if sample[0] <= waited - window:
                base = sample
        if progress - base[1] < MIN_RATE * window:
            return "stalled"
        return None

    def _queued(self) -> int:
        """Bytes handed to the socket that the peer has not acknowledged yet (0: unknown)."""
        if not hasattr(termios, "TIOCOUTQ"):
            return 0
        buf = array.array("i", [0])
        with self._lock:
            if self._socket is None:
                return 0
            try:
                fcntl.ioctl(self._socket.fileno(), termios.TIOCOUTQ, buf)
            except (OSError, ValueError):
                return 0
        return max(0, buf[0])

    def next_check(self, now: float) -> float:
        if self.expires_at is not None:
            return self.expires_at
        if self.window is not None:
            return now + max(0.02, min(1.0, self.window / _SAMPLES))
        return now + _IDLE_EXIT

    def fire(self, reason: str) -> None:
        with self._lock:
            if self.fired:
                return
            self.fired = True
            self.reason = reason
            if self._socket is not None:
                with contextlib.suppress(OSError):
                    self._socket.shutdown(socket.SHUT_RDWR)
            stops = list(self._stops)
        for stop in stops:
            with contextlib.suppress(Exception):
                stop()


class Watchdog:
    """Fires guards whose exchange overran its deadline or stalled."""

    def __init__(self, name: str = "ociforge-watchdog"):
        self._name = name
        self._guards: set[Guard] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._local = threading.local()

    def deadline(self, seconds: float) -> Guard:
        """A guard for an exchange that must be over within ``seconds``."""
        return self._add(Guard(self, deadline=seconds))

    def transfer(self, window: float, answer_within: float | None = None) -> Guard:
        """A guard for a blob transfer that must keep MIN_RATE over ``window`` seconds;
        an upload's answer, once the body is sent, must come within ``answer_within``."""
        return self._add(Guard(self, window=max(window, 0.05), answer_within=answer_within))

    @contextlib.contextmanager
    def current(self, guard: Guard) -> Iterator[Guard]:
        """Make ``guard`` the one this thread's new connections and requests attach to."""
        previous = getattr(self._local, "guard", None)
        self._local.guard = guard
        try:
            yield guard
        finally:
            self._local.guard = previous

    def attach(self, sock: socket.socket) -> None:
        """Called by the connection hooks: watch ``sock`` for this thread's guard."""
        guard = getattr(self._local, "guard", None)
        if guard is not None:
            guard.attach(sock)

    def answering(self) -> None:
        """Called by the connection hooks when a request is sent and its answer awaited."""
        guard = getattr(self._local, "guard", None)
        if guard is not None:
            guard.answering()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def forget(self, guard: Guard) -> None:
        with self._cond:
            self._guards.discard(guard)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._guards.clear()
            self._cond.notify()

    def _add(self, guard: Guard) -> Guard:
        with self._cond:
            self._guards.add(guard)
            if self._thread is None or not self._thread.is_alive():
                self._closed = False
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return guard

    def _run(self) -> None:
        idle_since: float | None = None
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                due = [(g, r) for g in self._guards if (r := g.due(now)) is not None]
                for guard, _ in due:
                    self._guards.discard(guard)
                if due:
                    self._cond.release()
                    try:
                        for guard, reason in due:
                            guard.fire(reason)
                    finally:
                        self._cond.acquire()
                    continue
                if not self._guards:
                    idle_since = idle_since or now
                    if now - idle_since >= _IDLE_EXIT:
                        self._thread = None
                        return
                    self._cond.wait(_IDLE_EXIT)
                    continue
                idle_since = None
                wake_at = min(g.next_check(now) for g in self._guards)
                self._cond.wait(max(0.0, wake_at - now))
