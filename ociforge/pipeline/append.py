"""Append: reproducible layers and config changes on a base, written to destinations.

``plan_append(request)`` checks every input (layer sources, config values,
annotations, formats, destinations) and push access to every registry
destination; ``AppendPlan.run()`` reads the base, builds the layers once,
applies them to the platform images asked for and writes the result.  Which
platforms: none named gives the host's image; on an index base, several
(``Options.platforms``), every one (``Options.all_platforms``) or one named
(``Options.platform``) get the layers and the index keeps every other entry
exactly as the base lists it (attestations of a changed image are left out:
they attest the old one).  One platform named where a destination holds one
image (a docker archive) gives that platform's image; on scratch, a list
builds an index of exactly those platforms.

Format rules: the result keeps the base's media types unless ``format`` asks
for OCI or Docker.  Docker manifests have no annotations and no zstd layers,
so asking for either on a Docker result is refused, never dropped silently.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import InvalidInputError, InvalidPlatformError
from ..layers.build import (
    BuildResult,
    BuildSettings,
    LayerSource,
    build_layer,
    layer_from_tar,
    settings_epoch,
)
from ..layers.compress import check_compression
from ..model import mediatypes as mt
from ..model.annotations import (
    ANNOTATION_BASE_DIGEST,
    ANNOTATION_BASE_NAME,
    ANNOTATION_CREATED,
    ANNOTATION_SOURCE,
    ANNOTATION_TITLE,
    ANNOTATION_VERSION,
)
from ..model.image import Image
from ..model.index import Artifact, Index, build_index
from ..model.layer import Layer
from ..model.mediatypes import compression_of
from ..model.mutate import (
    ConfigChanges,
    annotate,
    append_layers,
    check_stop_signal,
    configure,
    convert,
    drop_annotations,
    normalize_port,
    rfc3339,
    scratch,
    set_created,
)
from ..model.platform import Platform
from ..model.selection import attested_digest, images_to_change, replace_images
from ..options import Compression, ImageFormat, Options
from ..progress.events import Progress, Task
from ..stores.locations import Location, WriteResult, resolve_platform
from .outputs import Outputs, check_tag
from .sources import open_source

log = logging.getLogger("ociforge")

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst", ".tar.zstd")


@dataclass(frozen=True)
class LayerSpec:
    """One layer to add: a file or folder and where it goes, or a tar added as it is."""

    src: Path
    dest: str
    as_tar: bool
    text: str

    @classmethod
    def parse(cls, text: str) -> LayerSpec:
        """``SRC[:/PATH]`` (as ``--layer`` takes it): see :func:`parse_layer_spec`."""
        return parse_layer_spec(text)


def parse_layer_spec(text: str) -> LayerSpec:
    """``SRC[:/PATH]``: the last ':' followed by '/' splits off the container path.

    PATH defaults to ``/<basename of SRC>``; a ``.tar``, ``.tar.gz``/``.tgz`` or
    ``.tar.zst`` given without PATH is added as a layer as it is.
    """
    src_text, dest = text, ""
    cut = text.rfind(":/")
    if cut > 0:
        src_text, dest = text[:cut], text[cut + 1:]
    elif text.endswith(":") and len(text) > 1:
        raise InvalidInputError(f"--layer {text!r}: the container path after ':' is empty")
    src = Path(os.path.expanduser(src_text))
    if not os.path.lexists(src):
        head, colon, tail = src_text.rpartition(":")
        if colon and head and tail and os.path.lexists(os.path.expanduser(head)):
            raise InvalidInputError(
                f"--layer {text!r}: the container path {tail!r} must be absolute (/{tail})")
        raise InvalidInputError(f"--layer {text!r}: {src_text!r} does not exist")
    mode = os.lstat(src).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        # a FIFO, socket or device named on purpose would only become an empty layer
        raise InvalidInputError(f"--layer {text!r}: {src_text!r} is not a file, folder, "
                                "symlink or tar")
    if dest and ("\0" in dest or ".." in dest.split("/")):
        raise InvalidInputError(f"--layer {text!r}: container path {dest!r} is not allowed")
    as_tar = (not dest and src.is_file() and not src.is_symlink()
              and src.name.lower().endswith(TAR_SUFFIXES))
    if not dest:
        name = src.resolve().name if src_text in (".", "..") or src_text.endswith("/") else src.name
        dest = "/" + name if name else "/"
    return LayerSpec(src, dest, as_tar, text)


@dataclass(frozen=True)
class AppendRequest:
    """What ``ociforge append`` does, as values: see docs/cli.md for each field's flag."""

    base: str | Location = "scratch"
    destinations: Sequence[str | Location] = ()
    layers: Sequence[str | LayerSpec] = ()        # "SRC[:/PATH]" as --layer takes them
    changes: ConfigChanges = field(default_factory=ConfigChanges)
    annotations: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None                     # org.opencontainers.image.source
    remove: Sequence[str] = ()                    # paths hidden by a whiteout layer
    compression: Compression = "gzip"
    format: ImageFormat | None = None             # None: the base's (OCI on scratch)
    tag: str | None = None                        # NAME:TAG for archives and untagged layouts
    source_date_epoch: int | None = None          # None: options.source_date_epoch, else 0
    options: Options = field(default_factory=Options)


