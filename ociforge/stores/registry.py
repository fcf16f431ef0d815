"""A registry reference as a Location: ``ociforge copy oci:out ghcr.io/me/app:1`` and back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ..model.index import Artifact
from ..model.reference import Reference
from ..options import Options
from ..progress.events import Progress
from .locations import Location, LocationKind, TagRemoval, WriteResult

if TYPE_CHECKING:  # the HTTP stack loads only when a registry is contacted
    from ..remote.client import RegistryClient
    from .store import ArtifactStore


def client_for(registry: str, options: Options) -> RegistryClient:
    """One client per registry, transport options and credential state in a run (its
    ``Options.session``).

    Reads and writes to one registry in a command share its connections and
    tokens; a login or logout in between (or another config) gets a fresh client.
    """
    from ..remote.client import RegistryClient
    from ..remote.credentials import credential_sources

    key = ("registry-client", registry, options.registry, credential_sources())
    return options.session.shared(key, lambda: RegistryClient(registry, options.registry))


@dataclass(frozen=True)
class RegistryLocation(Location):
    """A registry reference (``docker://REF``, ``HOST/NAME[:TAG]``, ``NAME:TAG`` ...)."""

    kind: ClassVar[LocationKind] = "registry"
    supports_attachments: ClassVar[bool] = True
    reference: Reference

    @classmethod
    def parse(cls, text: str) -> RegistryLocation:
        """``[docker://]REF``; raises InvalidReferenceError (exit 2) on a bad reference."""
        return cls(Reference.parse(text))

    def carried_name(self) -> str | None:
        ref = self.reference
        return f"{ref.name}:{ref.tag}" if ref.tag else None

    def check_destination(self) -> None:
        """The reference parsed; push access needs the network and is not checked here."""
        return None

    def read(self, options: Options) -> Artifact:
        from ..cache.transfer import pull_cached

        ref = self.reference
        with Progress.of(options).task("pull", str(ref)):
            return pull_cached(ref, options, lambda: client_for(ref.registry, options))

    def write(self, artifact: Artifact, options: Options) -> WriteResult:
        from ..cache.transfer import push_cached

        ref = self.reference
        with Progress.of(options).task("write", str(ref)):
            digest, media_type = push_cached(
                ref, artifact, options, lambda: client_for(ref.registry, options))
        return WriteResult(str(digest), str(ref), media_type)

    def list_tags(self, options: Options) -> list[str]:
        client = client_for(self.reference.registry, options)
        return client.list_tags(self.reference.repository)

    def remove_tag(self, options: Options, *, all_tags: bool = False) -> TagRemoval:
        from .registryremove import remove_registry_tag

        client = client_for(self.reference.registry, options)
        return remove_registry_tag(client, self.reference, options, all_tags=all_tags)

    def artifact_store(self, options: Options | None = None) -> ArtifactStore:
        from .artifactstore import RegistryStore

        return RegistryStore(self.reference, options)

    def __str__(self) -> str:
        return str(self.reference)
