"""Registry authentication: WWW-Authenticate challenges, Basic, and the Bearer token flow.

One ``Authenticator`` per registry.  It learns the registry's challenge from the
``/v2/`` ping, then hands out an Authorization header per *scope set*: Basic
credentials as they are, or a token fetched from the realm (GET with Basic
auth, or the OAuth2 POST ``refresh_token`` grant for an identity token, or a
``registrytoken`` passed through), cached until shortly before it expires.
A 401 that asks for more scope or reports an invalid token drops the cached
token so the caller retries once with a fresh one.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import AuthError, InvalidInputError, RegistryError
from ..model.jsonutil import loads

if TYPE_CHECKING:
    from .transport import Transport

CLIENT_ID = "ociforge"
_MIN_TOKEN_LIFETIME = 60
_EXPIRY_MARGIN = 10


@dataclass(frozen=True)
class Credentials:
    """What a user or credential store gave for one registry.  Never printed."""

    username: str = field(default="")
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    registry_token: str = field(default="", repr=False)

    def __repr__(self) -> str:
        kinds = [k for k, v in (("password", self.password), ("identity_token",
                 self.identity_token), ("registry_token", self.registry_token)) if v]
        return f"Credentials(username={self.username!r}, has={kinds})"

    def __str__(self) -> str:
        return self.__repr__()

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value held (for masking in logs)."""
        return tuple(v for v in (self.password, self.identity_token, self.registry_token) if v)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Challenge:
    scheme: str                 # lower case: "basic" or "bearer"
    params: dict[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def scopes(self) -> list[str]:
        return [s for s in self.params.get("scope", "").split(" ") if s]

    @property
    def error(self) -> str:
        return self.params.get("error", "")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a WWW-Authenticate value (RFC 7235: quoted strings may hold commas and escapes)."""
    out: list[Challenge] = []
    i, n = 0, len(header)
    current: Challenge | None = None
    while i < n:
        while i < n and header[i] in " \t,":
            i += 1
        start = i
        while i < n and header[i] not in " \t,=":
            i += 1
        token = header[start:i]
        if not token:
            break
        j = i
        while j < n and header[j] in " \t":
            j += 1
        if j < n and header[j] == "=" and current is not None:
            # auth-param: token = token / quoted-string
            j += 1
            while j < n and header[j] in " \t":
                j += 1
            if j < n and header[j] == '"':
                j += 1
                chars: list[str] = []
                while j < n and header[j] != '"':
                    if header[j] == "\\" and j + 1 < n:
                        j += 1
                    chars.append(header[j])
                    j += 1
                value = "".join(chars)
                j += 1
            else:
                vstart = j
                while j < n and header[j] not in " \t,":
                    j += 1
                value = header[vstart:j]
            current.params[token.lower()] = value
            i = j
        elif j < n and header[j] == "=":
            # a parameter before any scheme, or token68 padding: skip it
            i = j + 1
        else:
            current = Challenge(token.lower(), {})
            out.append(current)
            # token68 form ("Basic abc==") -- skip a following bare token68
            i = j
    return out


@dataclass
class _Token:
    value: str
    expires_at: float


class Authenticator:
    """Authorization headers for one registry, per scope set, with a token cache."""

    def __init__(self, registry: str, credentials: Callable[[], Credentials | None]):
        self.registry = registry
        self._credentials_source = credentials
        self._credentials: Credentials | None = None
        self._credentials_loaded = False
        self._credentials_lock = threading.Lock()
        self.challenge: Challenge | None = None
        self._tokens: dict[frozenset[str], _Token] = {}
        self._lock = threading.Lock()
        self._fetch_locks: dict[frozenset[str], threading.Lock] = {}

    @property
    def credentials(self) -> Credentials | None:
        """Looked up once, on first need (a credential helper runs at most once)."""
        if not self._credentials_loaded:
            with self._credentials_lock:
                if not self._credentials_loaded:
                    self._credentials = self._credentials_source()
                    self._credentials_loaded = True
        return self._credentials

    def secrets(self) -> tuple[str, ...]:
        out = list(self._credentials.secrets if self._credentials else ())
        out.extend(t.value for t in list(self._tokens.values()))
        return tuple(out)

    def set_challenge(self, header: str | None) -> None:
        """Remember what the registry asks for (from the /v2/ ping)."""
        if not header:
            return
        for challenge in parse_challenges(header):
            if challenge.scheme in ("bearer", "basic"):
                self.challenge = challenge
                return

    def header(self, transport: Transport, scopes: Iterable[str]) -> str | None:
        """The Authorization value for a request needing ``scopes`` (None: anonymous)."""
        challenge = self.challenge
        if challenge is None:
            return None
        creds = self.credentials
        if challenge.scheme == "basic":
            return creds.basic_header() if creds else None
        if creds is not None and creds.registry_token:
            return f"Bearer {creds.registry_token}"
        key = frozenset(scopes)
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.expires_at > time.time():
                return f"Bearer {token.value}"
            fetch_lock = self._fetch_locks.setdefault(key, threading.Lock())
        with fetch_lock:  # one fetch per scope set even when many threads ask at once
            with self._lock:
                token = self._tokens.get(key)
                if token is not None and token.expires_at > time.time():
                    return f"Bearer {token.value}"
            token = self._fetch_token(transport, challenge, sorted(key))
            with self._lock:
                self._tokens[key] = token
        return f"Bearer {token.value}"

    def handle_unauthorized(self, header: str | None, scopes: Iterable[str]) -> list[str] | None:
        """After a 401: the scope list to retry with once, or None to fail now."""
        challenges = parse_challenges(header or "")
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if self.challenge is None and (bearer or basic):
            self.challenge = bearer or basic
            return list(scopes) + (bearer.scopes if bearer else [])
        if bearer is None:
            return None
        if self.credentials is not None and self.credentials.registry_token:
            return None
        wanted = set(scopes) | set(bearer.scopes)
        with self._lock:
            self._tokens.pop(frozenset(scopes), None)
        if bearer.error in ("insufficient_scope", "invalid_token") or wanted != set(scopes):
            return sorted(wanted)
        return None

    def _fetch_token(self, transport: Transport, challenge: Challenge, scopes: list[str]) -> _Token:
        realm = challenge.realm
        if not realm:
            raise AuthError(f"{self.registry}: Bearer challenge without a realm",
                            code="UNAUTHORIZED")
        service = challenge.params.get("service", "")
        creds = self.credentials
        if creds is not None and creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "service": service, "client_id": CLIENT_ID, "scope": " ".join(scopes)}
            resp = transport.token_request("POST", realm, data=form)
            if resp.status_code == 404:
                resp = transport.token_request(
                    "GET", realm, params=token_query(service, scopes, creds.username),
                    auth_header=None)
        else:
            auth_header = creds.basic_header() if creds and creds.password else None
            resp = transport.token_request(
                "GET", realm, params=token_query(service, scopes, creds.username if creds
                                                  else ""), auth_header=auth_header)
        if resp.status_code in (401, 403):
            raise AuthError(
                f"{self.registry}: the token service refused the credentials"
                + (f" for user {creds.username!r}" if creds and creds.username else ""),
                status=resp.status_code, code="UNAUTHORIZED")
        if resp.status_code != 200:
            raise RegistryError(
                f"{self.registry}: token service answered HTTP {resp.status_code}",
                status=resp.status_code, code="UNAUTHORIZED")
        try:
            body = loads(resp.content, "answer")
        except InvalidInputError as exc:
            raise RegistryError(f"{self.registry}: token service sent no usable JSON: "
                                f"{exc}") from None
        value = (body.get("access_token") or body.get("token")) if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise RegistryError(f"{self.registry}: token service sent no token")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int) or lifetime < _MIN_TOKEN_LIFETIME:
            lifetime = _MIN_TOKEN_LIFETIME
        issued = _parse_time(body.get("issued_at")) or time.time()
        issued = min(issued, time.time())
        return _Token(value, issued + lifetime - _EXPIRY_MARGIN)


def token_query(service: str, scopes: list[str], account: str) -> list[tuple[str, str]]:
    """The query of a token GET (the full flow and the cache's re-push check send the same)."""
    query = [("service", service)] if service else []
    query.extend(("scope", s) for s in scopes)
    if account:
        query.append(("account", account))
    return query


def _parse_time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def merge_scopes(scopes: Iterable[str]) -> list[str]:
    """One scope per resource with the union of its actions (``pull`` + ``pull,push``)."""
    merged: dict[str, set[str]] = {}
    for scope in scopes:
        resource, sep, actions = scope.rpartition(":")
        if not sep or not resource:
            merged.setdefault(scope, set())
            continue
        merged.setdefault(resource, set()).update(a for a in actions.split(",") if a)
    return sorted(f"{r}:{','.join(sorted(a))}" if a else r for r, a in merged.items())


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"
