"""What an ecosystem module tells the layer scan: which files it reads, and how."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidInputError
from ...model.jsonutil import loads
from .licenses import Licensing
from .model import Record

Parse = Callable[[str, bytes, Licensing], "Record | None"]


@dataclass(frozen=True)
class Reader:
    """Reads one kind of metadata file.

    ``basenames``, ``suffixes`` and ``name_prefixes`` (of the file name) and
    ``prefixes`` (of the path) are a cheap first test; ``wants`` the exact one on the
    path (relative, no leading slash).  A file larger than ``limit`` is not read when
    ``whole`` (a cut JSON document is no document); otherwise its first ``limit``
    bytes are.  ``links`` names the symlinks whose target the inventory must know.
    """

    ecosystem: str
    wants: Callable[[str], bool]
    parse: Parse
    basenames: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    name_prefixes: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    limit: int = 4 << 20
    whole: bool = True
    links: Callable[[str], bool] | None = None

    def may_want(self, path: str, basename: str) -> bool:
        return (basename in self.basenames
                or (bool(self.suffixes) and basename.endswith(self.suffixes))
                or (bool(self.name_prefixes) and basename.startswith(self.name_prefixes))
                or (bool(self.prefixes) and path.startswith(self.prefixes)))


@dataclass(frozen=True)
class AnyReader:
    """The readers' cheap first tests together: a name none of them may want is passed
    over with one test instead of one per reader (most files of a layer)."""

    basenames: frozenset[str]
    suffixes: tuple[str, ...]
    name_prefixes: tuple[str, ...]
    prefixes: tuple[str, ...]

    @classmethod
    def of(cls, readers: Sequence[Reader]) -> AnyReader:
        return cls(frozenset().union(*(r.basenames for r in readers)),
                   tuple(s for r in readers for s in r.suffixes),
                   tuple(p for r in readers for p in r.name_prefixes),
                   tuple(p for r in readers for p in r.prefixes))

    def may_want(self, path: str, basename: str) -> bool:
        """Whether some reader's ``may_want`` is true (the same tests, joined)."""
        return (basename in self.basenames
                or (bool(self.suffixes) and basename.endswith(self.suffixes))
                or (bool(self.name_prefixes) and basename.startswith(self.name_prefixes))
                or (bool(self.prefixes) and path.startswith(self.prefixes)))


class MetadataError(ValueError):
    """A metadata file that cannot be read as what its name says (a warning, not a failure)."""


def json_metadata(data: bytes, what: str, limit: int) -> dict[str, Any]:
    """A metadata file that must hold one JSON object (read within ``limit``); anything
    else is a MetadataError saying what is wrong with it."""
    try:
        doc = loads(data, what, limit=limit)
    except InvalidInputError as exc:
        raise MetadataError(str(exc).removeprefix(f"{what} ")) from None
    if not isinstance(doc, dict):
        raise MetadataError("not a JSON object")
    return doc
