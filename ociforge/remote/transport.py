"""HTTP transport for one registry: origins, TLS, plain-HTTP policy, retries, auth, time limits.

* HTTPS with verification by default; ``--ca-cert`` adds a CA (tls.CABundle),
  SSL_CERT_FILE / REQUESTS_CA_BUNDLE are honoured, and ``verify=`` is passed per
  request because requests ignores ``Session.verify`` when REQUESTS_CA_BUNDLE is set.
* Plain HTTP only for loopback registries (localhost, 127.0.0.0/8, ::1), as Docker
  does, or registries named with ``--insecure`` (which also skips TLS checks).
* Every request is prepared once; its origin is what requests' adapter will
  connect to (urls.origin_of), and Authorization goes only to the registry's own
  origin.  URLs a server sends us (redirects, upload Locations, Links, token
  realms) with backslashes, user info or odd characters are refused (urls.unsafe).
* Retries with exponential backoff and jitter on connection errors, timeouts and
  408/429/500/502/503/504, honouring Retry-After, bounded by ``retries``; the base
  delay is ``RegistryOptions.retry_base`` ($OCIFORGE_RETRY_BASE) so tests can make it small.
  Only bodies that can be re-created (bytes or a factory) are re-sent.
* ``timeout`` bounds each whole answer (headers and body, watchdog.Watchdog), and a
  blob body that moves less than watchdog.MIN_RATE over ``timeout`` seconds stalls.
* 401 triggers the auth flow once; bad credentials fail fast naming the registry.
* ``-vv`` logs every exchange (method, URL, status) with secrets masked.
"""

from __future__ import annotations

import functools
import http
import http.cookiejar
import io
import logging
import random
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, cast
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .. import __version__
from ..errors import InvalidInputError, TransportError
from ..options import RegistryOptions
from ..progress.events import retry_pause
from .auth import Authenticator, Credentials
from .status import ERROR_BODY_LIMIT, raise_for_status
from .tls import CABundle, default_verify
from .urls import Origin, is_loopback, mask_text, mask_url, origin_of, unsafe
from .watchdog import MIN_RATE, Guard, Watchdog

log = logging.getLogger("ociforge.http")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 60.0
BODY_CHUNK = 1 << 20
# Upload bodies are handed to the socket in steps this size, so the watchdog sees
# the progress of a slow link (sendall only returns once a whole step is out).
UPLOAD_STEP = 16 << 10
PRELOAD_LIMIT = 1 << 20
TOKEN_ANSWER_LIMIT = 1 << 20
PING_BODY_LIMIT = 65536
USER_AGENT = f"ociforge/{__version__}"

__all__ = ["FileBody", "Refused", "TimedOut", "Transport", "is_loopback", "mask_url"]


class FileBody:
    """A request body streamed from a re-openable source.

    requests sends it with Content-Length (from ``__len__``) and urllib3 iterates
    it: 1 MiB reads, no whole-blob buffer.  Bound to a transfer guard
    (``watched``), it is handed out in UPLOAD_STEP pieces and reports progress;
    ``on_sent(position)`` hears how far into the source the socket took it.
    """

    def __init__(self, opener: Callable[[], IO[bytes]], length: int,
                 offset: int = 0, chunk: int = BODY_CHUNK, guard: Guard | None = None,
                 on_sent: Callable[[int], None] | None = None):
        self._opener = opener
        self._length = length
        self._offset = offset
        self._chunk = chunk
        self._guard = guard
        self._on_sent = on_sent

    def __len__(self) -> int:
        return self._length

    def watched(self, guard: Guard) -> FileBody:
        return FileBody(self._opener, self._length, self._offset, self._chunk, guard,
                        self._on_sent)

    def __iter__(self) -> Iterator[bytes | memoryview]:
        left = self._length
        guard = self._guard
        sent = self._on_sent
        position = self._offset
        with self._opener() as fh:
            if self._offset:
                _skip(fh, self._offset)
            while left > 0:
                data = fh.read(min(self._chunk, left))
                if not data:
                    raise TransportError("blob source ended before its declared size")
                left -= len(data)
                if guard is None:
                    yield data
                    position += len(data)
                    if sent is not None:
                        sent(position)
                    continue
                view = memoryview(data)
                for start in range(0, len(view), UPLOAD_STEP):
                    piece = view[start:start + UPLOAD_STEP]
                    guard.arm()
                    yield piece             # urllib3 sends it before asking for more
                    guard.moved(len(piece))
                    position += len(piece)
                    if sent is not None:
                        sent(position)


