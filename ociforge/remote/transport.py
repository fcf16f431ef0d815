"""HTTP transport for one registry: TLS, plain-HTTP policy, retries, auth, logging.

* HTTPS with verification by default; ``--ca-cert`` adds a CA (combined with the
  usual bundle), SSL_CERT_FILE / REQUESTS_CA_BUNDLE are honoured, and ``verify=``
  is passed per request because requests ignores ``Session.verify`` when
  REQUESTS_CA_BUNDLE is set.
* Plain HTTP only for loopback registries (localhost, 127.0.0.0/8, ::1), as Docker
  does, or registries named with ``--insecure`` (which also skips TLS checks).
* Retries with exponential backoff and jitter on connection errors and on
  408/429/500/502/503/504, honouring Retry-After, bounded by ``retries``; the
  base delay comes from $OCIFORGE_RETRY_BASE (seconds) so tests can make it small.
  Only bodies that can be re-created (bytes or a factory) are re-sent.
* 401 triggers the auth flow once; bad credentials fail fast naming the registry.
* ``-vv`` logs every exchange (method, URL, status) with secrets masked.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import ipaddress
import logging
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH

from .. import __version__
from ..errors import AuthError, RegistryError, TransportError
from ..fsutil import read_regular
from ..options import RegistryOptions
from .auth import Authenticator, Credentials

log = logging.getLogger("ociforge.http")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 60.0
BODY_CHUNK = 1 << 20
USER_AGENT = f"ociforge/{__version__}"

_SENSITIVE_QUERY = re.compile(r"(sig|signature|token|key|secret|credential|password|_state)",
                              re.IGNORECASE)


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (with or without a port)."""
    name = host
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _hostname(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is None:
        port = {"https": 443, "http": 80}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def _default_verify() -> bool | str:
    """What requests would verify with: REQUESTS_CA_BUNDLE / SSL_CERT_FILE, else its bundle."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or True


def retry_base() -> float:
    try:
        return max(0.0, float(os.environ.get("OCIFORGE_RETRY_BASE", "0.5")))
    except ValueError:
        return 0.5


def mask_url(url: str) -> str:
    """A URL fit for logs: query values that look like secrets replaced by ***."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    masked = []
    for item in parts.query.split("&"):
        key, sep, _ = item.partition("=")
        masked.append(f"{key}=***" if sep and _SENSITIVE_QUERY.search(key) else item)
    return parts._replace(query="&".join(masked)).geturl()


class FileBody:
    """A request body streamed from a re-openable source in large chunks.

    requests sends it with Content-Length (from ``__len__``) and urllib3 iterates
    it, so there is no per-8-KiB Python overhead and no whole-blob buffer.
    """

    def __init__(self, opener: Callable[[], IO[bytes]], length: int,
                 offset: int = 0, chunk: int = BODY_CHUNK):
        self._opener = opener
        self._length = length
        self._offset = offset
        self._chunk = chunk

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        left = self._length
        with self._opener() as fh:
            if self._offset:
                _skip(fh, self._offset)
            while left > 0:
                data = fh.read(min(self._chunk, left))
                if not data:
                    raise TransportError("blob source ended before its declared size")
                left -= len(data)
                yield data


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


@dataclass(frozen=True)
class TokenAnswer:
    status_code: int
    content: bytes


_BUNDLES: dict[str, str] = {}
_BUNDLE_LOCK = threading.Lock()


def _combined_bundle(extra_ca: str) -> str:
    """The default CA bundle plus ``extra_ca`` in one temp file (requests takes one path)."""
    with _BUNDLE_LOCK:
        if extra_ca in _BUNDLES:
            return _BUNDLES[extra_ca]
        base = (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
                or certifi_where())
        extra = read_regular(extra_ca, "CA certificate file")
        fd, path = tempfile.mkstemp(prefix="ociforge-ca-", suffix=".pem")
        with os.fdopen(fd, "wb") as out:
            try:
                with open(base, "rb") as fh:
                    out.write(fh.read() + b"\n")
            except OSError:
                pass
            out.write(extra + b"\n")
        atexit.register(_remove, path)
        _BUNDLES[extra_ca] = path
        return path


def certifi_where() -> str:
    return str(DEFAULT_CA_BUNDLE_PATH)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class Transport:
    """Requests to one registry's /v2/ API (scheme, TLS, auth, retries)."""

    def __init__(self, registry: str, api_host: str, options: RegistryOptions,
                 credentials: Callable[[], Credentials | None]):
        self.registry = registry
        self.api_host = api_host
        self.options = options
        self.insecure = registry in options.insecure or api_host in options.insecure
        self.loopback = is_loopback(api_host)
        self._api_hostname = _hostname(f"//{api_host}")
        self.auth = Authenticator(registry, credentials)
        self.session = requests.Session()
        # requests would otherwise apply ~/.netrc over the Authorization we set (and to
        # redirect targets): registry credentials come from docker/podman config only.
        # Proxies from the environment are still honoured, per request (_proxies_for).
        self.session.trust_env = False
        pool = max(options.jobs * 2, 10)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = USER_AGENT
        self._base: str | None = None
        self._ping_lock = threading.Lock()
        self._warned: set[str] = set()
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
        if self.options.ca_cert:
            return _combined_bundle(self.options.ca_cert)
        return _default_verify()

    @property
    def base_url(self) -> str:
        if self._base is None:
            with self._ping_lock:
                if self._base is None:
                    self._ping_locked()
        assert self._base is not None
        return self._base

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
            try:
                # Not followed: a redirect here would take the registry's own TLS
                # settings (--insecure, --ca-cert) to another host.
                resp = self._send_retrying("GET", f"{base}/v2/", {}, None, stream=False,
                                           timeout=self._timeout(short=True),
                                           allow_redirects=False)
            except TransportError as exc:
                last_error = exc
                if scheme == "https" and len(schemes) > 1 and _plain_http_answer(exc):
                    continue
                raise
            if resp.status_code == 401:
                self.auth.set_challenge(resp.headers.get("WWW-Authenticate"))
            elif resp.status_code not in (200, 404) and not (300 <= resp.status_code < 400):
                raise_for_status(resp, self.registry, "API check")
            read_limited(resp, 65536)
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
        self.check_target(url)
        scopes = list(scopes)
        ok = frozenset(ok)
        base_headers = dict(headers or {})
        retried_auth = False
        hops = 0
        while True:
            sent_headers = dict(base_headers)
            own = self.same_origin(url)
            if own:
                auth = self.auth.header(self, scopes)
                if auth:
                    sent_headers["Authorization"] = auth
            else:
                sent_headers = {k: v for k, v in sent_headers.items()
                                if k.lower() != "authorization"}
            resp = self._send_retrying(method, url, sent_headers, body, stream=stream,
                                       timeout=self._timeout(), allow_redirects=False,
                                       verify=self._verify_for(url))
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
                if hops > MAX_REDIRECTS:
                    resp.close()
                    raise RegistryError(f"{self.registry}: {method} {urlsplit(url).path}: "
                                        "too many redirects")
                target = urljoin(url, resp.headers["Location"])
                resp.close()
                self.check_target(target)
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
                log.warning("%s says: %s", self.registry, warning[:4096])
            if resp.status_code in ok:
                return resp
            try:
                raise_for_status(resp, self.registry,
                                 (what or f"{method} {urlsplit(url).path}")
                                 + (" (redirected)" if hops else ""),
                                 authenticated=own and self.auth.credentials is not None)
            finally:
                resp.close()

    # -- per-origin policy ---------------------------------------------------

    def same_origin(self, url: str) -> bool:
        """True when ``url`` is the registry API itself: only then may credentials go."""
        return origin(url) == origin(self.base_url)

    def check_target(self, url: str) -> None:
        """Refuse a URL we were sent to (Location, Link, redirect) that is unsafe to use.

        Only http(s) is spoken, and a registry reached over HTTPS never sends us to
        plain HTTP: the request would travel (and could be altered) in the clear.
        """
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise TransportError(f"{self.registry}: refusing to follow {mask_url(url)}: "
                                 f"unsupported scheme {scheme!r}")
        if scheme == "http" and urlsplit(self.base_url).scheme == "https":
            raise TransportError(f"{self.registry}: refusing to follow {mask_url(url)}: the "
                                 "registry is HTTPS and this would downgrade to plain HTTP")

    def absolute(self, location: str, base: str) -> str:
        """Resolve a Location header exactly as returned (relative to the request URL)."""
        return urljoin(base, location)

    def token_request(self, method: str, url: str, *, params: Any = None, data: Any = None,
                      auth_header: str | None = None) -> TokenAnswer:
        """A token-service call, body read (at most 1 MiB) and retried if it breaks off."""
        self.check_realm(url)
        headers = {"Authorization": auth_header} if auth_header else {}
        attempts = max(0, self.options.retries) + 1
        for attempt in range(attempts):
            resp = self._send_retrying(method, url, headers, None, stream=True,
                                       timeout=self._timeout(short=True), params=params,
                                       data=data, verify=self._verify_for(url),
                                       allow_redirects=False)
            try:
                body = read_limited(resp, 1 << 20)
            except Exception as exc:  # urllib3/requests raise several types for a cut body
                if attempt + 1 >= attempts:
                    raise TransportError(f"{self.registry}: token service answer broke off: "
                                         f"{type(exc).__name__}") from None
                self._sleep(attempt, None)
                continue
            finally:
                resp.close()
            return TokenAnswer(resp.status_code, body)
        raise AssertionError("unreachable")

    def check_realm(self, url: str) -> None:
        """A token realm may get Basic credentials or a refresh token: never in the clear.

        Plain HTTP is accepted only for a loopback realm or a registry named
        ``--insecure`` (the user asked for it); any other scheme is refused.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "https":
            return
        if scheme == "http" and (is_loopback(parts.netloc) or self.insecure):
            return
        raise TransportError(
            f"{self.registry}: refusing the token service {mask_url(url)}: "
            + ("credentials would be sent over plain HTTP (use --insecure "
               f"{self.registry} to allow it)" if scheme == "http"
               else f"unsupported scheme {scheme!r}"))

    def _verify_for(self, url: str) -> bool | str:
        """TLS settings per host: --insecure and --ca-cert belong to the registry's host.

        Any other host (object storage, a token service elsewhere) gets the default
        verification (including REQUESTS_CA_BUNDLE / SSL_CERT_FILE).
        """
        if _hostname(url) == self._api_hostname:
            return self.verify
        return _default_verify()

    def _send_retrying(
        self, method: str, url: str, headers: Mapping[str, str], body: Body, *,
        stream: bool, timeout: tuple[float, float], allow_redirects: bool = True,
        params: Any = None, data: Any = None, verify: bool | str | None = None,
    ) -> requests.Response:
        attempts = max(0, self.options.retries) + 1
        reusable = body is None or isinstance(body, bytes | FileBody)
        for attempt in range(attempts):
            started = time.monotonic()
            try:
                resp = self.session.request(
                    method, url, headers=dict(headers), data=body if data is None else data,
                    params=params, stream=True, timeout=timeout,
                    allow_redirects=allow_redirects,
                    verify=self.verify if verify is None else verify,
                    proxies=_proxies_for(url),
                )
            except requests.exceptions.SSLError as exc:
                raise TransportError(f"{self.registry}: TLS error: {_short(exc)}") from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._log(method, url, f"error {type(exc).__name__}", started)
                if attempt + 1 >= attempts or not reusable or _unresolvable(exc):
                    raise TransportError(
                        f"{self.registry}: {method} {mask_url(url)} failed after {attempt + 1} "
                        f"{'attempt' if attempt == 0 else 'attempts'}: {_short(exc)}") from None
                self._sleep(attempt, None)
                continue
            except TransportError:
                raise
            except requests.RequestException as exc:
                raise TransportError(f"{self.registry}: {_short(exc)}") from None
            self._log(method, url, str(resp.status_code), started)
            if resp.status_code in RETRY_STATUSES and attempt + 1 < attempts and reusable:
                retry_after = resp.headers.get("Retry-After")
                resp.close()
                self._sleep(attempt, retry_after)
                continue
            if not stream and not _preload(resp, method):
                resp.close()
                if attempt + 1 >= attempts or not reusable:
                    raise TransportError(f"{self.registry}: {method} {mask_url(url)}: the "
                                         "answer broke off")
                self._sleep(attempt, None)
                continue
            return resp
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        base = retry_base()
        delay = min(MAX_BACKOFF, base * (2 ** attempt)) * (0.5 + random.random() / 2)
        if retry_after:
            try:
                delay = max(delay, min(MAX_RETRY_AFTER, float(retry_after)))
            except ValueError:
                delay = max(delay, min(MAX_RETRY_AFTER, _http_date_delay(retry_after)))
            if base == 0:
                delay = min(delay, 0.05)
        log.debug("retrying in %.2fs", delay)
        time.sleep(delay)

    def _log(self, method: str, url: str, status: str, started: float) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s -> %s (%.0f ms)", method, mask_url(url), status,
                      (time.monotonic() - started) * 1000)

    def send(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
             body: bytes | None = None) -> requests.Response:
        """One request to a URL of the API host itself (not a registry path): retried like
        every other, TLS per host, never redirected, the answer preloaded when small.

        For services beside a registry's /v2/ API (Docker Hub's own API); the caller
        sets any Authorization itself.
        """
        return self._send_retrying(method, url, dict(headers or {}), body, stream=False,
                                   timeout=self._timeout(), allow_redirects=False,
                                   verify=self._verify_for(url))

    def close(self) -> None:
        self.session.close()


PRELOAD_LIMIT = 1 << 20


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
    return _mask_text(text)[:300]


_SECRET_IN_TEXT = re.compile(
    r"([?&][^=&\s]*(?:sig|signature|token|key|secret|credential|password|_state)[^=&\s]*=)"
    r"[^&\s'\"),]+", re.IGNORECASE)


def _mask_text(text: str) -> str:
    """Mask secret-looking query values inside an exception text (signed redirect URLs)."""
    return _SECRET_IN_TEXT.sub(r"\1***", text)


_RATE_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "docker-ratelimit-source")


def raise_for_status(resp: requests.Response, registry: str, what: str,
                     authenticated: bool = False) -> None:
    """Turn an error response into RegistryError/AuthError with the registry's own code."""
    status = resp.status_code
    code, message = _error_body(resp)
    detail = f"{code}: {message}" if code else (message or f"HTTP {status}")
    text = f"{registry}: {what}: {detail}"
    if status == 429:
        limits = [f"{h}={resp.headers[h]}" for h in _RATE_HEADERS if h in resp.headers]
        if limits:
            text += " (" + ", ".join(limits) + ")"
        raise RegistryError(text, status=status, code=code or "TOOMANYREQUESTS")
    if status in (401, 403):
        hint = ("credentials refused" if authenticated
                else "authentication required (run `ociforge login`)")
        if status == 403 or code == "DENIED":
            hint = "access denied"
        raise AuthError(f"{text} ({hint})", status=status, code=code or "UNAUTHORIZED")
    raise RegistryError(text, status=status, code=code)