@dataclass(frozen=True)
class AppendOutcome:
    """What was written: the image (or index), the new layers, one result per destination."""

    artifact: Artifact
    layers: tuple[Layer, ...]
    results: tuple[WriteResult, ...]


@dataclass
class AppendPlan:
    """An append whose inputs and destinations were all checked; ``run()`` does it."""

    request: AppendRequest
    outputs: Outputs
    base: Location
    specs: tuple[LayerSpec, ...]
    changes: ConfigChanges
    epoch: int
    tag: str | None
    compression: Compression

    def run(self) -> AppendOutcome:
        with self.outputs.running(self.request.options):
            return _run(self)


def append_image(request: AppendRequest) -> AppendOutcome:
    """Check, build and write: ``plan_append(request).run()``."""
    return plan_append(request).run()


def plan_append(request: AppendRequest) -> AppendPlan:
    """Check every input before anything is read or written, then push access."""
    options = request.options
    compression = check_compression(request.compression)
    if request.format not in (None, "oci", "docker"):
        raise InvalidInputError(f"--format must be oci or docker, not {request.format!r}")
    epoch = settings_epoch(request.source_date_epoch, options.source_date_epoch)
    tag = check_tag(request.tag)
    if not request.destinations:
        raise InvalidInputError("append needs at least one destination")
    outputs = Outputs.parse(request.destinations, default_name=tag)
    outputs.check_offline(options)
    base = open_source(request.base)
    specs = tuple(item if isinstance(item, LayerSpec) else parse_layer_spec(item)
                  for item in request.layers)
    changes = check_changes(request.changes)
    if request.source is not None and not request.source.strip():
        raise InvalidInputError("--source needs a URL")
    for path in request.remove:
        if not path.startswith("/") or ".." in path.split("/") or path.strip("/") == "":
            raise InvalidInputError(f"--remove {path!r} must be an absolute path below /")
    asked = _asked_annotations(request)
    docker = request.format == "docker"
    if docker and compression == "zstd":
        raise InvalidInputError("--format docker cannot carry zstd layers; use gzip or none")
    if docker and asked:
        raise InvalidInputError(f"{asked[0]} needs OCI format; Docker manifests "
                                "have no annotations")
    outputs.check_compression(compression)
    if options.all_platforms and base.kind == "scratch":
        raise InvalidPlatformError("--platform all needs a multi-platform base, not scratch "
                                   "(which serves any platform: name them, e.g. "
                                   "--platform linux/amd64,linux/arm64)")
    outputs.check_push_access(options)
    return AppendPlan(request, outputs, base, specs, changes, epoch, tag, compression)


def check_changes(changes: ConfigChanges) -> ConfigChanges:
    """``changes`` as an image config can carry them (the stop signal normalised):
    ports, volumes, workdir and stop signal are checked."""
    for port in changes.exposed_ports:
        normalize_port(port)
    for volume in changes.volumes:
        if not volume.startswith("/"):
            raise InvalidInputError(f"--volume {volume!r} must be an absolute path")
    if changes.workdir and not changes.workdir.startswith("/"):
        raise InvalidInputError(f"--workdir {changes.workdir!r} must be an absolute path")
    if changes.stop_signal is None:
        return changes
    return replace(changes, stop_signal=check_stop_signal(changes.stop_signal))


