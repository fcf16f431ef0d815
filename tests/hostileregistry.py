"""A hostile registry and a second listener, real servers on loopback.

``HostileRegistry`` speaks enough of the v2 API to pull one image (from an OCI
layout) and to accept a push (into memory), with Basic auth or a Bearer
challenge, and misbehaves on demand: ``tricks`` maps a request kind to what to
answer instead (a Location, a Link, a realm, a body that is nested 100,000
levels deep, never ends, or trickles).  A trick is an ``Answer``, a Location or
Link text, a callable of the path giving either (or None: answer normally), or
for ``upload-put`` (step, delay): read ``step`` body bytes per ``delay`` seconds.
Request kinds: ``ping``, ``token``, ``manifest``, ``blob``, ``upload-start``,
``upload-put``, ``tags``; ``realm`` sets the Bearer realm.

``Listener`` is a plain TCP server that records every connection and every byte
it receives: a test that expects nothing to reach it asserts ``connections ==
0`` (no Authorization, no token, no blob bytes can have arrived).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from httpserver import LoopbackServer, QuietHandler

USER, PASSWORD = "mallory-victim", "pa55-not-for-b"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
TOKEN = "tok-secret-8c1e"


class Listener:
    """Records everything sent to it; answers ``answer`` (if any) to each connection."""

    def __init__(self, answer: bytes | None = None, host: str = "127.0.0.1"):
        self._sock = socket.create_server((host, 0))
        self._sock.settimeout(0.2)
        self.host = f"{host}:{self._sock.getsockname()[1]}"
        self.port = self._sock.getsockname()[1]
        self.answer = answer
        self.connections = 0
        self.received = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Listener:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                self.received.extend(data)
                if self.answer is not None and b"\r\n\r\n" in self.received:
                    conn.sendall(self.answer)
                    return

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(5)

    def __enter__(self) -> Listener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Answer:
    """What to send instead of the normal answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Callable[[threading.Event], Iterator[bytes]] = b""
    length: bool = True           # send Content-Length (else close-delimited)
    trickle_headers: float = 0.0  # seconds between header bytes (0: all at once)


def nested(depth: int = 100_000) -> bytes:
    return b"[" * depth + b"]" * depth


def endless(piece: bytes = b" ", delay: float = 0.0) -> Callable[[threading.Event],
                                                                  Iterator[bytes]]:
    """A body that never ends: ``piece`` again and again, ``delay`` seconds apart."""
    def body(stop: threading.Event) -> Iterator[bytes]:
        while not stop.is_set():
            yield piece
            if delay:
                time.sleep(delay)
    return body


def trickled(data: bytes, delay: float, step: int = 1
             ) -> Callable[[threading.Event], Iterator[bytes]]:
    """``data`` ``step`` bytes at a time, ``delay`` seconds apart."""
    def body(stop: threading.Event) -> Iterator[bytes]:
        for i in range(0, len(data), step):
            if stop.is_set():
                return
            yield data[i:i + step]
            time.sleep(delay)
    return body


