"""``ociforge rm`` on Docker Hub, through Docker Hub's own API (a fake of it on loopback).

Docker Hub's registry refuses manifest DELETE, so ``rm docker.io/NS/REPO:TAG`` logs in
at the Hub API with the stored credentials (``POST /v2/auth/token``), reads the tag
list with digests and deletes tags (``DELETE /v2/repositories/NS/REPO/tags/TAG/``).
The fake implements just that, checks the JWT on every call, pages its tag list and
records every request; $OCIFORGE_DOCKERHUB_API points ociforge at it.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fakeregistry import loopback_alias
from httpserver import LoopbackServer, QuietHandler
from registry_fixtures import docker_login

USER, PASSWORD = "hubuser", "dckr_pat_" + secrets.token_hex(8)
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


class FakeHub:
    def __init__(self, tags: dict[str, str], per_page: int = 2, host: str = "127.0.0.1",
                 old_login: bool = False):
        self.tags = dict(tags)
        self.per_page = per_page
        self.token = secrets.token_hex(16)
        self.requests: list[tuple[str, str, str | None]] = []
        self.next_override: str | None = None
        owner = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _body(self) -> dict[str, Any]:
                return json.loads(self.read_body() or b"{}")

            def _send(self, status: int, doc: Any = None) -> None:
                body = b"" if doc is None else json.dumps(doc).encode()
                self.reply(status, body, {"Content-Type": "application/json"})

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {owner.token}":
                    return True
                self._send(401, {"detail": "Authentication credentials were not provided."})
                return False

            def do_POST(self) -> None:
                owner.requests.append(("POST", self.path, self.headers.get("Authorization")))
                body = self._body()
                if self.path == "/v2/auth/token" and not old_login:
                    ok = (body.get("identifier"), body.get("secret")) == (USER, PASSWORD)
                    return self._send(200, {"access_token": owner.token}) if ok else \
                        self._send(401, {"detail": "Incorrect authentication credentials"})
                if self.path == "/v2/users/login" and old_login:
                    ok = (body.get("username"), body.get("password")) == (USER, PASSWORD)
                    return self._send(200, {"token": owner.token}) if ok else \
                        self._send(401, {"detail": "Incorrect authentication credentials"})
                self._send(404, {"message": "page not found"})

            def do_GET(self) -> None:
                owner.requests.append(("GET", self.path, self.headers.get("Authorization")))
                if not self._authorized():
                    return
                parts = urlsplit(self.path)
                if parts.path != "/v2/namespaces/me/repositories/app/tags":
                    return self._send(404, {"message": "object not found"})
                query = parse_qs(parts.query)
                page = int(query.get("page", ["1"])[0])
                names = sorted(owner.tags)
                start = (page - 1) * owner.per_page
                results = [{"name": n, "digest": owner.tags[n], "tag_status": "active"}
                           for n in names[start:start + owner.per_page]]
                more = start + owner.per_page < len(names)
                following = (f"http://{owner.host}{parts.path}?page={page + 1}&page_size=100"
                             if more else None)
                if owner.next_override and page == 1:
                    following = owner.next_override
                self._send(200, {"count": len(names), "next": following,
                                 "previous": None, "results": results})

            def do_DELETE(self) -> None:
                owner.requests.append(("DELETE", self.path, self.headers.get("Authorization")))
                if not self._authorized():
                    return
                prefix = "/v2/repositories/me/app/tags/"
                tag = self.path[len(prefix):].rstrip("/") if self.path.startswith(prefix) \
                    else None
                if tag is None or tag not in owner.tags:
                    return self._send(404, {"message": "tag not found"})
                del owner.tags[tag]
                self._send(204)

        self._server = LoopbackServer(Handler, host)
        self.host = self._server.host

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    started: list[FakeHub] = []

    def start(tags: dict[str, str], **kwargs: Any) -> FakeHub:
        server = FakeHub(tags, **kwargs)
        started.append(server)
        monkeypatch.setenv("OCIFORGE_DOCKERHUB_API", f"http://{server.host}")
        return server

    yield start
    for server in started:
        server.stop()


def store_credentials(user: str = USER, password: str = PASSWORD) -> None:
    docker_login("https://index.docker.io/v1/", user, password)


def sig(digest: str) -> str:
    return "sha256-" + digest.split(":")[1] + ".sig"


def test_rm_on_docker_hub_removes_just_that_tag(cli, hub) -> None:
    store_credentials()
    server = hub({"1.0": D1, "stable": D1, "2.0": D2, sig(D2): "sha256:" + "9" * 64})
    code, out, err = cli("rm", "docker.io/me/app:1.0", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["removed_tags"] == ["1.0"] and result["via"] == "docker-hub-api"
    assert result["digest"] == D1 and result["manifest_deleted"] is False
    assert sorted(server.tags) == ["2.0", sig(D2), "stable"]
    # every call after the login carries the JWT; the password went only to the login
    logins = [r for r in server.requests if r[0] == "POST"]
    assert [r[1] for r in logins] == ["/v2/auth/token"]
    assert all(r[2] == f"Bearer {server.token}" for r in server.requests if r[0] != "POST"), \
        server.requests
    # the tag list was read page by page (4 tags, 2 per page)
    assert len([r for r in server.requests if r[0] == "GET"]) == 2

    code, out, err = cli("rm", "me/app:2.0")
    assert code == 0, err
    assert "attachment" in out                      # D2 is untagged now: its .sig went too
    assert sorted(server.tags) == ["stable"]


def test_rm_on_docker_hub_all_tags_and_digest(cli, hub) -> None:
    store_credentials()
    server = hub({"1.0": D1, "stable": D1, "2.0": D2})
    code, _, err = cli("rm", f"docker.io/me/app@{D1}")
    assert code == 2 and "1.0, stable" in err and "--all-tags" in err
    assert not [r for r in server.requests if r[0] == "DELETE"]
    code, out, err = cli("rm", "docker.io/me/app:1.0", "--all-tags", "--json")
    assert code == 0, err
    assert json.loads(out)["removed_tags"] == ["1.0", "stable"]
    assert sorted(server.tags) == ["2.0"]
    code, _, err = cli("rm", "docker.io/me/app:gone")
    assert code == 2 and "no tag 'gone'" in err and "2.0" in err


def test_rm_on_docker_hub_older_login_route(cli, hub) -> None:
    store_credentials()
    server = hub({"1.0": D1}, old_login=True)
    code, _, err = cli("rm", "docker.io/me/app:1.0")
    assert code == 0, err
    assert [r[1] for r in server.requests if r[0] == "POST"] == ["/v2/auth/token",
                                                                   "/v2/users/login"]
    assert server.tags == {}


def test_rm_on_docker_hub_credentials(cli, hub) -> None:
    server = hub({"1.0": D1})
    code, _, err = cli("rm", "docker.io/me/app:1.0", "--json")
    assert code == 1 and "no credentials stored for Docker Hub" in err
    assert server.requests == []
    store_credentials(password="wrong")
    code, _, err = cli("rm", "docker.io/me/app:1.0")
    assert code == 1 and "Incorrect authentication credentials" in err
    assert "wrong" not in err
    assert server.tags == {"1.0": D1}


def test_rm_on_docker_hub_refuses_a_next_page_elsewhere(cli, hub) -> None:
    store_credentials()
    server = hub({"a": D1, "b": D1, "c": D2})
    stranger = FakeHub({"x": D2}, host=loopback_alias())
    try:
        server.next_override = (f"http://{stranger.host}/v2/namespaces/me/repositories/app/"
                                "tags?page=2")
        code, _, err = cli("rm", "docker.io/me/app:c")
        assert code == 1 and "origin" in err
        assert stranger.requests == []      # the JWT never went there
        assert "c" in server.tags
    finally:
        stranger.stop()


def test_hub_api_override_is_loopback_only(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    store_credentials()
    monkeypatch.setenv("OCIFORGE_DOCKERHUB_API", "http://hub.example.com")
    code, _, err = cli("rm", "docker.io/me/app:1.0")
    assert code == 2 and "loopback" in err
