"""The ``oci:DIR[:TAG]`` location: an OCI image layout (layout.Layout) as a Location."""

from __future__ import annotations

import os
from typing import IO, cast

from ..errors import InvalidInputError, OciforgeError
from ..model import walk
from ..model.descriptor import Descriptor
from ..model.digest import Digest
from ..model.index import Artifact
from ..model.layer import Layer
from ..model.loader import load_artifact
from ..options import Options
from ..progress.events import Progress
from .layout import Layout
from .locations import Location, TagRemoval, WriteResult
from .refnames import check_tag_to_write
from .store import ArtifactStore


class LayoutLocation(Location):
    """``oci:DIR[:TAG]``: several tags share one layout; without a tag, the only image."""

    kind = "oci"
    supports_attachments = True

    def __init__(self, path: str | os.PathLike[str], tag: str | None = None):
        self.path: str = os.path.expanduser(str(path))
        self.tag = tag
        self.layout = Layout(self.path)

    def __str__(self) -> str:
        return f"oci:{self.path}:{self.tag}" if self.tag else f"oci:{self.path}"

    def check_destination(self) -> None:
        if self.tag is not None:
            check_tag_to_write(self.tag)
        self.layout.check_writable()  # a real probe file: root passes os.access read-only

    def with_default_name(self, name: str | None) -> LayoutLocation:
        """``--tag NAME:TAG`` tags a layout given without a tag of its own."""
        if self.tag is not None or not name:
            return self
        from ..model.reference import Reference

        return LayoutLocation(self.path, Reference.parse(name).tag)

    def read(self, options: Options) -> Artifact:
        return self.layout.read(self.tag)

    def read_documents(self, options: Options) -> Artifact:
        self.layout.check_readable()
        return load_artifact(self.layout.find(self.tag), _DocumentsOnly(self.layout),
                             self.layout.source)

    def carried_name(self) -> str | None:
        from ..model.annotations import CONTAINERD_NAME

        try:
            found = self.layout.find(self.tag)
        except (OciforgeError, OSError):
            return None
        return (found.annotations or {}).get(CONTAINERD_NAME)

    def named_digest(self) -> Digest | None:
        try:
            return self.layout.find(self.tag).digest
        except (OciforgeError, OSError):
            return None

    def write(self, artifact: Artifact, options: Options) -> WriteResult:
        self.check_destination()
        total = sum(layer.size for image in walk.images(artifact) for layer in image.layers)
        with Progress.of(options).task("write", str(self), total) as task:
            self.layout.put(artifact, self.tag, task)
        return WriteResult(str(artifact.digest), str(self), artifact.media_type)

    def list_tags(self, options: Options) -> list[str]:
        self.layout.check_readable()
        return self.layout.tags()

    def remove_tag(self, options: Options, *, all_tags: bool = False) -> TagRemoval:
        from .layoutgc import remove_layout_tag

        if self.tag is None:
            raise InvalidInputError(f"{self}: name the tag to remove: oci:{self.path}:TAG")
        return remove_layout_tag(self.layout, self.tag, all_tags=all_tags, shown=str(self))

    def artifact_store(self, options: Options | None = None) -> ArtifactStore:
        from .artifactstore import LayoutStore

        return LayoutStore(self.layout.root, self.tag, str(self))


class _DocumentsOnly:
    """A layout's documents, with layers that are only opened if read (never by inspect)."""

    def __init__(self, layout: Layout):
        self.layout = layout

    def read_document(self, desc: Descriptor, what: str) -> bytes:
        return self.layout.read_document(desc, what)

    def layer(self, desc: Descriptor) -> Layer:
        layout = self.layout
        return Layer(desc, None, lambda: cast(IO[bytes], layout.open_blob(desc)), None)
