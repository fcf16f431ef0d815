"""A small dotenv reader: the environment captured from a running application.

Accepts ``KEY=VALUE`` lines, an optional ``export `` prefix, ``#`` comments,
single quotes (literal) and double quotes (with ``\\n``, ``\\"``, ``\\\\``
escapes).  Errors name the file and line but never the value, which may be a
secret.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType

from ..errors import ConfigFileError, InvalidInputError
from ..fsutil import read_regular

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_ESCAPES = MappingProxyType({"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"})


def parse_env_text(text: str, where: str) -> dict[str, str]:
    """Parse dotenv text; later lines override earlier ones, order of first appearance kept."""
    env: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        name, sep, rest = line.partition("=")
        name = name.strip()
        if not sep or not _NAME_RE.match(name):
            raise ConfigFileError(f"{where}:{number}: expected NAME=VALUE (variable names are "
                                  "letters, digits and underscores)")
        env[name] = _value(rest.strip(), f"{where}:{number}")
    return env


def _value(text: str, where: str) -> str:
    if text.startswith("'"):
        end = text.find("'", 1)
        if end < 0:
            raise ConfigFileError(f"{where}: unterminated single quote")
        _only_comment(text[end + 1:], where)
        return text[1:end]
    if text.startswith('"'):
        out: list[str] = []
        i = 1
        while i < len(text):
            char = text[i]
            if char == "\\" and i + 1 < len(text):
                out.append(_ESCAPES.get(text[i + 1], "\\" + text[i + 1]))
                i += 2
                continue
            if char == '"':
                _only_comment(text[i + 1:], where)
                return "".join(out)
            out.append(char)
            i += 1
        raise ConfigFileError(f"{where}: unterminated double quote")
    # Unquoted: a ' #' starts a comment.
    value, _, _ = text.partition(" #")
    return value.rstrip()


def _only_comment(rest: str, where: str) -> None:
    rest = rest.strip()
    if rest and not rest.startswith("#"):
        raise ConfigFileError(f"{where}: unexpected text after the closing quote")


def read_env_file(path: Path, shown_as: str) -> dict[str, str]:
    """Read a dotenv file (UTF-8); ``shown_as`` is the name used in errors.

    Only a regular file is read: a FIFO or device there is bad input, never opened
    for reading (a FIFO would block the export for ever).
    """
    try:
        data = read_regular(path, "env_file", shown=shown_as)
    except InvalidInputError as exc:
        raise ConfigFileError(str(exc)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigFileError(f"env_file {shown_as!r} is not UTF-8 text") from None
    return parse_env_text(text, shown_as)
