"""Verification for ``ociforge verify``: every digest, size and image-spec rule.

Two kinds of checks, both naming the offending blob:

* structure (cheap, documents only): schemaVersion, required fields, media
  types and their family (no OCI/Docker mixing), digest and size formats, the
  config's os/architecture and rootfs matching the layers, history counts;
* content (streams every blob): digest and size recomputed, layers
  decompressed and their diff_ids compared with the config.

The rules follow image-spec v1.1 (manifest.md, image-index.md, config.md,
descriptor.md); tests cross-check them with ``oci-image-tool validate``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..display import plural
from ..errors import DigestMismatchError, OciforgeError, ValidationError
from ..model import mediatypes as mt
from ..model import walk
from ..model.digest import CHUNK, Digest, HashingWriter
from ..model.image import Image
from ..model.index import Artifact, Index
from ..model.jsonutil import parse_object
from ..model.layer import Layer

_SHA256_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_SHA512_RE = re.compile(r"^sha512:[a-f0-9]{128}$")
_MEDIA_TYPE_RE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)
_RFC3339_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
DOCKER_LAYERS = frozenset({mt.DOCKER_LAYER, mt.DOCKER_LAYER_GZIP, mt.DOCKER_FOREIGN_LAYER_GZIP})
CONFIGS = frozenset({mt.OCI_CONFIG, mt.DOCKER_CONFIG})


@dataclass(frozen=True)
class Problem:
    """One broken rule: which document or blob, and what is wrong with it."""

    where: str
    message: str
    corrupt: bool = False   # a digest/size mismatch rather than a rule violation

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Report:
    """What ``verify`` found: problems plus counts for the summary line."""

    problems: list[Problem]
    manifests: int = 0
    blobs: int = 0
    bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


# -- descriptors --------------------------------------------------------------


def _check_digest_text(value: Any) -> str | None:
    if not isinstance(value, str):
        return "digest is missing or not a string"
    if value.startswith("sha256:"):
        return None if _SHA256_RE.match(value) else f"digest {value[:90]!r} is not sha256:<64 " \
            "lowercase hex>"
    if value.startswith("sha512:"):
        return None if _SHA512_RE.match(value) else f"digest {value[:90]!r} is malformed"
    return f"digest {value[:90]!r} uses an unsupported algorithm"


def check_descriptor(obj: Any, where: str) -> list[Problem]:
    """mediaType, digest and size of one descriptor object."""
    if not isinstance(obj, dict):
        return [Problem(where, "descriptor is not a JSON object")]
    out = []
    media_type = obj.get("mediaType")
    if not isinstance(media_type, str) or not _MEDIA_TYPE_RE.match(media_type):
        out.append(Problem(where, f"mediaType {media_type!r} is missing or malformed"))
    bad = _check_digest_text(obj.get("digest"))
    if bad:
        out.append(Problem(where, bad))
    size = obj.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        out.append(Problem(where, f"size {size!r} is missing or not a non-negative integer"))
    annotations = obj.get("annotations")
    if annotations is not None and (
        not isinstance(annotations, dict)
        or not all(isinstance(v, str) for v in annotations.values())
    ):
        out.append(Problem(where, "annotations must map strings to strings"))
    if "urls" in obj and (not isinstance(obj["urls"], list)
                          or not all(isinstance(u, str) for u in obj["urls"])):
        out.append(Problem(where, "urls must be a list of strings"))
    return out


def _schema_version(doc: dict[str, Any], where: str) -> list[Problem]:
    version = doc.get("schemaVersion")
    if version != 2 or isinstance(version, bool):
        return [Problem(where, f"schemaVersion is {version!r}, must be 2")]
    return []


# -- documents ----------------------------------------------------------------


def _parse_document(
    data: bytes, where: str, expected_type: str | None, family: frozenset[str], kind: str
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Parse a manifest or index and check what both share: schemaVersion 2 and a
    mediaType of the right family that agrees with the descriptor pointing here.

    The document is None when it does not parse (the one problem says why).
    """
    try:
        doc = parse_object(data, where)
    except OciforgeError as exc:
        return None, [Problem(where, str(exc))]
    out = _schema_version(doc, where)
    media_type = doc.get("mediaType")
    if media_type is not None and media_type not in family:
        out.append(Problem(where, f"mediaType {media_type!r} is not an {kind} type"))
    if expected_type and media_type is not None and media_type != expected_type:
        out.append(Problem(where, f"mediaType {media_type!r} differs from its descriptor's "
                                  f"{expected_type!r}"))
    return doc, out


