"""A tiny read-only registry for what the real one will not do: redirect blob GETs.

Registries behind CDNs answer ``GET /v2/<repo>/blobs/<digest>`` with a redirect
to another host.  The client must follow it without carrying the registry's
Authorization header there.  ``FakeRegistry`` serves one image from an OCI
layout, demands Basic auth, and redirects every blob GET to ``BlobHost`` (a
second loopback server, on 127.0.0.2 when that address is usable, else another
port) which records the headers it was sent.
"""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

from httpserver import LoopbackServer, QuietHandler


def loopback_alias() -> str:
    """127.0.0.2 if this machine can bind it (Linux can), else 127.0.0.1."""
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.2", 0))
        return "127.0.0.2"
    except OSError:
        return "127.0.0.1"


class BlobHost:
    """Serves blobs from a layout's blobs/sha256 and records every request's headers."""

    def __init__(self, blobs: Path, host: str):
        self.seen: list[dict[str, str]] = []
        owner = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner.seen.append({k.lower(): v for k, v in self.headers.items()})
                name = self.path.rsplit("/", 1)[-1].split("?")[0]
                path = blobs / name
                if not path.is_file():
                    self.reply(404)
                    return
                self.reply(200, path.read_bytes(), {"Content-Type": "application/octet-stream"})

        self._server = LoopbackServer(Handler, host, start=False)
        self.host = self._server.host

    def start(self) -> BlobHost:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()


class FakeRegistry:
    """``/v2/`` API for one repository of one layout, Basic auth, blobs redirected.

    Without ``user`` no auth is asked; without ``blob_host`` blobs are served here.
    ``manifest`` replaces the bytes served for the tag (a hostile registry), with
    ``headers`` sent along (e.g. a lying Docker-Content-Digest).  ``redirect_query``
    is appended to blob redirects (a signed CDN URL's query).
    """

    def __init__(self, layout: Path, repo: str, user: str | None = None,
                 password: str | None = None, blob_host: BlobHost | None = None,
                 manifest: bytes | None = None, headers: dict[str, str] | None = None,
                 redirect_query: str = ""):
        extra_headers = dict(headers or {})
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        index = json.loads((layout / "index.json").read_text())
        blobs = layout / "blobs" / "sha256"
        expected = ("Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
                    if user else None)
        owner = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                owner.seen.append((self.command, self.path, headers))
                if expected is not None and headers.get("authorization") != expected:
                    self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}',
                                {"WWW-Authenticate": 'Basic realm="fake"',
                                 "Content-Type": "application/json"})
                    return
                if self.path == "/v2/":
                    self.reply(200, b"{}", {"Content-Type": "application/json"})
                    return
                prefix = f"/v2/{repo}/"
                if not self.path.startswith(prefix):
                    self.reply(404)
                    return
                kind, _, ref = self.path[len(prefix):].partition("/")
                if kind == "manifests":
                    desc = index["manifests"][0]
                    if ref not in ("t", desc["digest"]):
                        self.reply(404)
                        return
                    if manifest is not None:
                        self.reply(200, manifest, {"Content-Type": desc["mediaType"],
                                                    **extra_headers})
                        return
                    data = (blobs / desc["digest"].split(":")[1]).read_bytes()
                    self.reply(200, data, {"Content-Type": desc["mediaType"],
                                            "Docker-Content-Digest": desc["digest"]})
                elif kind == "blobs" and blob_host is None:
                    path = blobs / ref.split(":")[-1]
                    if not path.is_file():
                        self.reply(404)
                        return
                    self.reply(200, path.read_bytes(),
                                {"Content-Type": "application/octet-stream"})
                elif kind == "blobs" and blob_host is not None:
                    self.reply(307, b"", {"Location": f"http://{blob_host.host}/cdn/"
                                           f"{ref.split(':')[1]}{redirect_query}"})
                else:
                    self.reply(404)

            do_HEAD = do_GET

        self._server = LoopbackServer(Handler, start=False)
        self.host = self._server.host

    def start(self) -> FakeRegistry:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
