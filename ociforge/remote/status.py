"""A registry's error answer as an ociforge error, with the registry's own code.

The distribution spec's error body is ``{"errors": [{"code", "message", ...}]}``;
other JSON shapes and plain text are reduced to one short line.  The body is
read by the caller (bounded, with a deadline) and handed in as bytes.
"""

from __future__ import annotations

import re
from typing import NoReturn

import requests

from ..errors import AuthError, InvalidInputError, RegistryError
from ..model.jsonutil import loads

ERROR_BODY_LIMIT = 65536
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
RATE_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "docker-ratelimit-source")


def raise_for_status(resp: requests.Response, body: bytes, registry: str, what: str,
                     authenticated: bool = False) -> NoReturn:
    """Raise RegistryError (AuthError for 401/403) for an error answer."""
    status = resp.status_code
    code, message = error_detail(body)
    codes = error_codes(body)
    detail = f"{code}: {message}" if code else (message or f"HTTP {status}")
    text = f"{registry}: {what}: {detail}"
    if status == 429:
        limits = [f"{h}={resp.headers[h]}" for h in RATE_HEADERS if h in resp.headers]
        if limits:
            text += " (" + ", ".join(limits) + ")"
        raise RegistryError(text, status=status, code=code or "TOOMANYREQUESTS", codes=codes)
    if status in (401, 403):
        hint = ("credentials refused" if authenticated
                else "authentication required (run `ociforge login`)")
        if status == 403 or code == "DENIED":
            hint = "access denied"
        raise AuthError(f"{text} ({hint})", status=status, code=code or "UNAUTHORIZED",
                        codes=codes)
    raise RegistryError(text, status=status, code=code, codes=codes)


def error_detail(body: bytes) -> tuple[str | None, str]:
    """(the registry's error code or None, a one-line message of at most 300 characters)."""
    try:
        doc = loads(body, "error body", ERROR_BODY_LIMIT)
    except InvalidInputError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list) and doc["errors"]:
        first = doc["errors"][0]
        if isinstance(first, dict):
            code = first.get("code") if isinstance(first.get("code"), str) else None
            message = first.get("message")
            return (_line(code) if code else None,
                    _line(message if isinstance(message, str) else ""))
    if isinstance(doc, dict):
        for key in ("details", "detail", "message", "error"):
            if isinstance(doc.get(key), str):
                return None, _line(doc[key])
    return None, _line(body.decode("utf-8", "replace"))


def error_codes(body: bytes) -> tuple[str, ...]:
    """Every code of a distribution-spec error body, in order (at most 16)."""
    try:
        doc = loads(body, "error body", ERROR_BODY_LIMIT)
    except InvalidInputError:
        return ()
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return ()
    return tuple(_line(e["code"]) for e in errors[:16]
                 if isinstance(e, dict) and isinstance(e.get("code"), str))


def _line(text: str) -> str:
    """One line of at most 300 characters, no control characters (a server's text
    must not be able to forge or colour lines of our output)."""
    return _CONTROL.sub("", " ".join(text.split()))[:300]