def check_index_document(data: bytes, where: str, expected_type: str | None) -> list[Problem]:
    """An image index / manifest list, by itself (not its children)."""
    doc, out = _parse_document(data, where, expected_type, mt.INDEXES, "image index")
    if doc is None:
        return out
    media_type = doc.get("mediaType")
    if media_type is None and expected_type == mt.DOCKER_LIST:
        out.append(Problem(where, "Docker manifest list without mediaType"))
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        return [*out, Problem(where, "manifests is missing or not an array")]
    docker = media_type == mt.DOCKER_LIST
    for i, entry in enumerate(entries):
        entry_where = f"{where} manifests[{i}]"
        out.extend(check_descriptor(entry, entry_where))
        if not isinstance(entry, dict):
            continue
        child_type = entry.get("mediaType")
        if docker and child_type in (mt.OCI_MANIFEST, mt.OCI_INDEX):
            out.append(Problem(entry_where, f"Docker manifest list names OCI {child_type!r}"))
        platform = entry.get("platform")
        if platform is not None:
            if not isinstance(platform, dict) or not all(
                isinstance(platform.get(k), str) and platform.get(k) for k in ("os", "architecture")
            ):
                out.append(Problem(entry_where, "platform needs os and architecture strings"))
        elif docker:
            out.append(Problem(entry_where, "Docker manifest list entry without platform"))
    return out


def check_manifest_document(data: bytes, where: str, expected_type: str | None) -> list[Problem]:
    """An image manifest by itself: fields, descriptors and media type families."""
    doc, out = _parse_document(data, where, expected_type, mt.IMAGE_MANIFESTS, "image manifest")
    if doc is None:
        return out
    media_type = doc.get("mediaType")
    docker = media_type == mt.DOCKER_MANIFEST or (media_type is None
                                                  and expected_type == mt.DOCKER_MANIFEST)
    if docker and media_type is None:
        out.append(Problem(where, "Docker schema2 manifest without mediaType"))
    config = doc.get("config")
    out.extend(check_descriptor(config, f"{where} config"))
    config_type = config.get("mediaType") if isinstance(config, dict) else None
    if docker and config_type not in (None, mt.DOCKER_CONFIG):
        out.append(Problem(f"{where} config", f"Docker manifest with config type {config_type!r}"))
    if not docker and config_type == mt.DOCKER_CONFIG:
        out.append(Problem(f"{where} config", "OCI manifest with a Docker config media type"))
    layers = doc.get("layers")
    if not isinstance(layers, list):
        return [*out, Problem(where, "layers is missing or not an array")]
    is_image = config_type in CONFIGS
    for i, layer in enumerate(layers):
        layer_where = f"{where} layers[{i}]"
        out.extend(check_descriptor(layer, layer_where))
        ltype = layer.get("mediaType") if isinstance(layer, dict) else None
        if not isinstance(ltype, str) or not is_image:
            continue
        if docker and ltype not in DOCKER_LAYERS and ltype not in mt.ZSTD_LAYERS:
            out.append(Problem(layer_where, f"Docker manifest with layer type {ltype!r}"))
        if not docker and ltype in DOCKER_LAYERS:
            out.append(Problem(layer_where, f"OCI manifest with Docker layer type {ltype!r}"))
        # Unknown layer types are allowed (image-spec: consumers MUST NOT error on
        # them); such a manifest is an artifact (cosign signatures, reports).
    annotations = doc.get("annotations")
    if annotations is not None:
        if docker:
            out.append(Problem(where, "Docker schema2 manifests have no annotations"))
        elif not isinstance(annotations, dict) or not all(
            isinstance(v, str) for v in annotations.values()
        ):
            out.append(Problem(where, "annotations must map strings to strings"))
    return out


