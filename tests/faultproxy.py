"""A fault-injecting HTTP proxy to put in front of a real registry in tests.

The real registry cannot reset a connection mid-blob, answer 503 on demand or
return a corrupt body; this proxy can.  Rules match requests by method and
path and fire a bounded number of times; every fault fired is counted so the
test output can report faults injected and survived.

Only loopback: it listens on 127.0.0.1 and forwards to a loopback upstream.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from httpserver import LoopbackServer, QuietHandler

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-connection", "proxy-authorization"}


@dataclass
class Rule:
    """Fire ``action`` on requests whose method and path match, ``times`` times.

    Actions: ``status`` (answer ``status`` with optional ``headers`` and a JSON
    error body ``code``; to a HEAD, a Content-Length in ``headers`` is the one sent),
    ``reset`` (close the connection after forwarding part of the exchange),
    ``stall`` (sleep ``delay`` seconds before answering),
    ``corrupt`` (flip a byte of the response body), ``truncate`` (send half the
    body, then close), ``reject_large_chunks`` (416 for PATCH/PUT bodies over
    ``limit``), ``chunked_only`` (reject a PUT that carries the whole blob).
    ``add_headers`` (forward, then add ``headers`` to the response, e.g.
    OCI-Chunk-Min-Length), ``strip_mount`` (forward a ``?mount=&from=`` POST
    without those parameters, so the registry answers 202 and a fresh upload,
    as registries do when they cannot or will not mount).
    ``rewrite`` (forward, then replace text in the response headers: ``headers``
    maps old text to new, e.g. to point a token realm at another proxy).
    ``lost_answer`` (forward, let the registry act, then answer ``status``
    instead of the registry's answer: the response was lost on the way back).
    ``around`` (forward inside ``around()``, a context manager the test gives, left
    once the registry has answered: it can put the real registry's storage, for this
    one exchange, in the state a racing writer leaves it in for an instant).
    ``skip`` lets the first N matches through untouched.  ``released`` counts stalled
    exchanges whose delay ran out (so a test can tell a client that gave up on a stalled
    answer from one that waited for it, without timing anything).
    """

    action: str
    method: str = ".*"
    path: str = ".*"
    times: int = 1
    status: int = 503
    code: str = "UNAVAILABLE"
    headers: dict[str, str] = field(default_factory=dict)
    around: Callable[[], contextlib.AbstractContextManager[object]] | None = None
    delay: float = 0.0
    limit: int = 0
    skip: int = 0
    fired: int = 0
    seen: int = 0
    released: int = 0

    def matches(self, method: str, path: str) -> bool:
        return bool(re.fullmatch(self.method, method)) and bool(re.search(self.path, path))


class FaultProxy:
    """Threaded proxy: ``with FaultProxy(upstream) as proxy: proxy.add(Rule(...))``."""

    def __init__(self, upstream: str):
        self.upstream = upstream  # "127.0.0.1:PORT"
        self.rules: list[Rule] = []
        self.injected: Counter[str] = Counter()
        self.requests: list[tuple[str, str, int]] = []   # answered: (method, path, status)
        self.arrivals: list[tuple[str, str]] = []        # every request, as it arrives
        self.bodies: list[tuple[str, str, int | None]] = []  # (method, path, Content-Length)
        self._lock = threading.Lock()
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = LoopbackServer(Handler, start=False)
        self.host = self._server.host

    def __enter__(self) -> FaultProxy:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def take(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.fired < rule.times and rule.matches(method, path):
                    rule.seen += 1
                    if rule.seen <= rule.skip:
                        continue
                    rule.fired += 1
                    self.injected[rule.action if rule.action != "status" else
                                  f"status {rule.status}"] += 1
                    return rule
        return None

    def count(self, method: str, pattern: str) -> int:
        with self._lock:
            return sum(1 for m, p, _ in self.requests if m == method and re.search(pattern, p))

    def arrived(self, method: str, pattern: str) -> list[str]:
        """Paths of the requests that arrived (answered or not): ``method`` is a regular
        expression over the whole method (``PUT|PATCH``), ``pattern`` searched in the path."""
        with self._lock:
            return [p for m, p in self.arrivals
                    if re.fullmatch(method, m) and re.search(pattern, p)]

    def report(self) -> str:
        total = sum(self.injected.values())
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(self.injected.items()))
        return f"faults injected: {total} ({parts})"


class _Handler(QuietHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # -- request body -----------------------------------------------------
    def _body_chunks(self) -> Iterator[bytes]:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                remaining = size
                while remaining:
                    data = self.rfile.read(min(remaining, 1 << 20))
                    if not data:
                        return
                    remaining -= len(data)
                    yield data
                self.rfile.readline()
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining > 0:
                data = self.rfile.read(min(remaining, 1 << 20))
                if not data:
                    return
                remaining -= len(data)
                yield data

    def _body_length(self) -> int | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return None
        return int(self.headers.get("Content-Length") or 0)

    # -- responses ----------------------------------------------------------
    def _send_error(self, status: int, code: str, headers: dict[str, str]) -> None:
        body = (b'{"errors":[{"code":"%s","message":"injected by faultproxy"}]}'
                % code.encode())
        length = str(len(body))
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() == "content-length" and self.command == "HEAD":
                length = v      # a HEAD sends no body: it may claim any length
            else:
                self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _drain(self) -> None:
        for _ in self._body_chunks():
            pass

    def _reset(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()

    def _handle(self) -> None:
        owner = self.owner
        with owner._lock:
            owner.arrivals.append((self.command, self.path))
        if self.command in ("PUT", "PATCH", "POST"):
            with owner._lock:
                owner.bodies.append((self.command, self.path, self._body_length()))
        rule = owner.take(self.command, self.path)
        if rule is not None and rule.action == "strip_mount":
            self.path = re.sub(r"(?<=[?&])(mount|from)=[^&]*&?", "", self.path).rstrip("?&")
        if rule is not None and rule.action == "status":
            self._drain()
            # recorded before answering, so a client that has its answer sees it counted
            owner.requests.append((self.command, self.path, rule.status))
            self._send_error(rule.status, rule.code, rule.headers)
            return
        if rule is not None and rule.action == "stall":
            time.sleep(rule.delay)
            with owner._lock:
                rule.released += 1
        if rule is not None and rule.action == "reject_large_chunks" and (
            self.command in ("PATCH", "PUT")
        ):
            length = self._body_length()
            if length is None or length > rule.limit:
                self._drain()
                owner.requests.append((self.command, self.path, 416))
                self._send_error(416, "SIZE_INVALID", {})
                return
            rule.fired -= 1  # small chunks pass; keep the rule armed
            rule.times = max(rule.times, rule.fired + 1)
            owner.injected[rule.action] -= 1
        if rule is not None and rule.action == "chunked_only" and self.command == "PUT":
            if (self._body_length() or 0) > 0 and "digest=" in self.path:
                self._drain()
                owner.requests.append((self.command, self.path, 400))
                self._send_error(400, "BLOB_UPLOAD_INVALID", {})
                return
            owner.injected[rule.action] -= 1
            rule.fired -= 1
        if rule is not None and rule.action == "reset" and self.command in ("PUT", "PATCH", "POST"):
            # read part of the upload, then drop the connection
            for i, _ in enumerate(self._body_chunks()):
                if i >= 1:
                    break
            owner.requests.append((self.command, self.path, 0))
            self._reset()
            return
        self._forward(rule)

    def _forward(self, rule: Rule | None) -> None:
        owner = self.owner
        conn = http.client.HTTPConnection(owner.upstream, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        chunked = self._body_length() is None
        body: object = None
        if chunked:
            body = self._body_chunks()
        elif self._body_length():
            body = _Reader(self._body_chunks())
            headers["Content-Length"] = str(self._body_length())
        hook: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
        if rule is not None and rule.action == "around" and rule.around is not None:
            hook = rule.around()
        with hook:
            conn.request(self.command, self.path, body=body,  # type: ignore[arg-type]
                         headers=headers, encode_chunked=chunked and self.command != "HEAD")
            resp = conn.getresponse()
        if rule is not None and rule.action == "lost_answer":
            resp.read()
            conn.close()
            owner.requests.append((self.command, self.path, rule.status))
            self._send_error(rule.status, rule.code, rule.headers)
            return
        owner.requests.append((self.command, self.path, resp.status))
        self.send_response(resp.status)
        length = resp.getheader("Content-Length")
        for k, v in resp.getheaders():
            if k.lower() not in HOP_HEADERS:
                if rule is not None and rule.action == "rewrite":
                    for old, new in rule.headers.items():
                        v = v.replace(old, new)
                self.send_header(k, v)
        if rule is not None and rule.action == "add_headers":
            for k, v in rule.headers.items():
                self.send_header(k, v)
        if length is None and self.command != "HEAD":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            conn.close()
            return
        total = int(length) if length is not None else None
        sent = 0
        corrupted = False
        while True:
            data = resp.read(1 << 16)
            if not data:
                break
            if rule is not None and rule.action == "corrupt" and not corrupted:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
                corrupted = True
            cut = rule is not None and rule.action in ("truncate", "reset") and bool(total)
            if cut and total is not None and sent + len(data) >= total // 2:
                self.wfile.write(data[: max(0, total // 2 - sent)])
                self.wfile.flush()
                self._reset()
                conn.close()
                return
            self.wfile.write(data)
            sent += len(data)
        conn.close()


class _Reader:
    """File-like over a chunk iterator, for http.client request bodies."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._chunks)
            except StopIteration:
                break
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


Hook = Callable[[FaultProxy], None]
