"""Pure transforms: each takes an Image and returns a new one with new documents.

Documents we generate are canonical JSON, so the same inputs always give the
same manifest and config bytes.  An unchanged image keeps its original bytes.
"""

from __future__ import annotations

import copy
import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInputError
from . import mediatypes as mt
from .descriptor import Descriptor
from .digest import Digest
from .image import Image
from .jsonutil import canonical
from .layer import Layer
from .platform import Platform


def rfc3339(epoch: int) -> str:
    """Seconds since the epoch as RFC 3339 UTC ("1970-01-01T00:00:00Z")."""
    return _dt.datetime.fromtimestamp(epoch, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _assemble(
    manifest: dict[str, Any], config: dict[str, Any], layers: Sequence[Layer], source: str | None
) -> Image:
    config_bytes = canonical(config)
    config_type = mt.DOCKER_CONFIG if manifest.get("mediaType") == mt.DOCKER_MANIFEST else (
        manifest.get("config", {}).get("mediaType") or mt.OCI_CONFIG)
    manifest = dict(manifest)
    manifest["config"] = Descriptor(
        config_type, Digest.of_bytes(config_bytes), len(config_bytes)
    ).to_dict()
    manifest["layers"] = [layer.descriptor.to_dict() for layer in layers]
    return Image(canonical(manifest), config_bytes, tuple(layers), source)


def scratch(platform: Platform, docker: bool = False, epoch: int = 0) -> Image:
    """An empty image for a platform: no layers, an empty config."""
    config: dict[str, Any] = {
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {},
        "created": rfc3339(epoch),
        "history": [],
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    if platform.variant:
        config["variant"] = platform.variant
    if platform.os_version:
        config["os.version"] = platform.os_version
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST,
        "config": {},
        "layers": [],
    }
    return _assemble(manifest, config, [], None)


def _docs(image: Image) -> tuple[dict[str, Any], dict[str, Any]]:
    return copy.deepcopy(image.manifest), copy.deepcopy(image.config)


def append_layers(
    image: Image,
    layers: Sequence[Layer],
    created_by: Sequence[str] | None = None,
    epoch: int | None = None,
    comment: str | None = None,
) -> Image:
    """Add layers on top, with one history entry each, keeping the manifest's family."""
    if not layers:
        return image
    manifest, config = _docs(image)
    docker = manifest.get("mediaType") == mt.DOCKER_MANIFEST
    if docker and any(mt.compression_of(layer.media_type) == "zstd" for layer in layers):
        # Docker has no zstd layer type: move the whole image to OCI types.
        image = convert(image, docker=False)
        return append_layers(image, layers, created_by, epoch, comment)
    new_layers = list(image.layers)
    rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    diff_ids = rootfs.setdefault("diff_ids", [])
    history = config.get("history")
    if not isinstance(history, list):
        history = []
    created = rfc3339(epoch) if epoch is not None else config.get("created")
    for i, layer in enumerate(layers):
        if layer.diff_id is None:
            raise InvalidInputError(f"layer {layer.digest} has no diff_id")
        desc = layer.descriptor
        wanted = mt.to_docker(desc.media_type) if docker else mt.to_oci(desc.media_type)
        if wanted != desc.media_type:
            desc = Descriptor(wanted, desc.digest, desc.size, None if docker else desc.annotations)
            layer = layer.with_descriptor(desc)
        new_layers.append(layer)
        diff_ids.append(str(layer.diff_id))
        entry: dict[str, Any] = {"created_by": (created_by[i] if created_by else "ociforge")}
        if created:
            entry["created"] = created
        if comment:
            entry["comment"] = comment
        history.append(entry)
    config["history"] = history
    return _assemble(manifest, config, new_layers, image.source)


@dataclass
class ConfigChanges:
    """Changes to the runtime config; None means 'leave as it is'."""

    env: Mapping[str, str] = field(default_factory=dict)
    env_remove: Sequence[str] = ()
    entrypoint: Sequence[str] | None = None
    cmd: Sequence[str] | None = None
    workdir: str | None = None
    user: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    exposed_ports: Sequence[str] = ()
    volumes: Sequence[str] = ()
    stop_signal: str | None = None

    def is_empty(self) -> bool:
        return not (
            self.env or self.env_remove or self.entrypoint is not None or self.cmd is not None
            or self.workdir is not None or self.user is not None or self.labels
            or self.exposed_ports or self.volumes or self.stop_signal is not None
        )


def normalize_port(port: str) -> str:
    """'8080' -> '8080/tcp'; validates number and protocol."""
    text = str(port).strip().lower()
    number, _, proto = text.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidInputError(f"port {port!r} has unknown protocol {proto!r}")
    lo, _, hi = number.partition("-")
    for part in (lo, hi) if hi else (lo,):
        if not part.isdigit() or not 0 < int(part) < 65536:
            raise InvalidInputError(f"port {port!r} is not a number from 1 to 65535")
    return f"{number}/{proto}"


_LINUX_SIGNALS = frozenset((
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CLD", "CONT", "STOP", "TSTP", "TTIN",
    "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS",
))


def check_stop_signal(text: str) -> str:
    """A StopSignal the runtimes understand: ``SIGTERM``/``TERM``, ``SIGRTMIN+3``, or 1-64.

    Linux names (the container's kernel, whatever the host), as moby's ParseSignal
    takes them; returned unchanged so the config says what the user wrote.
    """
    value = str(text).strip()
    if value.isdigit():
        if 1 <= int(value) <= 64:
            return value
        raise InvalidInputError(f"stop signal {text!r} is not a signal number from 1 to 64")
    name = value.upper().removeprefix("SIG")
    base, sign, offset = name.partition("+") if "+" in name else name.partition("-")
    ok = name in _LINUX_SIGNALS or name in ("RTMIN", "RTMAX") or (
        base == "RTMIN" and sign == "+" and offset.isdigit() and 1 <= int(offset) <= 15
    ) or (base == "RTMAX" and sign == "-" and offset.isdigit() and 1 <= int(offset) <= 14)
    if not ok:
        raise InvalidInputError(
            f"stop signal {text!r} is not a signal: give a name like SIGTERM or SIGRTMIN+3, "
            "or a number"
        )
    return value


def configure(image: Image, changes: ConfigChanges) -> Image:
    """Apply runtime config changes (env merges by name; lists replace)."""
    if changes.is_empty():
        return image
    manifest, config = _docs(image)
    runtime = config.get("config")
    if not isinstance(runtime, dict):
        runtime = {}
    if changes.env or changes.env_remove:
        current: dict[str, str] = {}
        order: list[str] = []
        for item in runtime.get("Env") or []:
            if isinstance(item, str):
                key, _, value = item.partition("=")
                if key not in current:
                    order.append(key)
                current[key] = value
        for key in changes.env_remove:
            if key in current:
                del current[key]
                order.remove(key)
        for key, value in changes.env.items():
            if not key or "=" in key:
                raise InvalidInputError(f"environment variable name {key!r} is not valid")
            if key not in current:
                order.append(key)
            current[key] = value
        runtime["Env"] = [f"{k}={current[k]}" for k in order]
    if changes.entrypoint is not None:
        runtime["Entrypoint"] = list(changes.entrypoint) or None
        if changes.cmd is None:
            # Docker semantics: a new entrypoint resets an inherited Cmd.
            runtime.pop("Cmd", None)
    if changes.cmd is not None:
        runtime["Cmd"] = list(changes.cmd) or None
    if changes.workdir is not None:
        runtime["WorkingDir"] = changes.workdir
    if changes.user is not None:
        runtime["User"] = changes.user
    if changes.labels:
        labels = runtime.get("Labels") if isinstance(runtime.get("Labels"), dict) else {}
        labels = dict(labels or {})
        labels.update(changes.labels)
        runtime["Labels"] = labels
    if changes.exposed_ports:
        ports = dict(runtime.get("ExposedPorts") or {})
        for port in changes.exposed_ports:
            ports[normalize_port(port)] = {}
        runtime["ExposedPorts"] = ports
    if changes.volumes:
        vols = dict(runtime.get("Volumes") or {})
        for vol in changes.volumes:
            if not str(vol).startswith("/"):
                raise InvalidInputError(f"volume {vol!r} must be an absolute path")
            vols[str(vol)] = {}
        runtime["Volumes"] = vols
    if changes.stop_signal is not None:
        runtime["StopSignal"] = changes.stop_signal
    config["config"] = {k: v for k, v in runtime.items() if v is not None}
    config.setdefault("history", []).append(
        {"created": config.get("created", rfc3339(0)), "created_by": "ociforge config",
         "empty_layer": True}
    )
    return _assemble(manifest, config, image.layers, image.source)


def annotate(image: Image, annotations: Mapping[str, str]) -> Image:
    """Merge manifest annotations (OCI only; Docker manifests have none)."""
    if not annotations:
        return image
    if image.is_docker:
        raise InvalidInputError("Docker schema2 manifests cannot carry annotations; use OCI format")
    manifest, _config = _docs(image)
    merged = dict(manifest.get("annotations") or {})
    merged.update(annotations)
    manifest["annotations"] = merged
    return Image(canonical(manifest), image.config_bytes, image.layers, image.source)


def drop_annotations(image: Image) -> Image:
    """Remove what describes the base itself: its manifest annotations (title, version,
    source, its own base) and its ``subject`` (an image built on a referrer is not a
    referrer of the same subject), so an image built on it does not inherit them."""
    if "annotations" not in image.manifest and "subject" not in image.manifest:
        return image
    manifest, _config = _docs(image)
    manifest.pop("annotations", None)
    manifest.pop("subject", None)
    return Image(canonical(manifest), image.config_bytes, image.layers, image.source)


def set_created(image: Image, epoch: int) -> Image:
    """Set config.created to the epoch (RFC 3339); history entries keep their own times."""
    manifest, config = _docs(image)
    stamp = rfc3339(epoch)
    config["created"] = stamp
    return _assemble(manifest, config, image.layers, image.source)


def convert(image: Image, docker: bool) -> Image:
    """Switch the image between OCI and Docker schema2 media types."""
    if image.is_docker == docker:
        return image
    manifest, config = _docs(image)
    layers = []
    for layer in image.layers:
        desc = layer.descriptor
        if docker:
            if mt.compression_of(desc.media_type) == "zstd":
                raise InvalidInputError("zstd layers cannot be written with Docker media types")
            desc = Descriptor(mt.to_docker(desc.media_type), desc.digest, desc.size)
        else:
            desc = Descriptor(mt.to_oci(desc.media_type), desc.digest, desc.size, desc.annotations)
        layers.append(layer.with_descriptor(desc))
    manifest["mediaType"] = mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST
    manifest["config"] = dict(manifest.get("config") or {})
    manifest["config"]["mediaType"] = mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG
    if docker:
        manifest.pop("annotations", None)
        manifest.pop("subject", None)
        manifest.pop("artifactType", None)
    return _assemble(manifest, config, layers, image.source)


def replace_layers(image: Image, replacements: Mapping[int, Layer]) -> Image:
    """Swap layers in place (descriptor and rootfs diff_id); order and history stay aligned."""
    if not replacements:
        return image
    manifest, config = _docs(image)
    layers = list(image.layers)
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
        raise InvalidInputError("image config rootfs.diff_ids does not match the manifest layers")
    for index, layer in sorted(replacements.items()):
        if not 0 <= index < len(layers):
            raise InvalidInputError(f"no layer {index} to replace (layers 0 to {len(layers) - 1})"
                                    if layers else f"no layer {index} to replace (no layers)")
        if layer.diff_id is None:
            raise InvalidInputError(f"layer {layer.digest} has no diff_id")
        layers[index] = layer
        diff_ids[index] = str(layer.diff_id)
    return _assemble(manifest, config, layers, image.source)


# Build leftovers in a config that describe how the base was built, not how it runs;
# they repeat the build's environment and commands (values included).
BUILD_LEFTOVER_KEYS = ("container_config", "container", "docker_version")


def redact_config(image: Image, scrub_text: Callable[[str], str],
                  drop_keys: Sequence[str] = BUILD_LEFTOVER_KEYS) -> Image:
    """Drop build leftovers and pass every history text through ``scrub_text``.

    History entries are kept one for one (their ``empty_layer`` flags too), so they
    stay aligned with the layers; only ``created_by`` and ``comment`` change.
    """
    manifest, config = _docs(image)
    for key in drop_keys:
        config.pop(key, None)
    history = config.get("history")
    if isinstance(history, list):
        for entry in history:
            if not isinstance(entry, dict):
                continue
            for key in ("created_by", "comment"):
                if isinstance(entry.get(key), str):
                    entry[key] = scrub_text(entry[key])
    return _assemble(manifest, config, image.layers, image.source)
