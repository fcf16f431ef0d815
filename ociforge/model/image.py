"""The Image value: raw manifest and config bytes (authoritative) plus its layers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from ..errors import InvalidInputError
from . import mediatypes as mt
from .descriptor import Descriptor
from .digest import Digest
from .jsonutil import JSONObject, parse_object
from .layer import Layer
from .platform import Platform


@dataclass(frozen=True)
class Image:
    """One image manifest with its config and layers.

    The bytes are what gets written and pushed; the parsed ``manifest`` and
    ``config`` are cached views.  Nothing re-serialises these bytes unless a
    mutation changes the document, so digests survive any round trip.
    """

    manifest_bytes: bytes
    config_bytes: bytes
    layers: tuple[Layer, ...]
    source: str | None = field(default=None, compare=False)

    @cached_property
    def manifest(self) -> JSONObject:
        return parse_object(self.manifest_bytes, "image manifest")

    @cached_property
    def config(self) -> JSONObject:
        return parse_object(self.config_bytes, "image config")

    @cached_property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.manifest_bytes)

    @property
    def size(self) -> int:
        return len(self.manifest_bytes)

    @property
    def media_type(self) -> str:
        mtype = self.manifest.get("mediaType")
        return mtype if isinstance(mtype, str) else mt.OCI_MANIFEST

    @cached_property
    def config_descriptor(self) -> Descriptor:
        return Descriptor.from_dict(self.manifest.get("config"), "config descriptor")

    @property
    def is_docker(self) -> bool:
        return self.media_type == mt.DOCKER_MANIFEST

    @cached_property
    def platform(self) -> Platform | None:
        cfg = self.config
        os_name, arch = cfg.get("os"), cfg.get("architecture")
        if isinstance(os_name, str) and isinstance(arch, str) and os_name and arch:
            return Platform.from_dict(cfg)
        return None

    @property
    def diff_ids(self) -> list[str]:
        rootfs = self.config.get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        return [d for d in diff_ids if isinstance(d, str)] if isinstance(diff_ids, list) else []

    def descriptor(self, annotations: dict[str, str] | None = None) -> Descriptor:
        return Descriptor(
            self.media_type, self.digest, self.size, annotations or None, self.platform
        )

    def config_layer(self) -> Layer:
        """The config blob as a Layer, for sinks that treat all blobs alike."""
        data = self.config_bytes
        import io

        return Layer(self.config_descriptor, None, lambda: io.BytesIO(data), None, self.source)

    @classmethod
    def from_documents(
        cls,
        manifest_bytes: bytes,
        config_bytes: bytes,
        open_blob: Callable[[Descriptor], Layer],
        source: str | None = None,
    ) -> Image:
        """Build an Image from raw documents; ``open_blob`` makes each layer's Layer."""
        manifest = parse_object(manifest_bytes, "image manifest")
        layers_json = manifest.get("layers")
        if not isinstance(layers_json, list):
            raise InvalidInputError("image manifest has no layers array")
        if not isinstance(manifest.get("config"), dict):
            raise InvalidInputError("image manifest has no config descriptor")
        config_desc = Descriptor.from_dict(manifest["config"], "config descriptor")
        if Digest.of_bytes(config_bytes) != config_desc.digest:
            from ..errors import DigestMismatchError

            raise DigestMismatchError(
                f"config {config_desc.digest} has digest {Digest.of_bytes(config_bytes)}"
            )
        config = parse_object(config_bytes, "image config") if config_desc.media_type in (
            mt.OCI_CONFIG, mt.DOCKER_CONFIG) else {}
        rootfs = config.get("rootfs") if isinstance(config, dict) else None
        diff_ids_raw = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        diff_ids = diff_ids_raw if isinstance(diff_ids_raw, list) else []
        layers = []
        for i, entry in enumerate(layers_json):
            desc = Descriptor.from_dict(entry, f"layer {i}")
            base = open_blob(desc)
            diff_id: Digest | None = None
            if i < len(diff_ids) and isinstance(diff_ids[i], str):
                diff_id = Digest.parse(diff_ids[i])
            layers.append(Layer(desc, diff_id, base.opener, base.path, base.source or source))
        image = cls(manifest_bytes, config_bytes, tuple(layers), source)
        # Cache the parsed views we already have.
        object.__setattr__(image, "manifest", manifest)
        return image