def derived_annotations(tag: str | None, source: str | None) -> dict[str, str]:
    """Annotations ociforge fills in from ``--tag NAME:TAG`` and ``--source URL``.

    title = the last path component of NAME (``ghcr.io/acme/web:1.2`` -> ``web``),
    version = TAG unless it is ``latest`` (that names no version), source = URL.
    """
    from ..model.reference import Reference

    notes: dict[str, str] = {}
    if tag:
        ref = Reference.parse(tag)
        notes[ANNOTATION_TITLE] = ref.repository.rsplit("/", 1)[-1]
        if ref.tag and ref.tag != "latest":
            notes[ANNOTATION_VERSION] = ref.tag
    if source:
        notes[ANNOTATION_SOURCE] = source
    return notes


def base_annotations(base: Location, base_digest: str) -> dict[str, str]:
    """base.digest, and base.name only for a registry base.

    A path is not a name: it would differ with how the base was spelled (oci:x,
    oci:./x, oci:/abs/x), change the digest and leak the host's folders.
    """
    notes = {ANNOTATION_BASE_DIGEST: base_digest}
    name = base_name_of(base)
    if name is not None:
        notes[ANNOTATION_BASE_NAME] = name
    return notes


def base_name_of(location: Location) -> str | None:
    """The base's fully qualified registry reference; None for local bases."""
    reference = location.reference
    return None if reference is None else str(reference)


def created_annotation(epoch: int) -> dict[str, str]:
    return {ANNOTATION_CREATED: rfc3339(epoch)}


def _asked_annotations(request: AppendRequest) -> list[str]:
    """The annotations the user asked for, named as flags (for refusals)."""
    return sorted([f"--annotation {key}" for key in request.annotations]
                  + (["--source"] if request.source else []))


def _result_is_docker(images: Sequence[Image], wanted: ImageFormat | None) -> bool:
    """Whether the appended images keep (or get) Docker media types."""
    if wanted is not None:
        return wanted == "docker"
    return bool(images) and all(image.is_docker for image in images)


def _index_kept(plan: AppendPlan) -> tuple[Platform, ...] | None:
    """The platforms whose images get the layers while an index base keeps its other
    children; ``()`` for every platform; None when the result is one image (no
    --platform, or one platform and a destination that holds one image)."""
    options = plan.request.options
    if options.platforms:
        return options.platforms
    if options.all_platforms:
        return ()
    if options.platform is not None and plan.outputs.hold_indexes():
        return (options.platform,)
    return None


def _read_base(plan: AppendPlan) -> tuple[Artifact, dict[str, Image]]:
    """The base, and the images the layers go to by their digest in it."""
    request, options = plan.request, plan.request.options
    docker = request.format == "docker"
    if plan.base.kind == "scratch" and options.platforms:
        images = [scratch(platform, docker=docker, epoch=plan.epoch)
                  for platform in options.platforms]
        index = build_index([(image, None) for image in images], docker=docker)
        return index, {str(image.digest): image for image in images}
    if plan.base.kind == "scratch":
        image = scratch(options.wanted_platform(), docker=docker, epoch=plan.epoch)
        return image, {str(image.digest): image}
    wanted = _index_kept(plan)
    if wanted is None:
        # an explicit platform that a single-image base does not have is refused here
        base = resolve_platform(plan.base.read(options), options)
    else:
        base = plan.base.read(replace(options, platform=None, platforms=(),
                                      all_platforms=True))
        if isinstance(base, Image):
            base = resolve_platform(base, options)
    if isinstance(base, Image):
        return base, {str(base.digest): base}
    targets = images_to_change(base, wanted or ())
    if not targets:
        raise InvalidInputError(f"base {str(request.base)!r} holds no platform images to "
                                "append to")
    return base, targets


def _check_kept_format(base: Index, targets: Mapping[str, Image], plan: AppendPlan) -> None:
    """--format converts the images appended to; an index entry kept as it is must
    already have that format, or the index would mix them."""
    wanted = plan.request.format
    if wanted is None:
        return
    for desc, child in base.children:
        if str(desc.digest) in targets or attested_digest(desc) in targets:
            continue
        if mt.is_docker(desc.media_type) != (wanted == "docker"):
            what = desc.platform or (child.platform if isinstance(child, Image) else None)
            raise InvalidInputError(
                f"--format {wanted} converts the images appended to, but base "
                f"{str(plan.request.base)!r} keeps {desc.digest.short}"
                f"{f' ({what})' if what else ''} as it is, in the other format: name every "
                "platform (--platform all) or drop --format")