def check_config_document(
    data: bytes, where: str, layer_count: int, artifact: bool = False
) -> list[Problem]:
    """An image config: platform fields, rootfs against the layers, history, runtime config.

    ``artifact``: the manifest carries non-filesystem layers (a cosign signature,
    say), whose configs leave os and architecture empty by design.
    """
    try:
        doc = parse_object(data, where)
    except OciforgeError as exc:
        return [Problem(where, str(exc))]
    out = []
    for key in ("architecture", "os"):
        if not isinstance(doc.get(key), str):
            out.append(Problem(where, f"{key} is missing or not a string"))
        elif not doc.get(key) and not artifact:
            out.append(Problem(where, f"{key} is missing or empty"))
    created = doc.get("created")
    if created is not None and (not isinstance(created, str) or not _RFC3339_RE.match(created)):
        out.append(Problem(where, f"created {created!r} is not an RFC 3339 date-time"))
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict):
        out.append(Problem(where, "rootfs is missing"))
    else:
        if rootfs.get("type") != "layers":
            out.append(Problem(where, f"rootfs.type is {rootfs.get('type')!r}, must be 'layers'"))
        diff_ids = rootfs.get("diff_ids")
        if not isinstance(diff_ids, list):
            out.append(Problem(where, "rootfs.diff_ids is missing or not an array"))
        else:
            for i, diff_id in enumerate(diff_ids):
                bad = _check_digest_text(diff_id)
                if bad:
                    out.append(Problem(where, f"rootfs.diff_ids[{i}]: {bad}"))
            if len(diff_ids) != layer_count:
                out.append(Problem(where, f"rootfs has {plural(len(diff_ids), 'diff_id')} but "
                                          f"the manifest has {plural(layer_count, 'layer')}"))
    history = doc.get("history")
    if history is not None:
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            out.append(Problem(where, "history must be an array of objects"))
        else:
            real = [h for h in history if not h.get("empty_layer")]
            if history and len(real) != layer_count:
                entries = plural(len(real), "non-empty entry", "non-empty entries")
                out.append(Problem(where, f"history has {entries} but the manifest has "
                                          f"{plural(layer_count, 'layer')}"))
            for i, entry in enumerate(history):
                stamp = entry.get("created")
                if stamp is not None and (not isinstance(stamp, str)
                                          or not _RFC3339_RE.match(stamp)):
                    out.append(Problem(where, f"history[{i}].created {stamp!r} is not RFC 3339"))
    runtime = doc.get("config")
    if runtime is not None:
        if not isinstance(runtime, dict):
            out.append(Problem(where, "config must be an object"))
        else:
            out.extend(_check_runtime(runtime, where))
    return out


def _check_runtime(runtime: dict[str, Any], where: str) -> list[Problem]:
    out = []
    for key in ("Env", "Entrypoint", "Cmd"):
        value = runtime.get(key)
        if value is not None and (not isinstance(value, list)
                                  or not all(isinstance(v, str) for v in value)):
            out.append(Problem(where, f"config.{key} must be an array of strings"))
    env = runtime.get("Env")
    for item in env if isinstance(env, list) else []:
        if isinstance(item, str) and "=" not in item:
            out.append(Problem(where, f"config.Env entry {item[:60]!r} is not KEY=VALUE"))
    for key in ("ExposedPorts", "Volumes", "Labels"):
        value = runtime.get(key)
        if value is not None and not isinstance(value, dict):
            out.append(Problem(where, f"config.{key} must be an object"))
    labels = runtime.get("Labels")
    if isinstance(labels, dict) and not all(isinstance(v, str) for v in labels.values()):
        out.append(Problem(where, "config.Labels values must be strings"))
    for key in ("User", "WorkingDir", "StopSignal"):
        value = runtime.get(key)
        if value is not None and not isinstance(value, str):
            out.append(Problem(where, f"config.{key} must be a string"))
    return out


# -- walking an artifact ------------------------------------------------------


def _hash_stream(read: Callable[[int], bytes]) -> tuple[Digest, int]:
    writer = HashingWriter()
    while True:
        chunk = read(CHUNK)
        if not chunk:
            return writer.digest, writer.size
        writer.write(chunk)


