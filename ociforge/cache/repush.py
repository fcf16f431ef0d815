"""A re-push the cache remembers, confirmed with one HEAD before any HTTP library loads.

Importing ``requests`` (and urllib3 under it) takes longer than everything
else a no-op push does.  When the cache remembers that this registry's
repository served exactly this digest under this tag, and how the registry
answered its API check at a known base URL (no credentials asked for, Basic
auth, or a Bearer token from a realm), one HEAD of the manifest on a socket of
its own settles it: 200 with the same Docker-Content-Digest means nothing needs
to be sent (what the full push would conclude from the same HEAD).  A Basic
registry gets the credentials the transport would send it (credentials.lookup),
to its own origin only, over HTTPS or loopback.  A Bearer registry first gets a
pull-only token with one GET from the realm the full run was challenged with,
at the origin the transport judged it to be then (it sends realm credentials
over HTTPS, or plain HTTP on loopback): the same query and Basic credentials as
the transport's own token GET, or none (an anonymous token).

Anything else goes the full way: another answer, an error, a redirect, a token
service that refuses, no credentials for a Basic registry, identity or registry
tokens, a proxy in the environment, --insecure with HTTPS, a base URL the
transport would not have chosen.  TLS is verified as the transport does (the
same bundle, --ca-cert added for the registry's own host).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from ..model import mediatypes as mt
from ..model.digest import Digest
from ..model.reference import DOCKER_HUB, DOCKER_HUB_API, host_and_port, is_loopback
from ..options import RegistryOptions, environ_value
from .keys import record_name
from .registry import tag_record
from .store import Cache

if TYPE_CHECKING:
    import socket
    import ssl
    from collections.abc import Callable

    from ..remote.auth import Credentials

    Lookup = Callable[[], Credentials | None]

log = logging.getLogger("ociforge.http")

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")
_TOKEN_ANSWER_LIMIT = 1 << 20       # as the transport reads a token answer


def remember_registry(cache: Cache, registry: str, base_url: str, auth_scheme: str | None,
                      token_service: tuple[str, list[object], str] | None = None) -> None:
    """How a full run reached ``registry``: its API base URL, the auth scheme its
    challenge named (``basic``, ``bearer``; None when it asked for none), and for
    ``bearer`` the realm, the origin the transport judged it to be, and the service."""
    name = record_name(registry)
    realm, realm_origin, service = token_service or (None, None, None)
    fact = {"registry": registry, "base": base_url, "auth": auth_scheme is not None,
            "scheme": auth_scheme, "realm": realm, "realm_origin": realm_origin,
            "service": service}
    known = cache.record("registries", name, touch=False)
    if known and all(known.get(key) == value for key, value in fact.items()):
        return
    cache.put_record("registries", name, {**fact, "time": time.time()})


def may_settle(cache: Cache, registry: str, repository: str, reference: str,
               options: RegistryOptions, *, credentials: Lookup | None = None) -> bool:
    """Whether ``already_served`` could answer for this reference (local reads only): the
    cache remembers the tag, and how to reach the registry (anonymously, with the
    Basic credentials there are for it, or with a token from its realm, anonymous
    when there are no credentials; with no Basic credentials the push-access check
    says so up front instead of after the build)."""
    found = _checked_origin(cache, registry, repository, reference, options)
    if found is None:
        return False
    if found.auth == "basic":
        return _basic_header(registry, credentials) is not None
    if found.auth == "bearer":
        return _token_login(registry, credentials) is not None
    return True


def already_served(cache: Cache, registry: str, repository: str, reference: str,
                   digest: Digest, options: RegistryOptions, *,
                   credentials: Lookup | None = None) -> bool:
    """True only when the registry confirms it serves ``digest`` under ``reference``.

    ``credentials`` (here and in may_settle) looks up the registry's credentials;
    by default credentials.lookup, a caller asking twice in one run passes one that
    remembers the answer."""
    found = _checked_origin(cache, registry, repository, reference, options)
    if found is None or found.digest != str(digest):
        return False
    scheme, api_host, auth = found.scheme, found.api_host, found.auth
    authorization = None
    base = f"{scheme}://{api_host}"
    path = f"/v2/{repository}/manifests/{reference}"
    if auth == "basic":
        authorization = _basic_header(registry, credentials)
    elif auth == "bearer":
        authorization = _pull_token(found, registry, repository, options, credentials)
    if auth is not None and authorization is None:
        return False
    started = time.monotonic()
    try:
        status, headers, _ = _exchange("HEAD", scheme, api_host, path, options, authorization)
    except (OSError, ValueError) as exc:
        log.debug("HEAD %s%s -> %s (cached-state check)", base, path, type(exc).__name__)
        return False
    log.debug("HEAD %s%s -> %d (%.0f ms, cached-state check)", base, path, status,
              (time.monotonic() - started) * 1000)
    return status == 200 and headers.get("docker-content-digest", "") == str(digest)


def _basic_header(registry: str, credentials: Lookup | None) -> str | None:
    """The Basic Authorization header the transport would send ``registry`` (the same
    credentials lookup); None when there are no credentials or they cannot be read."""
    login = _token_login(registry, credentials)
    return login[0] if login is not None else None


def _token_login(registry: str, credentials: Lookup | None) -> tuple[str | None, str] | None:
    """(the Basic header, the account) the transport would send with a token GET (both
    empty without credentials); None when the credentials cannot be read or are an
    identity or registry token (the full way handles those)."""
    from ..errors import OciforgeError
    from ..remote.credentials import lookup

    try:
        creds = lookup(registry) if credentials is None else credentials()
    except OciforgeError as exc:   # a broken helper or config: the full way says so
        log.debug("no credentials for the cached-state check: %s", type(exc).__name__)
        return None
    if creds is None:
        return None, ""
    if creds.identity_token or creds.registry_token:
        return None
    return (creds.basic_header() if creds.password else None), creds.username


def _pull_token(found: _Origin, registry: str, repository: str, options: RegistryOptions,
                credentials: Lookup | None) -> str | None:
    """``Bearer <token>`` for pulling ``repository``, from the remembered realm; None on
    anything unexpected."""
    from urllib.parse import urlencode, urlsplit

    from ..errors import InvalidInputError
    from ..model.jsonutil import loads
    from ..model.reference import is_loopback_name
    from ..remote.auth import pull_scope, token_query

    scheme, api_host, facts = found.scheme, found.api_host, found.facts
    realm, origin, service = facts.get("realm"), facts.get("realm_origin"), facts.get("service")
    if not (isinstance(realm, str) and isinstance(service, str) and isinstance(origin, list)
            and len(origin) == 3):
        return None
    realm_scheme, realm_host, realm_port = origin
    # The origin the transport decided on (check_realm) must be the one this URL names,
    # and one it sends credentials to: HTTPS, or plain HTTP on loopback (and not from
    # an HTTPS registry).
    try:
        parts = urlsplit(realm)
        named = (parts.scheme, parts.hostname,
                 parts.port or (443 if parts.scheme == "https" else 80))
    except ValueError:
        return None
    if named != (realm_scheme, realm_host, realm_port) or parts.username is not None:
        return None
    if realm_scheme != "https" and not (realm_scheme == "http" and scheme == "http"
                                        and is_loopback_name(str(realm_host))):
        return None
    login = _token_login(registry, credentials)
    if login is None:
        return None
    basic, account = login
    query = urlencode(token_query(service, [pull_scope(repository)], account))
    target = f"{parts.path or '/'}?{parts.query + '&' if parts.query else ''}{query}"
    # --ca-cert belongs to the registry's own host, as the transport's verify_for has it
    same_host = str(realm_host) == host_and_port(api_host)[0].lower()
    realm_options = options if same_host else dataclasses.replace(options, ca_cert=None)
    try:
        status, _, body = _exchange("GET", realm_scheme, parts.netloc, target, realm_options,
                                    basic)
    except (OSError, ValueError) as exc:
        log.debug("GET %s://%s%s -> %s (cached-state check token)", realm_scheme,
                  parts.netloc, parts.path, type(exc).__name__)
        return None
    log.debug("GET %s://%s%s -> %d (cached-state check token)", realm_scheme, parts.netloc,
              parts.path, status)
    if status != 200:
        return None
    try:
        answer = loads(body, "token service answer", _TOKEN_ANSWER_LIMIT)
    except InvalidInputError:
        return None
    token = (answer.get("access_token") or answer.get("token")) if isinstance(
        answer, dict) else None
    return f"Bearer {token}" if isinstance(token, str) and token else None


class _Origin(NamedTuple):
    """Where the re-push check may go: the scheme and API host, the remembered digest,
    the auth scheme (None, ``basic`` or ``bearer``), and the registry's record."""

    scheme: str
    api_host: str
    digest: object
    auth: str | None
    facts: dict[str, Any]