def _skip(fh: IO[bytes], offset: int) -> None:
    try:
        fh.seek(offset)
        return
    except (AttributeError, OSError, ValueError):
        pass
    left = offset
    while left > 0:
        data = fh.read(min(BODY_CHUNK, left))
        if not data:
            raise TransportError("blob source ended before the resume offset")
        left -= len(data)


Body = bytes | FileBody | None


class Refused(TransportError):
    """A URL a server sent us that must not be used; never retried."""


class TimedOut(TransportError):
    """An answer overran --timeout or a transfer stalled; retried only within --retries."""


@dataclass(frozen=True)
class TokenAnswer:
    status_code: int
    content: bytes


# -- requests plumbing -----------------------------------------------------------------

class _Session(requests.Session):
    """A session that never follows (or even reads) a redirect itself.

    requests consumes the whole body of a redirect answer to build ``Response.next``
    even with ``allow_redirects=False``; ociforge follows redirects hop by hop.
    """

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        return None


class _WatchedConnection:
    """Connection hooks: the socket of every exchange is handed to the watchdog."""

    watchdog: Watchdog

    def _new_conn(self) -> socket.socket:
        sock = cast(Any, super())._new_conn()
        self.watchdog.attach(sock)
        return cast(socket.socket, sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        sock = getattr(self, "sock", None)
        if sock is not None:
            self.watchdog.attach(sock)
        cast(Any, super()).request(*args, **kwargs)

    def getresponse(self) -> Any:
        self.watchdog.answering()
        return cast(Any, super()).getresponse()


class _Adapter(HTTPAdapter):
    """An HTTPAdapter whose pools make watched connections."""

    def __init__(self, watchdog: Watchdog, **kwargs: Any):
        conn = type("WatchedHTTPConnection", (_WatchedConnection, HTTPConnection),
                    {"watchdog": watchdog})
        tls_conn = type("WatchedHTTPSConnection", (_WatchedConnection, HTTPSConnection),
                        {"watchdog": watchdog})
        self._pools = {
            "http": type("WatchedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": conn}),
            "https": type("WatchedHTTPSPool", (HTTPSConnectionPool,),
                          {"ConnectionCls": tls_conn}),
        }
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = self._pools
        return manager


# -- the transport -----------------------------------------------------------------------

