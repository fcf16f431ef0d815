"""The Layer value: a blob descriptor, its diff_id, and a way to open its bytes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .descriptor import Descriptor
from .digest import Digest, VerifyingReader

BlobOpener = Callable[[], IO[bytes]]


@dataclass(frozen=True)
class Layer:
    """A layer (or any blob a manifest names) whose bytes are opened lazily.

    ``opener`` returns the raw stored bytes; ``open()`` wraps them in a reader
    that verifies digest and size at EOF.  ``path`` is set when the blob is a
    plain local file (lets sinks hardlink or stream it without re-hashing).
    ``source`` names the ``registry/repository`` the blob already lives in, so
    a push to the same registry can mount it instead of uploading it.
    """

    descriptor: Descriptor
    diff_id: Digest | None
    opener: BlobOpener = field(compare=False, repr=False)
    path: Path | None = field(default=None, compare=False)
    source: str | None = field(default=None, compare=False)
    file_count: int | None = field(default=None, compare=False)

    @property
    def digest(self) -> Digest:
        return self.descriptor.digest

    @property
    def size(self) -> int:
        return self.descriptor.size

    @property
    def media_type(self) -> str:
        return self.descriptor.media_type

    def open(self) -> VerifyingReader:
        return VerifyingReader(self.opener(), self.digest, self.size, "blob")

    def with_descriptor(self, descriptor: Descriptor) -> Layer:
        return Layer(descriptor, self.diff_id, self.opener, self.path, self.source, self.file_count)

    def with_source(self, source: str | None) -> Layer:
        return Layer(self.descriptor, self.diff_id, self.opener, self.path, source, self.file_count)

    @classmethod
    def from_file(
        cls,
        path: Path,
        descriptor: Descriptor,
        diff_id: Digest | None,
        file_count: int | None = None,
    ) -> Layer:
        return cls(descriptor, diff_id, lambda: open(path, "rb"), path, None, file_count)