def _checked_origin(cache: Cache, registry: str, repository: str, reference: str,
                    options: RegistryOptions) -> _Origin | None:
    """Where the re-push check goes, when it may run, else None."""
    remembered = tag_record(cache, registry, repository, reference)
    if not remembered:
        return None
    facts = cache.record("registries", record_name(registry), touch=False)
    base = facts.get("base") if facts else None
    if not isinstance(base, str) or not facts:
        return None
    auth = facts.get("scheme") if facts.get("auth") is True else None
    if facts.get("auth") is not (auth is not None) or auth not in (None, "basic", "bearer"):
        return None
    if auth == "bearer" and not isinstance(facts.get("realm"), str):
        return None
    if any(environ_value(name) or environ_value(name.upper()) for name in _PROXY_VARIABLES):
        return None
    # The origin is the registry's own API host, as the transport derives it from the
    # reference; the record only says which scheme the transport settled on.
    api_host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
    scheme = base.partition("://")[0]
    if base != f"{scheme}://{api_host}" or scheme not in ("http", "https"):
        return None
    if scheme == "https" and (registry in options.insecure or api_host in options.insecure):
        return None
    if scheme == "http" and not (is_loopback(api_host) or registry in options.insecure
                                 or api_host in options.insecure):
        return None
    if auth is not None and scheme == "http" and not is_loopback(api_host):
        return None     # credentials or tokens in clear text only on this machine's loopback
    return _Origin(scheme, api_host, remembered.get("digest"), auth, facts)