def check_layer_content(layer: Layer, where: str) -> tuple[list[Problem], int]:
    """Recompute the blob digest and size, and the diff_id of its decompressed tar."""
    from ..layers.compress import open_decompressed

    kind = mt.compression_of(layer.media_type)
    raw = layer.opener()
    blob_hash = HashingWriter()

    class _Tee:
        def read(self, n: int = -1) -> bytes:
            data = raw.read(n)
            blob_hash.write(data)
            return data

        def readable(self) -> bool:
            return True

        def close(self) -> None:
            raw.close()

    problems: list[Problem] = []
    try:
        tee: Any = _Tee()
        if layer.media_type in mt.LAYERS:
            with open_decompressed(tee, what=where, kind=kind) as plain:
                diff_id, _ = _hash_stream(plain.read)
                # drain what the decompressor left unread (trailing bytes count too)
                _hash_stream(tee.read)
            if layer.diff_id is not None and diff_id != layer.diff_id:
                problems.append(Problem(where, f"uncompressed digest {diff_id} differs from "
                                               f"the config's diff_id {layer.diff_id}",
                                        corrupt=True))
        else:
            _hash_stream(tee.read)
            raw.close()
    except OciforgeError as exc:
        message = str(exc)
        if message.startswith(f"{where}: "):  # the decompressor names `where` itself
            message = message[len(where) + 2:]
        problems.append(Problem(where, message, corrupt=True))
    digest, size = blob_hash.digest, blob_hash.size
    if size != layer.size:
        problems.append(Problem(where, f"blob has {size} bytes, descriptor says {layer.size}",
                                corrupt=True))
    elif digest != layer.digest:
        problems.append(Problem(where, f"blob hashes to {digest}", corrupt=True))
    return problems, size


def _image_problems(image: Image, where: str, expected_type: str | None,
                    deep: bool, report: Report) -> Iterator[Problem]:
    report.manifests += 1
    problems = check_manifest_document(image.manifest_bytes, where, expected_type)
    yield from problems
    if any("not valid JSON" in p.message or "not a JSON object" in p.message for p in problems):
        return
    manifest = image.manifest
    raw_config = manifest.get("config")
    config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
    config_where = f"config {config.get('digest', '?')}"
    config_digest = Digest.of_bytes(image.config_bytes)
    if str(config_digest) != config.get("digest") or len(image.config_bytes) != config.get("size"):
        yield Problem(config_where, f"config blob has digest {config_digest} and "
                                    f"{len(image.config_bytes)} bytes", corrupt=True)
    raw_layers = manifest.get("layers")
    layers: list[Any] = raw_layers if isinstance(raw_layers, list) else []
    if config.get("mediaType") in CONFIGS:
        artifact = any(isinstance(ly, dict) and ly.get("mediaType") not in mt.LAYERS
                       for ly in layers)
        yield from check_config_document(image.config_bytes, config_where, len(layers),
                                         artifact)
    report.blobs += 1
    report.bytes += len(image.config_bytes)
    for i, layer in enumerate(image.layers):
        layer_where = f"layer {i} {layer.digest}"
        report.blobs += 1
        if deep:
            found, size = check_layer_content(layer, layer_where)
            report.bytes += size
            yield from found


def _walk(artifact: Artifact, deep: bool, report: Report) -> Iterator[Problem]:
    wheres: dict[int, str] = {}
    for visit in walk.visits(artifact):
        child = visit.artifact
        if visit.descriptor is None or visit.parent is None:
            where = f"{'index' if isinstance(child, Index) else 'manifest'} {child.digest}"
            expected_type = None
        else:
            desc = visit.descriptor
            where = f"manifest {desc.digest}"
            expected_type = desc.media_type
            actual = Digest.of_bytes(child.manifest_bytes)
            if actual != desc.digest or len(child.manifest_bytes) != desc.size:
                yield Problem(f"{wheres[id(visit.parent)]} manifests[{visit.position}]",
                              f"child manifest has digest {actual} and "
                              f"{len(child.manifest_bytes)} bytes, descriptor says "
                              f"{desc.digest} and {desc.size}", corrupt=True)
            if not visit.first:
                continue
        if isinstance(child, Image):
            yield from _image_problems(child, where, expected_type, deep, report)
        else:
            wheres[id(child)] = where
            report.manifests += 1
            yield from check_index_document(child.index_bytes, where, expected_type)


def verify_artifact(artifact: Artifact, deep: bool = True) -> Report:
    """Check every rule (and, when ``deep``, every blob); never raises for problems."""
    report = Report([])
    where = f"{'index' if isinstance(artifact, Index) else 'manifest'} {artifact.digest}"
    try:
        report.problems.extend(_walk(artifact, deep, report))
    except OciforgeError as exc:
        report.problems.append(Problem(where, str(exc), corrupt=True))
    return report


def raise_for(report: Report) -> None:
    """Turn a failed report into one error naming the first problem (exit 1)."""
    if report.ok:
        return
    first = report.problems[0]
    more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
    cls = DigestMismatchError if first.corrupt else ValidationError
    raise cls(f"{first}{more}")
