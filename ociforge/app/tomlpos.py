"""Line numbers for keys of a TOML file, since tomllib gives no positions.

A small scanner follows table headers (``[a.b]``, ``[[a]]``) and ``key =``
lines, skipping multi-line strings and arrays, and records the line on which
each key path first appears.  It is only used to point error messages at the
right line, so anything it cannot follow falls back to the nearest table.
"""

from __future__ import annotations

import re

Path = tuple[str | int, ...]

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_KEY_PART = rf"(?:{_BARE}|{_QUOTED})"
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER_RE = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_KEY_RE = re.compile(rf"^\s*({_DOTTED})\s*=")
_PART_RE = re.compile(_KEY_PART)


def _split_key(dotted: str) -> list[str]:
    parts = []
    for match in _PART_RE.finditer(dotted):
        text = match.group(0)
        if text[0] in "\"'":
            text = text[1:-1]
        parts.append(text)
    return parts


class KeyLines:
    """Maps key paths such as ``("layers", 1, "src")`` to 1-based line numbers."""

    def __init__(self, source: str):
        self._lines: dict[Path, int] = {}
        self.arrays: set[Path] = set()   # names written as arrays of tables: [[name]]
        self._scan(source)

    def _record(self, path: Path, line: int) -> None:
        self._lines.setdefault(path, line)

    def _scan(self, source: str) -> None:
        table: Path = ()
        array_counts: dict[Path, int] = {}
        in_string: str | None = None
        depth = 0
        for number, line in enumerate(source.splitlines(), start=1):
            if in_string:
                if in_string in line:
                    in_string = None
                continue
            if depth > 0:
                depth += _bracket_delta(line)
                continue
            header = _HEADER_RE.match(line)
            if header:
                names: Path = tuple(_split_key(header.group(2)))
                if header.group(1) == "[[":
                    index = array_counts.get(names, -1) + 1
                    array_counts[names] = index
                    table = (*names, index)
                    self.arrays.add(names)
                    self._record(names, number)  # the first [[name]] names the array
                else:
                    table = _with_indexes(names, array_counts)
                self._record(table, number)
                continue
            key = _KEY_RE.match(line)
            if not key:
                continue
            path = (*table, *_split_key(key.group(1)))
            self._record(path, number)
            value = line[key.end():]
            for quote in ('"""', "'''"):
                if value.count(quote) == 1:
                    in_string = quote
            if in_string is None:
                depth = max(0, _bracket_delta(value))

    def line_of(self, path: Path) -> int | None:
        """The line of the longest known prefix of ``path`` (None: not in the file)."""
        for end in range(len(path), 0, -1):
            line = self._lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


def _with_indexes(names: Path, array_counts: dict[Path, int]) -> Path:
    """``[layers.x]`` after ``[[layers]]`` belongs to the latest array element."""
    out: list[str | int] = []
    for name in names:
        out.append(name)
        count = array_counts.get(tuple(out))
        if count is not None:
            out.append(count)
    return tuple(out)


def _bracket_delta(text: str) -> int:
    """Open minus closed brackets outside strings and comments on one line."""
    delta = 0
    quote: str | None = None
    for char in text:
        if quote:
            if char == quote:
                quote = None
            continue
        if char in "\"'":
            quote = char
        elif char == "#":
            break
        elif char in "[{":
            delta += 1
        elif char in "]}":
            delta -= 1
    return delta