def _exchange(method: str, scheme: str, netloc: str, path: str, options: RegistryOptions,
              authorization: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on its own connection: (status, headers by lower-case name,
    body); ``authorization`` (never logged) is sent as the Authorization header.

    A request line and headers written by hand, the answer parsed strictly
    (anything odd raises ValueError): http.client would cost more to import than
    this whole check takes.  The body (none for HEAD) is read to its Content-Length
    or to the end of the connection, at most _TOKEN_ANSWER_LIMIT bytes.
    """
    from .. import __version__

    host, given_port = host_and_port(netloc)
    port = given_port or (443 if scheme == "https" else 80)
    if not host or not path.isascii() or any(c in path for c in " \r\n"):
        raise ValueError(netloc)
    credentials = ""
    if authorization is not None:
        if not authorization.isascii() or any(c in authorization for c in "\r\n"):
            raise ValueError("authorization")
        credentials = f"Authorization: {authorization}\r\n"
    accept = mt.MANIFEST_ACCEPT if method == "HEAD" else "application/json"
    deadline = time.monotonic() + options.timeout     # the whole answer, as the transport
    sock = _connect(scheme, host, port, options)
    try:
        sock.sendall((f"{method} {path} HTTP/1.1\r\nHost: {netloc}\r\n"
                      f"Accept: {accept}\r\n{credentials}"
                      f"User-Agent: ociforge/{__version__}\r\nConnection: close\r\n\r\n"
                      ).encode("ascii"))
        answer = b""
        while not _complete(method, answer):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ValueError("no complete answer within --timeout")
            sock.settimeout(left)
            chunk = sock.recv(16384)
            if not chunk:
                break
            answer += chunk
            if len(answer) > _TOKEN_ANSWER_LIMIT + 65536:
                raise ValueError("answer too long")
    finally:
        sock.close()
    head, complete, body = answer.partition(b"\r\n\r\n")
    if not complete:
        raise ValueError("incomplete answer")
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ValueError("not an HTTP/1 status line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("malformed header")
        headers[name.strip().lower()] = value.strip()
    if method != "HEAD":
        body = _body(headers, body)
    return int(code), headers, body


def _complete(method: str, answer: bytes) -> bool:
    """Whether ``answer`` holds the whole answer: the head of a HEAD's, or the head and
    Content-Length bytes (a server that keeps the connection open is not waited for)."""
    head, complete, body = answer.partition(b"\r\n\r\n")
    if not complete:
        return False
    if method == "HEAD":
        return True
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value.strip())
    return False


def _body(headers: dict[str, str], raw: bytes) -> bytes:
    """The body as sent: Content-Length bytes, chunks joined, or up to the close."""
    coding = headers.get("transfer-encoding", "").lower()
    if coding not in ("", "chunked"):
        raise ValueError("transfer coding")
    if coding == "":
        length = headers.get("content-length")
        if length is None:
            return raw
        if not length.isdigit() or len(raw) != int(length):
            raise ValueError("body length")
        return raw
    out = b""
    while True:
        size, sep, raw = raw.partition(b"\r\n")
        size = size.partition(b";")[0].strip()
        if not sep or not size or any(c not in b"0123456789abcdefABCDEF" for c in size):
            raise ValueError("chunk size")
        count = int(size, 16)
        if count == 0:
            return out
        if raw[count:count + 2] != b"\r\n":
            raise ValueError("chunk")
        out += raw[:count]
        raw = raw[count + 2:]


def _connect(scheme: str, host: str, port: int, options: RegistryOptions) -> socket.socket:
    """A connection to the registry, TLS verified as the transport verifies it.

    With --ca-cert, that CA alone is tried first: a chain it verifies also verifies
    against the transport's trust (the default bundle plus it), and loading the
    default bundle costs more than the rest of the check.  A certificate it does
    not verify gets a second connection with the transport's full trust."""
    import socket

    timeout = min(15.0, options.timeout)
    if scheme != "https":
        return socket.create_connection((host, port), timeout=timeout)
    import ssl

    for extra_only in ((True, False) if options.ca_cert else (False,)):
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            return _tls_context(options, extra_only).wrap_socket(sock, server_hostname=host)
        except ssl.SSLCertVerificationError:
            sock.close()
            if not extra_only:
                raise
        except BaseException:
            sock.close()
            raise
    raise AssertionError("unreachable")


def _tls_context(options: RegistryOptions, extra_only: bool = False) -> ssl.SSLContext:
    """The transport's verification (remote/tls.py): the default bundle, --ca-cert added
    (``extra_only``: the --ca-cert alone)."""
    import ssl

    from ..fsutil import read_regular
    from ..remote.tls import default_bundle_path

    extra = read_regular(options.ca_cert, "CA certificate file").decode(
        "latin-1") if options.ca_cert else None
    if extra_only and extra is not None:
        return ssl.create_default_context(cadata=extra)   # no default certificates loaded
    context = ssl.create_default_context(cafile=default_bundle_path())
    if extra is not None:
        context.load_verify_locations(cadata=extra)
    return context
