"""Showing names we do not control: file names, tar entry names, values from a base image.

File names are bytes.  Python carries one that is not UTF-8 as a str with
``surrogateescape`` code points (``b"\\xff.lic"`` is ``"\\udcff.lic"``), which
neither a UTF-8 terminal nor a JSON encoder can take; and a name may hold a
newline or an ANSI escape sequence, which would let it forge a line of output
or recolour a terminal.  So:

* ``json_text``: a str that is valid Unicode, for JSON.  Each byte that is not
  UTF-8 is written ``\\xNN`` (Python's ``backslashreplace``), any other lone
  surrogate ``\\uXXXX``; everything else stays (JSON escapes control characters
  itself).  Where the exact bytes matter (a file name in the export report),
  ``path_fields`` adds them as ``path_bytes_b64``.
* ``human``: the same, and control characters (C0, DEL, C1, the Unicode line
  and paragraph separators and the bidirectional overrides) escaped as
  ``\\n``, ``\\t``, ``\\r``, ``\\xNN`` or ``\\uXXXX``, so one name is one piece of
  one line.
"""

from __future__ import annotations

import base64
import re
from types import MappingProxyType
from typing import Any

_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_NAMED = MappingProxyType({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _surrogate(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def _control(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def name_bytes(name: str | bytes) -> bytes:
    """The bytes a name stands for (a surrogate-escaped str back to its bytes)."""
    if isinstance(name, bytes):
        return name
    try:
        return name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte (from JSON)
        return name.encode("utf-8", "surrogatepass")


def json_text(text: str | bytes) -> str:
    """``text`` as valid Unicode: bytes that are not UTF-8 become ``\\xNN``."""
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    if _LONE_SURROGATE.search(text) is None:
        return text
    return _LONE_SURROGATE.sub(_surrogate, text)


def human(text: str | bytes) -> str:
    """``text`` for a terminal or a log line: json_text, and control characters escaped."""
    return _CONTROL.sub(_control, json_text(text))


def human_lines(text: str) -> str:
    """Several lines of our own (joined by ``\\n``), each made safe by ``human``."""
    return "\n".join(human(line) for line in text.split("\n"))


def is_utf8(name: str | bytes) -> bool:
    if isinstance(name, str):
        return _LONE_SURROGATE.search(name) is None
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def path_fields(name: str | bytes, key: str = "path") -> dict[str, str]:
    """``{"path": json_text(name)}``, plus ``path_bytes_b64`` (the exact bytes, standard
    base64) when the name is not UTF-8, so that a reader can tell ``b"\\xff"`` from a
    name that really is the four characters ``\\xff``."""
    out = {key: json_text(name)}
    if not is_utf8(name):
        out[f"{key}_bytes_b64"] = base64.b64encode(name_bytes(name)).decode("ascii")
    return out


def bytes_of(entry: dict[str, Any], key: str = "path") -> bytes:
    """The exact bytes of a name written by path_fields (what a report reader needs)."""
    encoded = entry.get(f"{key}_bytes_b64")
    if isinstance(encoded, str):
        return base64.b64decode(encoded, validate=True)
    return str(entry[key]).encode("utf-8")


def json_safe(value: Any) -> Any:
    """A JSON-ready copy of ``value`` with every str (keys too) passed through json_text."""
    if isinstance(value, str):
        return json_text(value)
    if isinstance(value, dict):
        return {json_text(k) if isinstance(k, str) else k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 file``, ``2 files``, ``0 files``: a count with its noun in the right number
    (``many`` for nouns whose plural is not ``word + "s"``)."""
    return f"{count} {word if count == 1 else (many or word + 's')}"
