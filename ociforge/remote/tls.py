"""TLS verification settings: the default CA bundle, and ``--ca-cert`` added to it.

requests takes one CA path per request, so an extra CA is combined with the
default bundle in a temporary file.  Each Transport owns its ``CABundle``; the
file is removed when the transport is closed (or collected, or at exit).
Nothing here loads requests: the cache's re-push check (cache/repush.py)
verifies TLS the same way without it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import weakref

from ..fsutil import read_regular
from ..options import environ_value


def default_verify() -> bool | str:
    """What requests would verify with: REQUESTS_CA_BUNDLE / SSL_CERT_FILE, else its bundle."""
    return environ_value("REQUESTS_CA_BUNDLE") or environ_value("SSL_CERT_FILE") or True


def default_bundle_path() -> str:
    """The file ``default_verify`` stands for (requests' own bundle is certifi's)."""
    explicit = environ_value("REQUESTS_CA_BUNDLE") or environ_value("SSL_CERT_FILE")
    if explicit:
        return explicit
    import certifi

    return str(certifi.where())


class CABundle:
    """The default CA bundle plus one extra CA file, written once on first use."""

    def __init__(self, extra_ca: str):
        self.extra_ca = extra_ca
        self._path: str | None = None
        self._lock = threading.Lock()
        self._cleanup: weakref.finalize[..., CABundle] | None = None

    @property
    def path(self) -> str:
        with self._lock:
            if self._path is None:
                self._path = self._write()
                self._cleanup = weakref.finalize(self, _remove, self._path)
            return self._path

    def _write(self) -> str:
        extra = read_regular(self.extra_ca, "CA certificate file")
        fd, path = tempfile.mkstemp(prefix="ociforge-ca-", suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    with open(default_bundle_path(), "rb") as fh:
                        out.write(fh.read() + b"\n")
                except OSError:
                    pass
                out.write(extra + b"\n")
        except BaseException:
            _remove(path)
            raise
        return path

    def close(self) -> None:
        with self._lock:
            if self._cleanup is not None:
                self._cleanup()
            self._path = None
            self._cleanup = None


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
