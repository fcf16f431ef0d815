"""Where a URL really goes: one parser for every same-origin decision.

requests prepares a URL (urllib3's ``parse_url``, IDNA, requoting) and its
adapter then picks the connection from the prepared URL.  ``origin_of`` asks
that same adapter about the very PreparedRequest that will be sent, so a URL
can never be judged to be one host and connected to another.  URLs that
parsers read differently are refused before that: backslashes, a user name or
password, whitespace, control or non-ASCII characters, schemes other than
http(s).  Nothing a server sends us (a ``Location``, a ``Link``, a token realm)
needs any of these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from urllib3.util import parse_url

from ..model.reference import is_loopback, is_loopback_name

if TYPE_CHECKING:
    from requests import PreparedRequest
    from requests.adapters import HTTPAdapter

__all__ = ["Origin", "is_loopback", "mask_text", "mask_url", "origin_of", "unsafe"]

DEFAULT_PORTS = MappingProxyType({"http": 80, "https": 443})

_SENSITIVE_QUERY = re.compile(r"(sig|signature|token|key|secret|credential|password|_state)",
                              re.IGNORECASE)
_SECRET_IN_TEXT = re.compile(
    r"([?&][^=&\s]*(?:sig|signature|token|key|secret|credential|password|_state)[^=&\s]*=)"
    r"[^&\s'\"),]+", re.IGNORECASE)
# scheme://userinfo@ (anything up to the last @ before the path, query or fragment)
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*:(?://)?)[^/?#]*@")
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x21-\x7e]")


@dataclass(frozen=True)
class Origin:
    """(scheme, host, port) exactly as the connection pool keys the connection."""

    scheme: str
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback_name(self.host)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def unsafe(url: str) -> str | None:
    """Why ``url`` must not be used at all, or None.

    Checked on the text as received, before any parser sees it: urllib3 reads
    ``http://a:1\\@b:2/`` as host ``a`` port 1, Python's urlsplit as host ``b``.
    """
    if "\\" in url:
        return "it contains a backslash"
    if _NOT_PRINTABLE_ASCII.search(url):
        return "it contains whitespace, control or non-ASCII characters"
    scheme = url.partition(":")[0].lower() if "://" in url else ""
    if scheme not in DEFAULT_PORTS:
        return f"unsupported scheme {scheme!r}" if scheme else "it is not an http(s) URL"
    try:
        has_userinfo = parse_url(url).auth is not None
    except ValueError:
        return "it does not parse"
    if has_userinfo or "@" in urlsplit(url).netloc:
        return "it carries a user name or password"
    return None


def origin_of(prepared: PreparedRequest, adapter: HTTPAdapter) -> Origin:
    """The origin the adapter will connect ``prepared`` to (requests >= 2.32.2)."""
    params, _ = adapter.build_connection_pool_key_attributes(prepared, True, None)
    scheme = str(params["scheme"]).lower()
    host = str(params["host"] or "").lower().strip("[]")
    port = params["port"] or DEFAULT_PORTS.get(scheme, 0)
    return Origin(scheme, host, int(port))


def mask_url(url: str) -> str:
    """A URL fit for messages and logs: user info and secret-looking query values masked."""
    text = _USERINFO.sub(r"\1***@", url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return mask_text(text)
    if not parts.query:
        return text
    masked = []
    for item in parts.query.split("&"):
        key, sep, _ = item.partition("=")
        masked.append(f"{key}=***" if sep and _SENSITIVE_QUERY.search(key) else item)
    return parts._replace(query="&".join(masked)).geturl()


def mask_text(text: str) -> str:
    """Mask secret-looking query values inside free text (exception messages)."""
    return _SECRET_IN_TEXT.sub(r"\1***", text)
