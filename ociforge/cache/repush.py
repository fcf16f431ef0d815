"""A re-push the cache remembers, confirmed with one HEAD before any HTTP library loads.

Importing ``requests`` (and urllib3 under it) takes longer than everything
else a no-op push does.  When the cache remembers that this registry's
repository served exactly this digest under this tag, and that the registry
answered its API check at a known base URL without asking for credentials,
one HEAD of the manifest over the standard library's http.client settles it:
200 with the same Docker-Content-Digest means nothing needs to be sent (what
the full push would conclude from the same HEAD).

Anything else goes the full way: another answer, an error, a registry that
wants credentials, a proxy in the environment, --insecure with HTTPS, a base
URL the transport would not have chosen.  TLS is verified as the transport
does (the same bundle, --ca-cert added).
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..model import mediatypes as mt
from ..model.digest import Digest
from ..options import RegistryOptions
from .registry import tag_record
from .store import Cache, record_name

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("ociforge.http")

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def remember_registry(cache: Cache, registry: str, base_url: str, needs_auth: bool) -> None:
    """How a full run reached ``registry``: its API base URL, and whether it asked for auth."""
    name = record_name(registry)
    known = cache.record("registries", name, touch=False)
    if known and known.get("base") == base_url and known.get("auth") == needs_auth:
        return
    cache.put_record("registries", name, {"registry": registry, "base": base_url,
                                          "auth": needs_auth, "time": time.time()})


def already_served(cache: Cache, registry: str, repository: str, reference: str,
                   digest: Digest, options: RegistryOptions) -> bool:
    """True only when the registry confirms it serves ``digest`` under ``reference``."""
    remembered = tag_record(cache, registry, repository, reference)
    if not remembered or remembered.get("digest") != str(digest):
        return False
    facts = cache.record("registries", record_name(registry), touch=False)
    base = facts.get("base") if facts else None
    if not isinstance(base, str) or not facts or facts.get("auth") is not False:
        return False
    if any(os.environ.get(name) or os.environ.get(name.upper()) for name in _PROXY_VARIABLES):
        return False
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        return False
    if parts.scheme == "https" and registry in options.insecure:
        return False
    if parts.scheme == "http" and not _plain_http_allowed(registry, parts.netloc, options):
        return False
    path = f"/v2/{repository}/manifests/{reference}"
    started = time.monotonic()
    try:
        status, served = _head(parts.scheme, parts.netloc, path, options)
    except (OSError, ValueError) as exc:
        log.debug("HEAD %s%s -> %s (cached-state check)", base, path, type(exc).__name__)
        return False
    log.debug("HEAD %s%s -> %d (%.0f ms, cached-state check)", base, path, status,
              (time.monotonic() - started) * 1000)
    return status == 200 and served == str(digest)


def _plain_http_allowed(registry: str, netloc: str, options: RegistryOptions) -> bool:
    """Plain HTTP only where the transport allows it: loopback, or a registry --insecure."""
    import ipaddress

    if registry in options.insecure or netloc in options.insecure:
        return True
    host = urlsplit(f"//{netloc}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _head(scheme: str, netloc: str, path: str, options: RegistryOptions) -> tuple[int, str]:
    """One HTTP/1.1 HEAD on its own connection: (status, Docker-Content-Digest).

    A request line and headers written by hand, the answer's head parsed
    strictly (anything odd raises ValueError): http.client would cost more to
    import than this whole check takes.
    """
    import socket

    from .. import __version__

    split = urlsplit(f"//{netloc}")
    host, port = split.hostname, split.port or (443 if scheme == "https" else 80)
    if not host or not path.isascii() or any(c in path for c in " \r\n"):
        raise ValueError(netloc)
    timeout = min(15.0, options.timeout)
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        if scheme == "https":
            sock = _tls_context(options).wrap_socket(sock, server_hostname=host)
        sock.sendall((f"HEAD {path} HTTP/1.1\r\nHost: {netloc}\r\n"
                      f"Accept: {mt.MANIFEST_ACCEPT}\r\n"
                      f"User-Agent: ociforge/{__version__}\r\nConnection: close\r\n\r\n"
                      ).encode("ascii"))
        answer = b""
        while b"\r\n\r\n" not in answer:
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


def _tls_context(options: RegistryOptions) -> ssl.SSLContext:
    import ssl

    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    if not bundle:
        import certifi

        bundle = certifi.where()
    context = ssl.create_default_context(cafile=bundle)
    if options.ca_cert:
        context.load_verify_locations(cafile=options.ca_cert)
    return context
