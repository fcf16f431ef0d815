"""The API check (GET /v2/) never follows a redirect to another host."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _server(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_api_check_redirect_to_another_host_is_not_followed(cli: Any) -> None:
    other_seen: list[str] = []

    class Other(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            other_seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    other = _server(Other)

    class Registry(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/v2/":
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{other.server_address[1]}/v2/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

    registry = _server(Registry)
    try:
        code, _out, err = cli("inspect", f"127.0.0.1:{registry.server_address[1]}/team/app:1",
                              "--insecure", f"127.0.0.1:{registry.server_address[1]}")
    finally:
        registry.shutdown()
        other.shutdown()
        registry.server_close()
        other.server_close()
    assert code == 1, err
    assert "MANIFEST_UNKNOWN" in err or "manifest unknown" in err
    assert other_seen == []