def read_limited(resp: requests.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of a (streamed) body: a hostile server cannot fill memory."""
    parts: list[bytes] = []
    total = 0
    for chunk in resp.iter_content(min(limit, 1 << 16)):
        parts.append(chunk)
        total += len(chunk)
        if total >= limit:
            break
    return b"".join(parts)[:limit]


def _error_body(resp: requests.Response) -> tuple[str | None, str]:
    try:
        raw = read_limited(resp, 65536)
    except Exception:
        raw = b""
    try:
        import json

        doc = json.loads(raw)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list) and doc["errors"]:
        first = doc["errors"][0]
        if isinstance(first, dict):
            code = first.get("code") if isinstance(first.get("code"), str) else None
            message = first.get("message")
            text = message if isinstance(message, str) else ""
            return code, " ".join(text.split())[:300]
    if isinstance(doc, dict):
        for key in ("details", "detail", "message", "error"):
            if isinstance(doc.get(key), str):
                return None, doc[key][:300]
    text = raw.decode("utf-8", "replace").strip()
    return None, " ".join(text.split())[:300]


def _proxies_for(url: str) -> dict[str, str]:
    """HTTP(S)_PROXY / NO_PROXY from the environment, as requests would apply them."""
    return dict(requests.utils.get_environ_proxies(url) or {})
