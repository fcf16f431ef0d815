"""The parts every small loopback HTTP server of the tests shares.

``LoopbackServer(Handler)`` binds a free port on loopback, serves on a daemon
thread and ``stop()`` shuts it down; ``QuietHandler`` logs nothing and has
``reply`` (a whole response) and ``read_body``.  Clients that hang up on a
stalled or reset exchange are expected, so the server prints no traceback for
them (which would also land in the captured stderr of the in-process CLI).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def read_body(self) -> bytes:
        """The request body (Content-Length bytes; none without one)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, body: bytes = b"",
              headers: Mapping[str, str] | None = None) -> None:
        """``status`` with ``headers``, Content-Length and ``body`` (no body to a HEAD)."""
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)


class LoopbackServer:
    """``handler`` served on a free port of ``host`` (``host`` and ``port`` name it);
    ``start=False`` binds now and serves from ``start()``.  ``recv_buffer`` sets the
    listening socket's receive buffer before it binds (a small one makes a client's
    writes block early)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", *,
                 port: int = 0, start: bool = True, recv_buffer: int | None = None):
        self.server = QuietServer((host, port), handler, bind_and_activate=False)
        if recv_buffer:
            self.server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
        try:
            self.server.server_bind()
            self.server.server_activate()
        except BaseException:
            self.server.server_close()
            raise
        self.port: int = self.server.server_address[1]
        self.host = f"{host}:{self.port}"
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread = None
        self.server.server_close()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
