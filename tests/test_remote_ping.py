"""The API check (GET /v2/) never follows a redirect to another host."""

from __future__ import annotations

from typing import Any

from httpserver import LoopbackServer, QuietHandler


def test_api_check_redirect_to_another_host_is_not_followed(cli: Any) -> None:
    other_seen: list[str] = []

    class Other(QuietHandler):
        def do_GET(self) -> None:
            other_seen.append(self.path)
            self.reply(200, b"{}")

    other = LoopbackServer(Other)

    class Registry(QuietHandler):
        def do_GET(self) -> None:
            if self.path == "/v2/":
                self.reply(302, headers={"Location": f"http://{other.host}/v2/"})
                return
            body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
            self.reply(404, body, {"Content-Type": "application/json"})

        do_HEAD = do_GET

    registry = LoopbackServer(Registry)
    try:
        code, _out, err = cli("inspect", f"{registry.host}/team/app:1",
                              "--insecure", registry.host)
    finally:
        registry.stop()
        other.stop()
    assert code == 1, err
    assert "MANIFEST_UNKNOWN" in err or "manifest unknown" in err
    assert other_seen == []