class Transport:
    """Requests to one registry's /v2/ API (scheme, TLS, auth, retries, time limits)."""

    def __init__(self, registry: str, api_host: str, options: RegistryOptions,
                 credentials: Callable[[], Credentials | None]):
        self.registry = registry
        self.api_host = api_host
        self.options = options
        self.insecure = registry in options.insecure or api_host in options.insecure
        self.auth = Authenticator(registry, credentials)
        self.watchdog = Watchdog(f"ociforge-watchdog-{registry}")
        self.session = _Session()
        # requests would otherwise apply ~/.netrc over the Authorization we set (and to
        # redirect targets): registry credentials come from docker/podman config only.
        # Proxies from the environment are still honoured, per request (_proxies_for).
        self.session.trust_env = False
        # No cookies: they ignore ports and would follow us to other origins (Docker
        # keeps none either).
        self.session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        pool = max(options.jobs * 2, 10)
        self.adapter = _Adapter(self.watchdog, pool_connections=4, pool_maxsize=pool,
                                max_retries=0)
        self.session.mount("https://", self.adapter)
        self.session.mount("http://", self.adapter)
        self.session.headers["User-Agent"] = USER_AGENT
        self._ca = CABundle(options.ca_cert) if options.ca_cert and not self.insecure else None
        self._base: str | None = None
        self._ping_lock = threading.Lock()
        self._warned: set[str] = set()
        self._answer_deadlines: weakref.WeakKeyDictionary[requests.Response, float] = \
            weakref.WeakKeyDictionary()
        if self.insecure:
            import warnings

            from urllib3.exceptions import InsecureRequestWarning

            warnings.filterwarnings("ignore", category=InsecureRequestWarning)
            log.warning("TLS verification is off for %s (--insecure)", registry)

    # -- TLS and scheme ------------------------------------------------------

    @functools.cached_property
    def verify(self) -> bool | str:
        """The registry host's TLS setting, worked out once per client, not per request."""
        if self.insecure:
            return False
        if self._ca is not None:
            return self._ca.path
        return default_verify()

    @property
    def base_url(self) -> str:
        if self._base is None:
            with self._ping_lock:
                if self._base is None:
                    self._ping_locked()
        assert self._base is not None
        return self._base

    @functools.cached_property
    def origin(self) -> Origin:
        """The registry API's own origin: the only one that gets its credentials."""
        return self.target(self.base_url + "/v2/")

    @functools.cached_property
    def _api_hostname(self) -> str:
        return self.target(f"https://{self.api_host}/v2/").host

    @functools.cached_property
    def loopback(self) -> bool:
        """A loopback registry may be spoken to over plain HTTP (as Docker does)."""
        return self.target(f"https://{self.api_host}/v2/").loopback

    def ping(self) -> requests.Response:
        """GET /v2/: picks the scheme (HTTPS first) and learns the auth challenge."""
        with self._ping_lock:
            return self._ping_locked()

    def _ping_locked(self) -> requests.Response:
        schemes = ["https"]
        if self.loopback or self.insecure:
            schemes.append("http")
        last_error: Exception | None = None
        for scheme in schemes:
            base = f"{scheme}://{self.api_host}"
            url = f"{base}/v2/"
            try:
                # Not followed: a redirect here would take the registry's own TLS
                # settings (--insecure, --ca-cert) to another host.
                prepared, origin = self._prepare("GET", url, {}, None, "registry URL")
                resp = self._send_retrying(prepared, origin, short=True)
            except TransportError as exc:
                last_error = exc
                if scheme == "https" and len(schemes) > 1 and _plain_http_answer(exc):
                    continue
                raise
            if resp.status_code == 401:
                self.auth.set_challenge(resp.headers.get("WWW-Authenticate"))
            elif resp.status_code not in (200, 404) and not (300 <= resp.status_code < 400):
                body = self.read_body(resp, ERROR_BODY_LIMIT, "API check", cut=True)
                resp.close()
                raise_for_status(resp, body, self.registry, "API check")
            self.read_body(resp, PING_BODY_LIMIT, "API check", cut=True)
            resp.close()
            self._base = base
            return resp
        raise TransportError(f"{self.registry}: cannot connect: {last_error}")

    def _timeout(self, short: bool = False) -> tuple[float, float]:
        total = self.options.timeout
        return (min(15.0, total), min(15.0, total) if short else total)

    # -- requests ------------------------------------------------------------

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        stream: bool = False,
        ok: Iterable[int] = (200,),
        what: str = "",
        allow_redirects: bool = True,
    ) -> requests.Response:
        """One API call with auth and retries; raises RegistryError for statuses not in ok.

        Redirects are followed here, not by requests, so that every hop is checked:
        Authorization goes only to the registry's own origin (scheme, host, port),
        TLS settings are per host, and HTTPS is never downgraded to plain HTTP.
        """
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        scopes = list(scopes)
        ok = frozenset(ok)
        base_headers = {k: v for k, v in (headers or {}).items()
                        if k.lower() != "authorization"}
        label = what or f"{method} {_path(url)}"
        retried_auth = False
        hops = 0
        while True:
            prepared, origin = self._prepare(method, url, base_headers, body, "URL")
            self._check_scheme(origin, url)
            own = origin == self.origin
            if own:
                auth = self.auth.header(self, scopes)
                if auth:
                    prepared.headers["Authorization"] = auth
            resp = self._send_retrying(prepared, origin, stream=stream)
            if own and resp.status_code == 401 and not retried_auth:
                retry_scopes = self.auth.handle_unauthorized(
                    resp.headers.get("WWW-Authenticate"), scopes)
                if retry_scopes is not None:
                    resp.close()
                    retried_auth = True
                    scopes = retry_scopes
                    continue
            if (allow_redirects and resp.status_code in REDIRECT_STATUSES
                    and resp.status_code not in ok and resp.headers.get("Location")):
                hops += 1
                resp.close()
                if hops > MAX_REDIRECTS:
                    raise Refused(f"{self.registry}: {label}: too many redirects")
                target = self.resolve(resp.headers["Location"], url, "redirect")
                if resp.status_code == 303 or (resp.status_code in (301, 302)
                                               and method not in ("GET", "HEAD")):
                    method, body = "GET", None
                    base_headers = {k: v for k, v in base_headers.items()
                                    if k.lower() not in ("content-type", "content-range",
                                                         "content-length")}
                url = target
                continue
            warning = resp.headers.get("Warning")
            if warning and warning not in self._warned:
                self._warned.add(warning)
                log.warning("%s says: %s", self.registry, " ".join(warning.split())[:4096])
            if resp.status_code in ok:
                return resp
            error_body = self.read_body(resp, ERROR_BODY_LIMIT, "error answer", cut=True)
            resp.close()
            raise_for_status(resp, error_body, self.registry,
                             label + (" (redirected)" if hops else ""),
                             authenticated=own and self.auth.credentials is not None)

    # -- per-origin policy ---------------------------------------------------

    def target(self, url: str) -> Origin:
        """The origin requests will connect to for ``url`` (unsafe URLs refused)."""
        return self._prepare("GET", url, {}, None, "URL")[1]

    def same_origin(self, url: str) -> bool:
        """True when ``url`` is the registry API itself: only then may credentials go."""
        return self.target(url) == self.origin

    def resolve(self, reference: str, base: str, what: str) -> str:
        """A URL a server sent (Location, Link), resolved against the request URL.

        Refused outright when it has a backslash, user info, whitespace or odd
        characters, or a scheme other than http(s), or would downgrade HTTPS.
        """
        reason = unsafe(reference) if "://" in reference else _unsafe_relative(reference)
        url = reference if reason else urljoin(base, reference)
        reason = reason or unsafe(url)
        if reason:
            raise Refused(f"{self.registry}: refusing the {what} {mask_url(url)}: "
                          f"{reason}")
        self._check_scheme(self.target(url), url)
        return url

    def next_link(self, resp: requests.Response) -> str | None:
        """The ``Link: <...>; rel="next"`` page, which must stay on the registry's origin."""
        link = resp.links.get("next", {}).get("url")
        if not link:
            return None
        url = self.resolve(link, resp.url, "Link")
        if self.target(url) != self.origin:
            raise Refused(f"{self.registry}: refusing the Link {mask_url(url)}: it "
                          f"leads away from {self.origin}")
        return url

    def check_target(self, url: str) -> None:
        """Refuse a URL we were sent to that is unsafe to use (see ``resolve``)."""
        self.resolve(url, url, "URL")

    def _check_scheme(self, origin: Origin, url: str) -> None:
        """A registry reached over HTTPS never sends us to plain HTTP."""
        if origin.scheme == "http" and self.base_url.startswith("https:"):
            raise Refused(f"{self.registry}: refusing to follow {mask_url(url)}: the "
                          "registry is HTTPS and this would downgrade to plain HTTP")

    def token_request(self, method: str, url: str, *, params: Any = None, data: Any = None,
                      auth_header: str | None = None) -> TokenAnswer:
        """A token-service call, body read (at most 1 MiB) and retried if it breaks off."""
        origin = self.check_realm(url)
        headers = {"Authorization": auth_header} if auth_header else {}
        attempts = max(0, self.options.retries) + 1
        for attempt in range(attempts):
            prepared, origin = self._prepare(method, url, headers, None, "token service",
                                             params=params, data=data)
            resp = self._send_retrying(prepared, origin, stream=True, short=True)
            try:
                body = self.read_body(resp, TOKEN_ANSWER_LIMIT, "token service answer")
            except TransportError:
                if attempt + 1 >= attempts:
                    raise
                self._sleep(attempt, None, attempts, "the token service's answer broke off")
                continue
            finally:
                resp.close()
            return TokenAnswer(resp.status_code, body)
        raise AssertionError("unreachable")

    def check_realm(self, url: str) -> Origin:
        """A token realm may get Basic credentials or a refresh token: never in the clear.

        Plain HTTP is accepted only for a loopback realm or a registry named
        ``--insecure`` (the user asked for it); any other scheme is refused, and
        so is a realm with a backslash or user info.
        """
        reason = unsafe(url)
        if reason is None:
            origin = self.target(url)
            if origin.scheme == "https" or origin.loopback or self.insecure:
                return origin
            reason = (f"credentials would be sent over plain HTTP (use --insecure "
                      f"{self.registry} to allow it)")
        raise Refused(f"{self.registry}: refusing the token service {mask_url(url)}: "
                      f"{reason}")

    def verify_for(self, origin: Origin) -> bool | str:
        """TLS settings per host: --insecure and --ca-cert belong to the registry's host.

        Any other host (object storage, a token service elsewhere) gets the default
        verification (including REQUESTS_CA_BUNDLE / SSL_CERT_FILE).
        """
        if origin.host == self._api_hostname:
            return self.verify
        return default_verify()

    # -- bodies --------------------------------------------------------------------------

    def read_body(self, resp: requests.Response, limit: int, what: str,
                  cut: bool = False) -> bytes:
        """The one bounded reader of answer bodies: at most ``limit`` bytes, within the
        answer's deadline (--timeout from when the request was sent).

        Over the limit is bad input (exit 2) unless ``cut``, which keeps the first
        ``limit`` bytes (error texts).  A body that breaks off or overruns the
        deadline is a TransportError naming the registry; with ``cut`` the part
        read so far is returned instead.
        """
        length = resp.headers.get("Content-Length", "")
        if not cut and length.isdigit() and int(length) > limit:
            raise InvalidInputError(f"{self.registry}: {what} is {length} bytes, over the "
                                    f"{limit} byte limit")
        deadline = self._answer_deadlines.pop(resp, None)
        left = (deadline - time.monotonic() if deadline is not None
                else self.options.timeout)
        parts: list[bytes] = []
        total = 0
        with self.watchdog.deadline(max(0.0, left)) as guard:
            _watch_body(guard, resp)
            try:
                for chunk in resp.iter_content(min(limit + 1, 1 << 16)):
                    parts.append(chunk)
                    total += len(chunk)
                    if total > limit:
                        if cut:
                            break
                        raise InvalidInputError(f"{self.registry}: {what} is over the "
                                                f"{limit} byte limit")
            except (requests.RequestException, OSError, ValueError) as exc:
                if cut:
                    return b"".join(parts)[:limit]
                if guard.fired:
                    raise self._late(what) from None
                raise TransportError(f"{self.registry}: {what}: download interrupted: "
                                     f"{type(exc).__name__}") from None
            if guard.fired and not cut:
                raise self._late(what)
        return b"".join(parts)[:limit]

    def watch_transfer(self, resp: requests.Response) -> Guard:
        """A transfer guard on a streamed blob body (see watchdog)."""
        guard = self.watchdog.transfer(self.options.timeout)
        _watch_body(guard, resp)
        return guard

    def stall_message(self, what: str) -> str:
        return (f"{self.registry}: {what} stalled: less than {MIN_RATE} bytes/s for "
                f"{self.options.timeout:g}s (--timeout)")

    def _late(self, what: str) -> TimedOut:
        return TimedOut(f"{self.registry}: {what}: no complete answer within "
                        f"{self.options.timeout:g}s (--timeout)")

    # -- sending -------------------------------------------------------------------------

    def _prepare(self, method: str, url: str, headers: Mapping[str, str], body: Body,
                 what: str, params: Any = None, data: Any = None
                 ) -> tuple[requests.PreparedRequest, Origin]:
        """The request exactly as it will be sent, and the origin it will be sent to."""
        reason = unsafe(url)
        if reason:
            raise Refused(f"{self.registry}: refusing the {what} {mask_url(url)}: "
                          f"{reason}")
        if isinstance(body, bytes) and len(body) > BODY_CHUNK:
            payload = body
            body = FileBody(lambda: io.BytesIO(payload), len(payload))
        try:
            prepared = self.session.prepare_request(requests.Request(
                method, url, headers=dict(headers), data=body if data is None else data,
                params=params))
            origin = origin_of(prepared, self.adapter)
        except (requests.RequestException, ValueError) as exc:
            raise Refused(f"{self.registry}: refusing the {what} {mask_url(url)}: "
                          f"{_short(exc)}") from None
        if origin.scheme not in ("http", "https") or not origin.host:
            raise Refused(f"{self.registry}: refusing the {what} {mask_url(url)}: "
                          "no http(s) host")
        return prepared, origin

    def _send_retrying(self, prepared: requests.PreparedRequest, origin: Origin, *,
                       stream: bool = False, short: bool = False) -> requests.Response:
        """Send with retries; each attempt bounded by the watchdog (see module doc)."""
        attempts = max(0, self.options.retries) + 1
        body = prepared.body
        reusable = body is None or isinstance(body, bytes | str | FileBody)
        timeout = self._timeout(short)
        method = prepared.method or "GET"
        url = prepared.url or ""
        for attempt in range(attempts):
            started = time.monotonic()
            # A blob body is timed by the watchdog's stall rule alone: a socket timeout
            # would also cut a slow link whose data still sits in the socket buffers.
            socket_timeout: tuple[float, float | None] = timeout
            if isinstance(body, FileBody):
                guard = self.watchdog.transfer(self.options.timeout, answer_within=timeout[1])
                prepared.body = body.watched(guard)
                socket_timeout = (timeout[0], None)
            else:
                guard = self.watchdog.deadline(timeout[1])
            failure: str | None = None
            with guard, self.watchdog.current(guard):
                try:
                    resp = self.session.send(
                        prepared, stream=True, timeout=socket_timeout, allow_redirects=False,
                        verify=self.verify_for(origin), proxies=_proxies_for(url))
                except requests.exceptions.SSLError as exc:
                    if not guard.fired:
                        raise TransportError(f"{self.registry}: TLS error: "
                                             f"{_short(exc)}") from None
                    failure = "timed out"
                except (requests.ConnectionError, requests.Timeout) as exc:
                    if _unresolvable(exc):
                        raise TransportError(f"{self.registry}: {method} {mask_url(url)}: "
                                             f"{_short(exc)}") from None
                    failure = _short(exc)
                except TransportError:
                    raise
                except requests.RequestException as exc:
                    raise TransportError(f"{self.registry}: {_short(exc)}") from None
                else:
                    if not stream and not _preload(resp, method):
                        resp.close()
                        failure = "the answer broke off"
                if guard.fired:
                    if guard.reason == "stalled":
                        raise TimedOut(self.stall_message(f"{method} {_path(url)}"))
                    failure = f"no complete answer within {timeout[1]:g}s (--timeout)"
                if failure is None and guard.expires_at is not None:
                    self._answer_deadlines[resp] = guard.expires_at
            if failure is not None:
                self._log(method, url, f"error: {failure}", started)
                if attempt + 1 >= attempts or not reusable:
                    kind = TimedOut if guard.fired else TransportError
                    raise kind(f"{self.registry}: {method} {mask_url(url)} failed after "
                               f"{attempt + 1} attempt(s): {failure}")
                self._sleep(attempt, None, attempts, failure)
                continue
            self._log(method, url, str(resp.status_code), started)
            if resp.status_code in RETRY_STATUSES and attempt + 1 < attempts and reusable:
                retry_after = resp.headers.get("Retry-After")
                resp.close()
                self._sleep(attempt, retry_after, attempts, _status_text(resp))
                continue
            return resp
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int, retry_after: str | None, attempts: int,
               reason: str) -> None:
        """Wait before attempt ``attempt + 2`` of ``attempts``; the wait is a progress event
        (``retrying in 2.0 s (attempt 2/6): 503 Service Unavailable``) and ends early,
        with Cancelled, when the run is cancelled."""
        base = self.options.retry_base
        delay = min(MAX_BACKOFF, base * (2 ** attempt)) * (0.5 + random.random() / 2)
        if retry_after:
            try:
                delay = max(delay, min(MAX_RETRY_AFTER, float(retry_after)))
            except ValueError:
                delay = max(delay, min(MAX_RETRY_AFTER, _http_date_delay(retry_after)))
            if base == 0:
                delay = min(delay, 0.05)
        log.debug("retrying in %.2fs (attempt %d/%d): %s", delay, attempt + 2, attempts, reason)
        retry_pause(attempt + 2, attempts, delay, reason, time.sleep)

    def _log(self, method: str, url: str, status: str, started: float) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s -> %s (%.0f ms)", method, mask_url(url), status,
                      (time.monotonic() - started) * 1000)

    def send(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
             body: bytes | None = None) -> requests.Response:
        """One request to a URL on the API host itself, not a /v2/ registry path: checked
        (urls.unsafe), retried and time-limited like every other, never redirected,
        the answer preloaded when small.  For services beside a registry's API (Docker
        Hub's own); the caller sets any Authorization itself."""
        prepared, origin = self._prepare(method, url, dict(headers or {}), body, "URL")
        return self._send_retrying(prepared, origin)

    def close(self) -> None:
        self.session.close()
        self.watchdog.close()
        if self._ca is not None:
            self._ca.close()


