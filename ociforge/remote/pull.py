"""Pull: a reference becomes an Image (or an Index with ``--platform all``).

Only documents are fetched eagerly (manifests and configs, bounded and
verified); layer bytes stay behind lazy openers that stream from the registry
and verify at EOF.  Each layer remembers ``registry/repository`` as its
``source`` so a later push to the same registry can mount it.  For one
platform only the matching child manifest is fetched, never every child.
"""

from __future__ import annotations

from typing import IO, Protocol

from ..errors import InvalidInputError, InvalidPlatformError, ValidationError
from ..model import mediatypes as mt
from ..model.descriptor import Descriptor
from ..model.digest import Digest, read_all_verified
from ..model.image import Image
from ..model.index import Artifact, Index, ReferenceBudget
from ..model.jsonutil import MAX_DOCUMENT, parse_object
from ..model.layer import Layer
from ..model.platform import Platform
from ..model.reference import Reference
from ..options import Options, RegistryOptions
from .parallel import run_parallel

MAX_INDEX_DEPTH = 4


class PullSource(Protocol):
    """What a pull reads: a RegistryClient, or one answering from a cache first."""

    registry: str
    options: RegistryOptions

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, Digest]: ...

    def open_blob(self, repository: str, digest: Digest | str) -> IO[bytes]: ...


def pull(client: PullSource, ref: Reference, options: Options) -> Artifact:
    """The artifact a reference names, resolved to one platform unless all are wanted."""
    data, media_type, _ = client.get_manifest(ref.repository, ref.identifier)
    if mt.is_index(media_type):
        if options.all_platforms:
            return load_index(client, ref, data, 0)
        return _pick_platform(client, ref, data, options.wanted_platform(), 0,
                              ReferenceBudget(), set())
    return load_image(client, ref, data)


def load_image(client: PullSource, ref: Reference, manifest_bytes: bytes) -> Image:
    manifest = parse_object(manifest_bytes, "image manifest")
    if manifest.get("schemaVersion") == 1:
        raise ValidationError(f"{ref} is a Docker schema 1 manifest (deprecated); ociforge "
                              "reads schema 2 and OCI images only")
    if "manifests" in manifest and "layers" not in manifest:
        raise InvalidInputError(f"{ref} is an index where an image manifest was expected")
    config = Descriptor.from_dict(manifest.get("config"), "config descriptor")
    with client.open_blob(ref.repository, config.digest) as raw:
        config_bytes = read_all_verified(raw, config.digest, config.size, MAX_DOCUMENT, "config")
    source = ref.name
    repository = ref.repository

    def open_blob(desc: Descriptor) -> Layer:
        digest = desc.digest
        return Layer(desc, None, lambda: client.open_blob(repository, digest), None, source)

    return Image.from_documents(manifest_bytes, config_bytes, open_blob, source)


def load_index(client: PullSource, ref: Reference, index_bytes: bytes, depth: int,
               budget: ReferenceBudget | None = None) -> Index:
    """The whole index tree; a child named again is fetched once but counted again (with
    all it names) against ``budget``, so an index bomb is refused before it is walked."""
    return _load_index(client, ref, index_bytes, depth, budget or ReferenceBudget())[0]


def _load_index(client: PullSource, ref: Reference, index_bytes: bytes, depth: int,
                budget: ReferenceBudget) -> tuple[Index, int]:
    if depth > MAX_INDEX_DEPTH:
        raise InvalidInputError(f"{ref}: indexes nested deeper than {MAX_INDEX_DEPTH}")
    entries = _entries(index_bytes)
    fresh: dict[tuple[str, str], Descriptor] = {}
    for desc in entries:
        key = (str(desc.digest), desc.media_type)
        if key in budget.loaded:
            budget.take(budget.loaded[key][1], f"{ref}: image index")
        elif key not in fresh:
            budget.take(1, f"{ref}: image index")
            fresh[key] = desc
        else:
            budget.take(1, f"{ref}: image index")  # its full weight is added below

    def load_child(desc: Descriptor) -> tuple[tuple[str, str], tuple[Artifact, int]]:
        data, media_type, _ = client.get_manifest(ref.repository, str(desc.digest))
        if mt.is_index(media_type):
            return (str(desc.digest), desc.media_type), _load_index(client, ref, data,
                                                                    depth + 1, budget)
        return (str(desc.digest), desc.media_type), (load_image(client, ref, data), 1)

    # distinct children's manifests and configs are fetched side by side (order kept)
    jobs = client.options.jobs if depth == 0 else 1
    for key, loaded in run_parallel(load_child, list(fresh.values()), jobs, "ociforge-pull"):
        budget.loaded[key] = loaded
    repeats: dict[tuple[str, str], int] = {}
    children = []
    weight = 1
    for desc in entries:
        key = (str(desc.digest), desc.media_type)
        artifact, child_weight = budget.loaded[key]
        if key in fresh:
            repeats[key] = repeats.get(key, 0) + 1
            if repeats[key] > 1:  # a repeat inside this index: count what it names too
                budget.take(child_weight - 1, f"{ref}: image index")
        children.append((desc, artifact))
        weight += child_weight
    return Index(index_bytes, tuple(children), ref.name), weight


def _entries(index_bytes: bytes) -> list[Descriptor]:
    doc = parse_object(index_bytes, "image index")
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise InvalidInputError("image index has no manifests array")
    return [Descriptor.from_dict(e, f"index entry {i}") for i, e in enumerate(entries)]


def _pick_platform(client: PullSource, ref: Reference, index_bytes: bytes,
                   wanted: Platform, depth: int, budget: ReferenceBudget,
                   searched: set[str]) -> Image:
    """Depth-first search for the wanted platform; a nested index already searched in
    vain is not searched again, and every fetch counts against ``budget``."""
    if depth > MAX_INDEX_DEPTH:
        raise InvalidInputError(f"{ref}: indexes nested deeper than {MAX_INDEX_DEPTH}")
    entries = _entries(index_bytes)
    budget.take(len(entries), f"{ref}: image index")
    available: list[str] = []
    for desc in entries:
        if desc.platform is not None:
            if str(desc.platform) not in available and desc.platform.os != "unknown":
                available.append(str(desc.platform))
            if desc.platform.matches(wanted) and not mt.is_index(desc.media_type):
                data, media_type, _ = client.get_manifest(ref.repository, str(desc.digest))
                if mt.is_index(media_type):
                    return _pick_platform(client, ref, data, wanted, depth + 1, budget,
                                          searched)
                return load_image(client, ref, data)
    for desc in entries:
        if mt.is_index(desc.media_type) and str(desc.digest) not in searched:
            searched.add(str(desc.digest))
            data, _, _ = client.get_manifest(ref.repository, str(desc.digest))
            try:
                return _pick_platform(client, ref, data, wanted, depth + 1, budget, searched)
            except InvalidPlatformError:
                continue
    raise InvalidPlatformError(
        f"no image for platform {wanted} in {ref}; available: {', '.join(available) or 'none'}"
    )
