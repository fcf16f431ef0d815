"""The docker-archive specifics: image names and the classic ``docker save`` layout.

A classic ``docker save`` tar has manifest.json (Config, RepoTags, Layers per
image), ``<id>.json`` configs and ``<id>/layer.tar`` layers but no manifest;
one is synthesised so that the image reads like any other.  ImageName is the
``NAME[:TAG]`` a docker-archive names its image by (RepoTags, the containerd
image-name annotation).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInputError, InvalidReferenceError, NotFoundError, ValidationError
from ..model import mediatypes as mt
from ..model.annotations import CONTAINERD_NAME, REF_NAME
from ..model.descriptor import Descriptor
from ..model.digest import Digest
from ..model.image import Image
from ..model.jsonutil import canonical, loads
from ..model.layer import Layer
from .tarblobs import GZIP_MAGIC, ZSTD_MAGIC, TarBlobs


@dataclass(frozen=True)
class ImageName:
    """A docker-archive image name: fully qualified, familiar form, and tag."""

    full: str        # docker.io/library/app:latest
    familiar: str    # app
    tag: str         # latest

    @property
    def repo_tag(self) -> str:
        return f"{self.familiar}:{self.tag}"

    @classmethod
    def parse(cls, text: str) -> ImageName:
        from ..model.reference import Reference

        ref = Reference.parse(text)
        if ref.digest is not None or ref.tag is None:
            raise InvalidReferenceError(
                f"docker-archive name {text!r} must be NAME[:TAG], without a digest"
            )
        familiar = ref.name
        if ref.registry == "docker.io":
            familiar = ref.repository.removeprefix("library/")
        return cls(str(ref), familiar, ref.tag)

    @classmethod
    def from_path(cls, path: str) -> ImageName:
        """``out/My App.tar.gz`` -> ``my-app:latest``: a usable default name."""
        base = os.path.basename(path)
        for suffix in (".tar.gz", ".tgz", ".tar.zst", ".tar", ".gz"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
                break
        name = re.sub(r"[^a-z0-9._-]+", "-", base.lower())
        name = re.sub(r"^[^a-z0-9]+|[^a-z0-9]+$", "", name)
        name = re.sub(r"[._-]{2,}", "-", name)
        return cls.parse(name or "image")


# -- classic docker save ------------------------------------------------------


def docker_manifest(blobs: TarBlobs) -> list[dict[str, Any]] | None:
    """The entries of manifest.json, or None when the archive has none."""
    if not blobs.has("manifest.json"):
        return None
    data = blobs.read_small("manifest.json", "manifest.json")
    doc = loads(data, f"manifest.json in {blobs.where!r}")
    if not isinstance(doc, list) or not all(isinstance(e, dict) for e in doc):
        raise ValidationError(f"manifest.json in {blobs.where!r} is not a list of objects")
    return doc


def legacy_image(blobs: TarBlobs, entry: dict[str, Any]) -> Image:
    """A Docker schema2 manifest synthesised for a classic ``docker save`` entry."""
    config_name = entry.get("Config")
    layer_names = entry.get("Layers")
    if not isinstance(config_name, str) or not isinstance(layer_names, list):
        raise ValidationError(f"manifest.json in {blobs.where!r} lacks Config or Layers")
    config_bytes = blobs.read_small(config_name, "image config")
    layers = []
    oci = False
    for name in layer_names:
        if not isinstance(name, str):
            raise ValidationError(f"manifest.json in {blobs.where!r} has a non-string layer")
        magic = blobs.sniff(name)
        if magic.startswith(GZIP_MAGIC):
            media_type = mt.DOCKER_LAYER_GZIP
        elif magic == ZSTD_MAGIC:
            media_type, oci = mt.OCI_LAYER_ZSTD, True
        else:
            media_type = mt.DOCKER_LAYER
        desc = Descriptor(media_type, blobs.hash_member(name), blobs.size(name))
        layers.append((desc, name))
    layer_types = [(mt.to_oci(d.media_type) if oci else d.media_type) for d, _ in layers]
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST,
        "config": Descriptor(
            mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG,
            Digest.of_bytes(config_bytes), len(config_bytes),
        ).to_dict(),
        "layers": [
            Descriptor(t, d.digest, d.size).to_dict() for t, (d, _) in zip(layer_types, layers,
                                                                           strict=True)
        ],
    }
    by_digest = {d.digest: name for d, name in layers}

    def make_layer(desc: Descriptor) -> Layer:
        return Layer(desc, None, blobs.member_opener(by_digest[desc.digest]))

    return Image.from_documents(canonical(manifest), config_bytes, make_layer, blobs.where)


def matches_name(desc: Descriptor, name: ImageName) -> bool:
    """Whether an index.json entry names this image (containerd's annotation wins)."""
    notes = desc.annotations or {}
    if notes.get(CONTAINERD_NAME):
        return notes[CONTAINERD_NAME] == name.full
    return notes.get(REF_NAME) in (name.full, name.repo_tag)


def select_legacy_image(blobs: TarBlobs, entries: list[dict[str, Any]], position: int | None,
                        name: ImageName | None, path: str) -> Image:
    """The classic ``docker save`` entry chosen by ``@N``, by name, or the only one."""
    where = f"archive {path!r}"
    if position is not None:
        if position >= len(entries):
            raise NotFoundError(f"{where} has no image @{position}")
        return legacy_image(blobs, entries[position])
    if name is not None:
        for entry in entries:
            tags = entry.get("RepoTags") or []
            for tag in tags if isinstance(tags, list) else []:
                with contextlib.suppress(InvalidInputError):
                    if isinstance(tag, str) and ImageName.parse(tag).full == name.full:
                        return legacy_image(blobs, entry)
        raise NotFoundError(f"{where} has no image named {name.repo_tag}")
    if len(entries) != 1:
        tags = [t for e in entries for t in (e.get("RepoTags") or []) if isinstance(t, str)]
        raise InvalidInputError(
            f"{where} holds {len(entries)} images; name one as docker-archive:{path}:NAME:TAG "
            f"or @N (names: {', '.join(tags) or 'none'})"
        )
    return legacy_image(blobs, entries[0])
