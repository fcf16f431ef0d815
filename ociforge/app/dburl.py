"""Database URLs: parsed once, and shown only with the password masked."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import ConfigFileError

# scheme://user:PASSWORD@ in free text; the password runs to the last '@' before
# whitespace, so one holding '/', ':' or '@' is masked whole.
_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^\s@]+@")

# Query parameters that carry a password (libpq: password, sslpassword; drivers and
# services: the others).  Matched case-insensitively; the value runs to '&', '#' or the end.
SECRET_QUERY_PARAMS = ("password", "passwd", "pwd", "pass", "sslpassword", "secret",
                       "client_secret", "token", "access_token", "auth_token", "api_key",
                       "apikey")
_QUERY_SECRET_RE = re.compile(
    r"(?i)([?&](?:" + "|".join(SECRET_QUERY_PARAMS) + r")=)([^&#\s]*)")


def mask_secrets(text: str) -> str:
    """Mask URL passwords (user info and password query parameters) wherever they occur in text."""
    return mask_query(_USERINFO_RE.sub(r"\1***@", text))


def mask_query(text: str) -> str:
    """``...?sslmode=require&password=x`` -> ``...?sslmode=require&password=***``."""
    return _QUERY_SECRET_RE.sub(lambda m: m.group(1) + ("***" if m.group(2) else ""), text)


def mask_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``.

    Passwords written without percent-encoding may hold ``@``, ``/`` or ``:``;
    the user info is therefore everything up to the *last* ``@``, so no part of
    such a password survives (a query holding ``@`` may be masked too: safe side).
    """
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0:
        return mask_query(url)
    user, colon, _ = rest[:at].partition(":")
    if not colon:
        return mask_query(url)
    return mask_query(f"{scheme}://{user}:***@{rest[at + 1:]}")


def scrub(text: str, url: str) -> str:
    """Remove the URL's password from a message produced by a database driver."""
    for password in sorted(_passwords(url), key=len, reverse=True):
        text = text.replace(password, "***")
    return mask_secrets(text.replace(url, mask_url(url)))


def _passwords(url: str) -> set[str]:
    """The password as written, as decoded, and as a URL parser would cut it."""
    found = set()
    _, sep, rest = url.partition("://")
    at = rest.rfind("@")
    if sep and at >= 0 and ":" in rest[:at]:
        written = rest[:at].partition(":")[2]
        found |= {written, unquote(written)}
    parsed = password_of(url)
    if parsed:
        found.add(parsed)
    for match in _QUERY_SECRET_RE.finditer(url):
        found |= {match.group(2), unquote(match.group(2))}
    return {p for p in found if p}


def password_of(url: str) -> str | None:
    try:
        raw = urlsplit(url).password
    except ValueError:
        return None
    return unquote(raw) if raw else None


_ADBC_RE = re.compile(r"^adbc:([a-z][a-z0-9_]*)(:.*)$")


@dataclass(frozen=True)
class DatabaseURL:
    kind: str                   # "sqlite", "postgresql" or "adbc"
    url: str                    # as written (may hold a password)
    path: Path | None = None    # sqlite file
    driver: str = ""            # the ADBC driver: package adbc-driver-<driver>
    uri: str = ""               # what the driver is given (adbc: without the prefix)

    @property
    def driver_uri(self) -> str:
        if self.kind == "sqlite":
            assert self.path is not None
            return f"{self.path.resolve().as_uri()}?mode=ro"
        return self.uri or self.url

    @property
    def shown(self) -> str:
        """As written (so reports do not depend on where the app folder is), password masked."""
        if self.kind == "adbc" and "://" not in self.uri:
            return f"adbc:{self.driver}:{_mask_userinfo(self.uri)}"
        return mask_url(self.url)

    def scrub(self, text: str) -> str:
        """A driver's message with every form of this URL's password masked."""
        if self.kind == "adbc" and "://" not in self.uri:
            text = text.replace(self.uri, _mask_userinfo(self.uri))
            secret = _userinfo_password(self.uri)
            if secret:
                text = text.replace(secret, "***").replace(unquote(secret), "***")
        return scrub(text, self.url)


def _userinfo_password(dsn: str) -> str:
    """``user:PASSWORD@rest`` (a DSN without a scheme) -> PASSWORD, or ''."""
    at = dsn.rfind("@")
    return dsn[:at].partition(":")[2] if at >= 0 else ""


def _mask_userinfo(dsn: str) -> str:
    at = dsn.rfind("@")
    user, colon, _ = dsn[:at].partition(":") if at >= 0 else ("", "", "")
    return mask_query(f"{user}:***@{dsn[at + 1:]}" if colon else dsn)


def parse_db_url(url: str, app_root: Path, where: str) -> DatabaseURL:
    """sqlite:///rel/path (relative to the app folder), sqlite:////abs/path, postgresql://...,
    adbc:DRIVER://... (the URI keeps its scheme) or adbc:DRIVER:URI."""
    if url.startswith("sqlite:///"):
        rest = url[len("sqlite:///"):]
        if not rest:
            raise ConfigFileError(f"{where}: sqlite URL needs a path: sqlite:///data.db")
        if rest.startswith("/"):
            return DatabaseURL("sqlite", url, Path(rest), driver="sqlite")
        normal = os.path.normpath(rest)
        if normal == ".." or normal.startswith("../"):
            raise ConfigFileError(f"{where}: {rest!r} leaves the application folder; "
                                  "use an absolute path (sqlite:////PATH) for outside databases")
        return DatabaseURL("sqlite", url, app_root / normal, driver="sqlite")
    if url.startswith(("postgresql://", "postgres://")):
        return DatabaseURL("postgresql", url, driver="postgresql")
    match = _ADBC_RE.match(url)
    if match:
        driver, rest = match.groups()
        uri = driver + rest if rest.startswith("://") else rest[1:]
        if not uri:
            raise ConfigFileError(f"{where}: adbc:{driver}: needs the driver's URI")
        return DatabaseURL("adbc", url, driver=driver, uri=uri)
    raise ConfigFileError(f"{where}: unsupported database URL {mask_url(url)!r}")