def _status_text(resp: requests.Response) -> str:
    """``503 Service Unavailable``: the status and its standard phrase."""
    try:
        phrase = http.HTTPStatus(resp.status_code).phrase
    except ValueError:
        phrase = " ".join(str(resp.reason or "").split())[:80]
    return f"{resp.status_code} {phrase}".strip()


def _path(url: str) -> str:
    """The path of a URL for messages (no query: it may hold signed secrets)."""
    rest = url.split("://", 1)[-1]
    slash = rest.find("/")
    return rest[slash:].split("?", 1)[0] if slash >= 0 else "/"


def _unsafe_relative(reference: str) -> str | None:
    """``unsafe`` for a relative reference (the scheme comes from the base)."""
    return unsafe("http://h/" + reference.lstrip("/")) if reference else "it is empty"


def _watch_body(guard: Guard, resp: requests.Response) -> None:
    """Let ``guard`` end the read of a streamed answer's body.

    urllib3's ``HTTPResponse.shutdown`` reaches the socket even when the
    connection already handed it to the response (``Connection: close``), and
    refuses once the connection went back to the pool.
    """
    shutdown = getattr(resp.raw, "shutdown", None)
    if shutdown is not None:
        guard.on_fire(shutdown)


def _preload(resp: requests.Response, method: str) -> bool:
    """Read a small answer at once; False when it broke off.

    requests closes the socket of a streamed response whose body was never read,
    so without this every HEAD, PUT and POST (all sent with ``stream=True``)
    would cost a new connection: the parallel HEADs of a push would not share
    the pool.  Large or unsized bodies stay streamed for the caller.
    """
    length = resp.headers.get("Content-Length", "")
    if method == "HEAD" or resp.status_code in (204, 304) or (
            length.isdigit() and int(length) <= PRELOAD_LIMIT):
        try:
            resp.content  # noqa: B018 - reading it is the point
        except (requests.RequestException, OSError):
            return False
    return True


def _http_date_delay(value: str) -> float:
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return 1.0


def _unresolvable(exc: Exception) -> bool:
    """A host name that does not resolve will not resolve on a retry either."""
    text = str(exc)
    return "NameResolutionError" in text or "Name or service not known" in text


def _plain_http_answer(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("wrong version number", "record layer failure", "http request",
                                   "packet length too long"))


def _short(exc: Exception) -> str:
    """A one-line cause without urllib3's nesting."""
    text = " ".join(str(exc).split())
    for needle, plain in (("Failed to resolve", "cannot resolve the host name"),
                          ("Connection refused", "connection refused"),
                          ("Connection reset", "connection reset by peer"),
                          ("RemoteDisconnected", "the server closed the connection"),
                          ("timed out", "timed out"),
                          ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed "
                           "(use --ca-cert FILE, or --insecure REGISTRY)")):
        if needle in text:
            return plain
    return mask_text(text)[:300]


def _proxies_for(url: str) -> dict[str, str]:
    """HTTP(S)_PROXY / NO_PROXY from the environment, as requests would apply them."""
    return dict(requests.utils.get_environ_proxies(url) or {})

