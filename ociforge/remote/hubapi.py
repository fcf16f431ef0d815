"""Docker Hub's own API (hub.docker.com): what its registry API will not do, remove a tag.

Docker Hub's registry refuses ``DELETE /v2/<repo>/manifests/<digest>``; tags are
removed through the Hub API instead:

* a JWT from ``POST /v2/auth/token`` with ``{"identifier": USER, "secret":
  PASSWORD-OR-ACCESS-TOKEN}`` (answer ``access_token``); where that route is
  missing (404/405), the older ``POST /v2/users/login`` with ``{"username",
  "password"}`` (answer ``token``);
* the tags and their digests from ``GET /v2/namespaces/<ns>/repositories/<repo>/tags``
  (``page_size`` up to 100; ``next`` is the following page, which must stay on the
  API's own origin);
* ``DELETE /v2/repositories/<ns>/<repo>/tags/<tag>/`` (204), with
  ``Authorization: Bearer <JWT>``.

The credentials are the ones stored for Docker Hub (``ociforge login``, docker's
config or a credential helper).  The base URL is ``https://hub.docker.com``;
``OCIFORGE_DOCKERHUB_API`` replaces it for tests, which serve a fake of this API on
loopback (plain HTTP is accepted only for a loopback host).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import quote, urljoin, urlsplit

import requests

from ..errors import AuthError, InvalidInputError, NotFoundError, RegistryError
from ..options import RegistryOptions, environ_value
from .auth import Credentials
from .status import ERROR_BODY_LIMIT, raise_for_status
from .transport import Transport
from .urls import is_loopback, mask_url, unsafe

HUB_API = "https://hub.docker.com"
HUB_API_ENV = "OCIFORGE_DOCKERHUB_API"
HUB = "Docker Hub API"
MAX_PAGES = 1000
MAX_ANSWER = 8 << 20


@dataclass(frozen=True)
class HubTag:
    name: str
    digest: str | None


def hub_api_base(override: str | None = None) -> str:
    """The API's base URL: ``override``, else $OCIFORGE_DOCKERHUB_API, else hub.docker.com."""
    base = (override or environ_value(HUB_API_ENV) or HUB_API).rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"{HUB_API_ENV}={base!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.netloc):
        raise InvalidInputError(f"{HUB_API_ENV}={base!r}: plain HTTP only for a loopback host")
    return base


class DockerHubAPI:
    """Tags of Docker Hub repositories through hub.docker.com, with the stored credentials."""

    def __init__(self, options: RegistryOptions, credentials: Credentials | None,
                 base_url: str | None = None):
        self.base = hub_api_base(base_url)
        self.transport = Transport(HUB, urlsplit(self.base).netloc, options, lambda: None)
        self._credentials = credentials
        self._token: str | None = None

    def close(self) -> None:
        self.transport.close()

    # -- auth ----------------------------------------------------------------

    def _login(self) -> str:
        creds = self._credentials
        if creds is None or not creds.username:
            raise AuthError(f"{HUB}: no credentials stored for Docker Hub "
                            "(run `ociforge login docker.io -u USER --password-stdin`)",
                            status=401, code="UNAUTHORIZED")
        if not creds.password:
            raise AuthError(f"{HUB}: the credentials stored for Docker Hub are a token for the "
                            "registry only; log in with a password or personal access token "
                            "(`ociforge login docker.io -u USER --password-stdin`)",
                            status=401, code="UNAUTHORIZED")
        resp = self._post("/v2/auth/token",
                          {"identifier": creds.username, "secret": creds.password})
        key = "access_token"
        if resp.status_code in (404, 405):  # a Hub without the newer route
            resp.close()
            resp = self._post("/v2/users/login",
                              {"username": creds.username, "password": creds.password})
            key = "token"
        with resp:
            if resp.status_code != 200:
                self._fail(resp, f"login as {creds.username!r}")
            doc = self._json(resp, "login answer")
        token = doc.get(key)
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{HUB}: the login answer has no {key}")
        return token

    def _post(self, path: str, body: dict[str, str]) -> requests.Response:
        return self.transport.send("POST", self.base + path,
                                   headers={"Content-Type": "application/json",
                                            "Accept": "application/json"},
                                   body=json.dumps(body).encode())

    def _authorized(self, method: str, url: str, what: str, ok: tuple[int, ...]
                    ) -> requests.Response:
        if self._token is None:
            self._token = self._login()
        resp = self.transport.send(method, url, headers={
            "Authorization": f"Bearer {self._token}", "Accept": "application/json"})
        if resp.status_code in ok:
            return resp
        with resp:
            if resp.status_code == 404:
                raise NotFoundError(f"{HUB}: {what}: not found")
            self._fail(resp, what)

    def _fail(self, resp: requests.Response, what: str) -> NoReturn:
        body = self.transport.read_body(resp, ERROR_BODY_LIMIT, "error answer", cut=True)
        raise_for_status(resp, body, HUB, what, authenticated=True)

    def _json(self, resp: requests.Response, what: str) -> dict[str, Any]:
        from ..model.jsonutil import parse_object

        return parse_object(self.transport.read_body(resp, MAX_ANSWER, what), f"{HUB} {what}")

    # -- tags ----------------------------------------------------------------

    def tags(self, repository: str) -> list[HubTag]:
        """Every tag of ``namespace/name`` with the digest it names, every page read."""
        namespace, name = _split(repository)
        url = (f"{self.base}/v2/namespaces/{quote(namespace)}/repositories/{quote(name)}"
               "/tags?page_size=100")
        found: list[HubTag] = []
        visited: set[str] = set()
        for _ in range(MAX_PAGES):
            visited.add(url)
            with self._authorized("GET", url, f"tags of {repository}", (200,)) as resp:
                doc = self._json(resp, "tag list")
            for item in doc.get("results") or []:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    digest = item.get("digest")
                    found.append(HubTag(item["name"], digest if isinstance(digest, str)
                                        else None))
            following = doc.get("next")
            if not isinstance(following, str) or not following:
                return found
            target = urljoin(url, following)
            reason = (unsafe(following) if "://" in following else None) or unsafe(target)
            if reason:
                raise RegistryError(f"{HUB}: tags of {repository}: refusing the next page "
                                    f"{mask_url(target)}: {reason}")
            if self.transport.target(target) != self.transport.target(self.base + "/"):
                raise RegistryError(f"{HUB}: tags of {repository}: refusing the next page at "
                                    f"{mask_url(target)}: it is not on the API's own origin")
            if target in visited:
                raise RegistryError(f"{HUB}: tags of {repository}: the next page "
                                    f"{mask_url(target)} was already read (a pagination loop)")
            url = target
        raise RegistryError(f"{HUB}: tags of {repository}: more than {MAX_PAGES} pages")

    def delete_tag(self, repository: str, tag: str) -> None:
        namespace, name = _split(repository)
        url = (f"{self.base}/v2/repositories/{quote(namespace)}/{quote(name)}/tags/"
               f"{quote(tag)}/")
        self._authorized("DELETE", url, f"delete {repository}:{tag}", (200, 202, 204)).close()


def _split(repository: str) -> tuple[str, str]:
    namespace, slash, name = repository.partition("/")
    if not slash or "/" in name:
        raise InvalidInputError(f"docker.io/{repository}: Docker Hub repositories are "
                                "NAMESPACE/NAME")
    return namespace, name

