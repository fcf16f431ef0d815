"""Database URLs: parsed once, and shown only with the password masked."""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import ConfigFileError

# scheme://user:PASSWORD@ in free text.  Linear whatever the text: a scheme starts at
# the first letter of a run of scheme characters (never again inside the run), and it is
# looked for only in a word's part up to its last '@' (_WORD_TO_AT), where the password
# scan always ends at an '@' instead of running on to the end of the word.
_USERINFO_RE = re.compile(r"(?<![A-Za-z0-9+.-])([0-9+.-]*+[A-Za-z][A-Za-z0-9+.-]*+://"
                          r"[^/\s:@]*+:)[^\s@]++@")
_WORD_TO_AT = re.compile(r"(?<!\S)\S*@")

# Query parameters that carry a password (libpq: password, sslpassword; drivers and
# services: the others).  Matched case-insensitively; the value runs to '&', '#' or the end.
SECRET_QUERY_PARAMS = ("password", "passwd", "pwd", "pass", "sslpassword", "secret",
                       "client_secret", "token", "access_token", "auth_token", "api_key",
                       "apikey")
_QUERY_SECRET_RE = re.compile(
    r"(?i)([?&](?:" + "|".join(SECRET_QUERY_PARAMS) + r")=)([^&#\s]*)")


# For has_credential_url: where a scheme's "://" ends; the user info up to its ':'; the
# characters each part of a URL stops at; a password-like parameter (zero width, so that
# overlapping ones are all found).
_SCHEME_RE = re.compile(r"(?<![A-Za-z0-9+.-])[0-9+.-]*+[A-Za-z][A-Za-z0-9+.-]*+://")
_USER_RE = re.compile(r"[^/\s:@]*+:")
_PASSWORD_END_RE = re.compile(r"[@\r\n]")
_HOST_END_RE = re.compile(r"[\s?#]")
_QUERY_END_RE = re.compile(r"[#\s]")
_SECRET_PARAM_RE = re.compile(r"(?<=[?&])(?=(?i:" + "|".join(SECRET_QUERY_PARAMS) + r")=[^&#\s])")


def has_credential_url(text: str) -> bool:
    r"""True when ``text`` holds a URL with a password: ``scheme://[user]:PASSWORD@`` (the
    password may hold spaces, not a line break) or a password-like query parameter with
    a value (``scheme://host/path?x=1&token=...``).

    The same as searching for ``[A-Za-z][A-Za-z0-9+.-]*://(?:[^/\s:@]*:[^@\r\n]+@|
    [^\s?#]*\?(?:[^#\s]*&)?(?i:PARAMS)=[^&#\s])``, but linear in the text: that search
    restarts at every letter and rescans to the end of the line from each, so a value
    of a few hundred KiB (from a hostile base image) would take hours.  Here each part
    is found once and the "where does it end" questions are answered by bisection.
    """
    if "://" not in text:
        return False
    at_or_eol = [m.start() for m in _PASSWORD_END_RE.finditer(text)]
    host_end = [m.start() for m in _HOST_END_RE.finditer(text)]
    query_end = [m.start() for m in _QUERY_END_RE.finditer(text)]
    params = [m.start() for m in _SECRET_PARAM_RE.finditer(text)]
    after_amp = [p for p in params if text[p - 1] == "&"]
    first_param = set(params)
    end = len(text)

    def first(positions: list[int], start: int) -> int:
        index = bisect.bisect_left(positions, start)
        return positions[index] if index < len(positions) else end

    for scheme in _SCHEME_RE.finditer(text):
        rest = scheme.end()
        user = _USER_RE.match(text, rest)
        if user is not None:
            colon = user.end() - 1
            stop = first(at_or_eol, colon + 1)
            if stop > colon + 1 and stop < end and text[stop] == "@":
                return True
        mark = first(host_end, rest)
        if mark < end and text[mark] == "?":
            if mark + 1 in first_param:
                return True
            query_stop = first(query_end, mark + 1)
            # a parameter after an '&' that lies inside this query (t+1 <= '&' < query end)
            index = bisect.bisect_left(after_amp, mark + 2)
            if index < len(after_amp) and after_amp[index] <= query_stop:
                return True
    return False


def mask_secrets(text: str) -> str:
    """Mask URL passwords (user info and password query parameters) wherever they occur in text."""
    return mask_query(_WORD_TO_AT.sub(lambda word: _USERINFO_RE.sub(r"\1***@", word.group(0)),
                                      text))


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
