"""A ~/.netrc never adds credentials to registry requests (requests would, by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from httpserver import LoopbackServer, QuietHandler


class _Recorder(QuietHandler):
    seen: list[str | None] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        body = b"{}" if self.path == "/v2/" else (
            b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
        self.reply(200 if self.path == "/v2/" else 404, body,
                   {"Content-Type": "application/json"})

    do_HEAD = do_GET


def test_netrc_credentials_are_never_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          cli: Any) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login netrcuser password netrc-secret-value\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(netrc))
    _Recorder.seen = []
    server = LoopbackServer(_Recorder)
    try:
        host = server.host
        code, _out, err = cli("inspect", f"{host}/team/app:1")
    finally:
        server.stop()
    assert code == 1, err
    assert "MANIFEST_UNKNOWN" in err or "manifest unknown" in err
    assert _Recorder.seen, "the registry was never asked"
    assert all(h is None for h in _Recorder.seen), _Recorder.seen
    assert "netrc-secret-value" not in err