def _run(plan: AppendPlan) -> AppendOutcome:
    request, options = plan.request, plan.request.options
    docker = request.format == "docker"
    base_text = str(request.base)
    base, targets = _read_base(plan)
    plan.outputs.check_artifact(base)  # an index for a single-image output: before building
    if isinstance(base, Index):
        _check_kept_format(base, targets, plan)
    result_docker = _result_is_docker(list(targets.values()), request.format)
    asked = _asked_annotations(request)
    if result_docker and request.format is None and asked:
        # a Docker manifest cannot carry them: say so rather than drop them silently
        raise InvalidInputError(
            f"{asked[0]} needs OCI media types, but base {base_text!r} is "
            "Docker format; add --format oci to convert it"
        )
    if result_docker and request.format is None and plan.compression == "zstd":
        raise InvalidInputError(
            f"zstd layers need OCI media types, but base {base_text!r} is Docker format; "
            "add --format oci to convert it, or use --compression gzip"
        )
    layers, created_by = _build_layers(plan, result_docker)
    derived = derived_annotations(plan.tag, request.source)

    def finish(image: Image) -> Image:
        base_digest = str(image.digest)
        if request.format is not None:
            image = convert(image, docker=docker)
        image = append_layers(image, layers, created_by=created_by, epoch=plan.epoch)
        image = configure(image, plan.changes)
        image = set_created(image, plan.epoch)
        # the base's annotations describe the base (its title, version, own base): not ours
        image = drop_annotations(image)
        if image.is_docker:
            return image  # derived annotations only; asked-for ones were refused above
        notes = {**created_annotation(plan.epoch), **derived}
        if plan.base.kind != "scratch":
            notes.update(base_annotations(plan.base, base_digest))
        notes.update(request.annotations)  # what the user wrote always wins
        return annotate(image, notes)

    result: Artifact
    if isinstance(base, Index):
        for desc, _ in base.children:
            if attested_digest(desc) in targets:
                log.warning("leaving out %s (it attests %s as it was before the append)",
                            desc.digest.short, attested_digest(desc))
        changed = {key: finish(image) for key, image in targets.items()}
        media_type = None if request.format is None else (
            mt.DOCKER_LIST if docker else mt.OCI_INDEX)
        result = replace_images(base, changed, media_type=media_type)
    else:
        result = finish(base)
    results = plan.outputs.write(result, options)
    return AppendOutcome(result, tuple(layers), tuple(results))


def _build_layers(plan: AppendPlan, result_docker: bool) -> tuple[list[Layer], list[str]]:
    """The new layers (built once, shared by every platform) and their history lines;
    each a ``build`` progress task."""
    request = plan.request
    docker = request.format == "docker"
    settings = BuildSettings(compression=plan.compression, epoch=plan.epoch, docker=docker)
    layers: list[Layer] = []
    created_by: list[str] = []
    removes = list(request.remove)
    steps = len(plan.specs) + (1 if removes else 0)
    progress = Progress.of(request.options)

    def building(what: str) -> Task:
        return progress.task("build", f"layer {len(layers) + 1}/{steps} from {what}")

    if removes:
        with building("--remove") as task:
            removed = build_layer([], settings, removes=removes, progress=task)
        layers.append(removed.layer)
        created_by.append("ociforge remove " + " ".join(removes))
    for spec in plan.specs:
        result: BuildResult
        with building(str(spec.src)) as task:
            if spec.as_tar:
                result = layer_from_tar(spec.src, settings, progress=task)
            else:
                result = build_layer([LayerSource(spec.src, spec.dest)], settings,
                                     progress=task)
        log.debug("layer from %s: %s", spec.src, result.layer.digest.short)
        if spec.as_tar:
            created_by.append(f"ociforge add tar {spec.src.name}")
            if result_docker and compression_of(result.layer.media_type) == "zstd":
                how = ("--format docker cannot carry it" if docker else
                       f"base {str(request.base)!r} is Docker format; add --format oci to "
                       "convert it")
                raise InvalidInputError(f"--layer {spec.text!r} is a zstd tar: {how}")
        else:
            created_by.append(f"ociforge add {spec.dest}")
        for warning in result.warnings:
            log.warning("%s", warning)
        layers.append(result.layer)
    return layers, created_by