class HostileRegistry:
    """A loopback registry for one repository ``app`` that misbehaves on demand."""

    def __init__(self, layout: Path | None = None, *, bearer: bool = False,
                 tricks: dict[str, Any] | None = None, recv_buffer: int | None = None):
        self.tricks: dict[str, Any] = dict(tricks or {})
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.uploads: dict[str, bytearray] = {}
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}
        self.stopping = threading.Event()
        self.bearer = bearer
        if layout is not None:
            self._load(layout)
        owner = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner._handle(self)

            do_HEAD = do_PUT = do_POST = do_PATCH = do_GET

        self._server = LoopbackServer(Handler, start=False, recv_buffer=recv_buffer)
        self.port = self._server.port
        self.host = self._server.host

    def _load(self, layout: Path) -> None:
        index = json.loads((layout / "index.json").read_text())
        blobs = layout / "blobs" / "sha256"
        for path in blobs.iterdir():
            self.blobs[f"sha256:{path.name}"] = path.read_bytes()
        desc = index["manifests"][0]
        data = self.blobs[desc["digest"]]
        self.manifests["t"] = self.manifests[desc["digest"]] = (desc["mediaType"], data)

    def start(self) -> HostileRegistry:
        self._server.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.stop()

    def __enter__(self) -> HostileRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests_of(self, kind: str) -> list[tuple[str, str, dict[str, str]]]:
        return [r for r in self.seen if _kind(r[0], r[1]) == kind]

    # -- answers -------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        headers = {k.lower(): v for k, v in h.headers.items()}
        kind = _kind(h.command, h.path)
        self.seen.append((h.command, h.path, headers))
        length = int(headers.get("content-length") or 0)
        trick = self.tricks.get(kind)
        if callable(trick) and not isinstance(trick, Answer):
            trick = trick(h.path)
        if kind == "upload-put" and isinstance(trick, tuple):
            self._read_slowly(h, length, *trick)
            return
        body = h.rfile.read(length) if length and kind != "upload-put" else b""
        if kind == "token":
            self._send(h, trick or Answer(200, {"Content-Type": "application/json"},
                                          json.dumps({"token": TOKEN}).encode()))
            return
        if not self._authorized(h, headers):
            return
        if isinstance(trick, Answer):
            if kind == "upload-put":
                h.rfile.read(length)
            self._send(h, trick)
            return
        if kind == "ping":
            self._send(h, Answer(200, {"Content-Type": "application/json"}, b"{}"))
        elif kind == "manifest":
            self._manifest(h, body)
        elif kind == "blob":
            digest = h.path.rsplit("/", 1)[1].split("?")[0]
            if digest in self.blobs:
                self._send(h, Answer(200, {"Content-Type": "application/octet-stream"},
                                     self.blobs[digest]))
            else:
                self._send(h, Answer(404, {"Content-Type": "application/json"},
                                     b'{"errors":[{"code":"BLOB_UNKNOWN","message":"no"}]}'))
        elif kind == "upload-start":
            name = f"u{len(self.uploads)}"
            self.uploads[name] = bytearray()
            location = trick if isinstance(trick, str) else \
                f"/v2/app/blobs/uploads/{name}?_state=STATE-SECRET"
            self._send(h, Answer(202, {"Location": location, "Range": "0-0"}))
        elif kind == "upload-put":
            data = h.rfile.read(length)
            digest = h.path.split("digest=", 1)[1].replace("%3A", ":")
            self.blobs[digest] = data
            self._send(h, Answer(201, {"Docker-Content-Digest": digest,
                                       "Location": f"/v2/app/blobs/{digest}"}))
        elif kind == "tags":
            link = trick if isinstance(trick, str) and "last=" not in h.path else None
            extra = {"Link": link} if link else {}
            self._send(h, Answer(200, {"Content-Type": "application/json", **extra},
                                 json.dumps({"name": "app", "tags": ["a"]}).encode()))
        else:
            self._send(h, Answer(404))

    def _authorized(self, h: BaseHTTPRequestHandler, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization")
        if self.bearer:
            if auth == f"Bearer {TOKEN}":
                return True
            realm = self.tricks.get("realm", f"http://{self.host}/token")
            self._send(h, Answer(401, {"WWW-Authenticate":
                                       f'Bearer realm="{realm}",'
                                       'service="hostile",scope="repository:app:pull"'}))
            return False
        if auth == BASIC:
            return True
        self._send(h, Answer(401, {"WWW-Authenticate": 'Basic realm="hostile"'}))
        return False

    def _manifest(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        ref = h.path.rsplit("/", 1)[1].split("?")[0]
        if h.command == "PUT":
            media_type = h.headers.get("Content-Type", "")
            self.manifests[ref] = (media_type, body)
            import hashlib

            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            self.manifests[digest] = (media_type, body)
            self._send(h, Answer(201, {"Docker-Content-Digest": digest}))
            return
        if ref not in self.manifests:
            self._send(h, Answer(404, {"Content-Type": "application/json"},
                                 b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}'))
            return
        media_type, data = self.manifests[ref]
        import hashlib

        self._send(h, Answer(200, {"Content-Type": media_type, "Docker-Content-Digest":
                                   "sha256:" + hashlib.sha256(data).hexdigest()}, data))

    def _read_slowly(self, h: BaseHTTPRequestHandler, length: int, step: int,
                     delay: float) -> None:
        """Take an upload body ``step`` bytes every ``delay`` seconds, then store it."""
        data = bytearray()
        while len(data) < length:
            if self.stopping.is_set():
                return
            piece = h.rfile.read(min(step, length - len(data)))
            if not piece:
                return
            data.extend(piece)
            time.sleep(delay)
        digest = h.path.split("digest=", 1)[1].replace("%3A", ":")
        self.blobs[digest] = bytes(data)
        self._send(h, Answer(201, {"Docker-Content-Digest": digest}))

    def _send(self, h: BaseHTTPRequestHandler, answer: Answer) -> None:
        try:
            lines = [f"HTTP/1.1 {answer.status} X\r\n"]
            lines += [f"{k}: {v}\r\n" for k, v in answer.headers.items()]
            fixed = answer.body if isinstance(answer.body, bytes) else None
            if fixed is not None and answer.length:
                lines.append(f"Content-Length: {len(fixed)}\r\n")
            if fixed is None or not answer.length:
                lines.append("Connection: close\r\n")
                h.close_connection = True
            head = ("".join(lines) + "\r\n").encode("latin-1")
            if answer.trickle_headers:
                for i in range(len(head)):
                    if self.stopping.is_set():
                        return
                    h.wfile.write(head[i:i + 1])
                    h.wfile.flush()
                    time.sleep(answer.trickle_headers)
            else:
                h.wfile.write(head)
            if h.command == "HEAD":
                return
            if fixed is not None:
                h.wfile.write(fixed)
                return
            assert callable(answer.body)
            for piece in answer.body(self.stopping):
                h.wfile.write(piece)
                h.wfile.flush()
        except OSError:
            h.close_connection = True


def _kind(method: str, path: str) -> str:
    if path.startswith("/token"):
        return "token"
    if path == "/v2/":
        return "ping"
    if "/manifests/" in path:
        return "manifest"
    if "/tags/list" in path:
        return "tags"
    if "/blobs/uploads/" in path:
        return "upload-start" if method == "POST" else "upload-put"
    if "/blobs/" in path:
        return "blob"
    return "other"


def docker_config(directory: Path, *hosts: str) -> None:
    """Store the victim's Basic credentials for ``hosts`` where ociforge looks first."""
    directory.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (directory / "config.json").write_text(json.dumps(
        {"auths": {host: {"auth": auth} for host in hosts}}))


def leaked(data: bytes | bytearray) -> list[str]:
    """Which secrets appear in ``data``."""
    text = bytes(data)
    return [name for name, needle in (("password", PASSWORD.encode()),
                                      ("basic", BASIC.split()[1].encode()),
                                      ("token", TOKEN.encode()),
                                      ("authorization", b"uthorization"))
            if needle in text]
