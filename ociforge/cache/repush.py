"""A re-push the cache remembers, confirmed with one HEAD before any HTTP library loads.

Importing ``requests`` (and urllib3 under it) takes longer than everything
else a no-op push does.  When the cache remembers that this registry's
repository served exactly this digest under this tag, and how the registry
answered its API check at a known base URL (no credentials asked for, or
Basic auth), one HEAD of the manifest on a socket of its own settles it: 200
with the same Docker-Content-Digest means nothing needs to be sent (what the
full push would conclude from the same HEAD).  A Basic registry gets the
credentials the transport would send it (credentials.lookup), to its own
origin only, over HTTPS or loopback.

Anything else goes the full way: another answer, an error, a registry that
wants a token (Bearer), no credentials for a Basic one, a proxy in the
environment, --insecure with HTTPS, a base URL the transport would not have
chosen.  TLS is verified as the transport does (the same bundle, --ca-cert
added).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

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

log = logging.getLogger("ociforge.http")

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def remember_registry(cache: Cache, registry: str, base_url: str,
                      auth_scheme: str | None) -> None:
    """How a full run reached ``registry``: its API base URL, and the auth scheme its
    challenge named (``basic``, ``bearer``; None when it asked for none)."""
    name = record_name(registry)
    known = cache.record("registries", name, touch=False)
    if known and known.get("base") == base_url and known.get("auth") == (
            auth_scheme is not None) and known.get("scheme") == auth_scheme:
        return
    cache.put_record("registries", name, {"registry": registry, "base": base_url,
                                          "auth": auth_scheme is not None,
                                          "scheme": auth_scheme, "time": time.time()})


def may_settle(cache: Cache, registry: str, repository: str, reference: str,
               options: RegistryOptions) -> bool:
    """Whether ``already_served`` could answer for this reference (local reads only): the
    cache remembers the tag, and how to reach the registry (anonymously, or with the
    Basic credentials there are for it: with none, the push-access check says so up
    front instead of after the build)."""
    found = _checked_origin(cache, registry, repository, reference, options)
    return found is not None and (not found[3] or _basic_header(registry) is not None)


def already_served(cache: Cache, registry: str, repository: str, reference: str,
                   digest: Digest, options: RegistryOptions) -> bool:
    """True only when the registry confirms it serves ``digest`` under ``reference``."""
    found = _checked_origin(cache, registry, repository, reference, options)
    if found is None or found[2] != str(digest):
        return False
    scheme, api_host, _, basic = found
    authorization = None
    if basic:
        authorization = _basic_header(registry)
        if authorization is None:
            return False
    base = f"{scheme}://{api_host}"
    path = f"/v2/{repository}/manifests/{reference}"
    started = time.monotonic()
    try:
        status, served = _head(scheme, api_host, path, options, authorization)
    except (OSError, ValueError) as exc:
        log.debug("HEAD %s%s -> %s (cached-state check)", base, path, type(exc).__name__)
        return False
    log.debug("HEAD %s%s -> %d (%.0f ms, cached-state check)", base, path, status,
              (time.monotonic() - started) * 1000)
    return status == 200 and served == str(digest)


def _basic_header(registry: str) -> str | None:
    """The Basic Authorization header the transport would send ``registry`` (the same
    credentials lookup); None when there are no credentials or they cannot be read."""
    from ..errors import OciforgeError
    from ..remote.credentials import lookup

    try:
        creds = lookup(registry)
    except OciforgeError as exc:   # a broken helper or config: the full way says so
        log.debug("no credentials for the cached-state check: %s", type(exc).__name__)
        return None
    if creds is None or not creds.password:
        return None
    return creds.basic_header()


def _checked_origin(cache: Cache, registry: str, repository: str, reference: str,
                    options: RegistryOptions) -> tuple[str, str, object, bool] | None:
    """(scheme, API host, remembered digest, whether Basic credentials go with the HEAD)
    when the re-push check may run, else None."""
    remembered = tag_record(cache, registry, repository, reference)
    if not remembered:
        return None
    facts = cache.record("registries", record_name(registry), touch=False)
    base = facts.get("base") if facts else None
    if not isinstance(base, str) or not facts:
        return None
    basic = facts.get("auth") is True and facts.get("scheme") == "basic"
    if facts.get("auth") is not False and not basic:
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
    if basic and scheme == "http" and not is_loopback(api_host):
        return None     # credentials in clear text only on this machine's loopback
    return scheme, api_host, remembered.get("digest"), basic


def _head(scheme: str, netloc: str, path: str, options: RegistryOptions,
          authorization: str | None = None) -> tuple[int, str]:
    """One HTTP/1.1 HEAD on its own connection: (status, Docker-Content-Digest);
    ``authorization`` (never logged) is sent as the Authorization header.

    A request line and headers written by hand, the answer's head parsed
    strictly (anything odd raises ValueError): http.client would cost more to
    import than this whole check takes.
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
    deadline = time.monotonic() + options.timeout     # the whole answer, as the transport
    sock = _connect(scheme, host, port, options)
    try:
        sock.sendall((f"HEAD {path} HTTP/1.1\r\nHost: {netloc}\r\n"
                      f"Accept: {mt.MANIFEST_ACCEPT}\r\n{credentials}"
                      f"User-Agent: ociforge/{__version__}\r\nConnection: close\r\n\r\n"
                      ).encode("ascii"))
        answer = b""
        while b"\r\n\r\n" not in answer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ValueError("no complete answer within --timeout")
            sock.settimeout(left)
            chunk = sock.recv(16384)
            if not chunk or len(answer) > 65536:
                raise ValueError("incomplete answer")
            answer += chunk
    finally:
        sock.close()
    lines = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ValueError("not an HTTP/1 status line")
    digest = ""
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("malformed header")
        if name.strip().lower() == "docker-content-digest":
            digest = value.strip()
    return int(code), digest


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
