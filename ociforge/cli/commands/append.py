"""``ociforge append BASE -o DEST [--layer SRC[:PATH]]... [config options]``.

Adds reproducible layers and config changes to a base (``scratch`` or any
location) and writes the result to one or more destinations.  Every input is
checked before anything is read, built or written.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import (
    add_cache_options,
    add_command,
    add_platform_option,
    add_registry_options,
    emit,
    parse_key_value,
)

log = logging.getLogger("ociforge")
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst", ".tar.zstd")
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_BASE_NAME = "org.opencontainers.image.base.name"
ANNOTATION_BASE_DIGEST = "org.opencontainers.image.base.digest"
ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_VERSION = "org.opencontainers.image.version"
ANNOTATION_SOURCE = "org.opencontainers.image.source"


def register(sub: Any) -> None:
    parser = add_command(
        sub, "append", "add layers and config to a base image and write it out",
        "Add layers (folders, files or tars) and config changes to BASE (scratch or any "
        "location) and write the image to every -o destination.",
    )
    parser.add_argument("base", metavar="BASE", help="scratch, oci:DIR[:TAG], an archive, or REF")
    parser.add_argument("-o", "--output", action="append", required=True, metavar="DEST",
                        help="destination location (repeatable)")
    parser.add_argument("--layer", action="append", default=[], metavar="SRC[:PATH]",
                        help="a folder, file or .tar/.tar.gz/.tar.zst (added as it is) as one "
                             "layer; PATH defaults to /<basename of SRC>")
    parser.add_argument("--env", action="append", default=[], metavar="K=V")
    parser.add_argument("--entrypoint", metavar="ARGS",
                        help="JSON array or shell-split string ('' clears it)")
    parser.add_argument("--cmd", metavar="ARGS", help="JSON array or shell-split string")
    parser.add_argument("--workdir", metavar="DIR")
    parser.add_argument("--user", metavar="USER")
    parser.add_argument("--label", action="append", default=[], metavar="K=V")
    parser.add_argument("--expose", action="append", default=[], metavar="PORT[/PROTO]")
    parser.add_argument("--volume", action="append", default=[], metavar="PATH")
    parser.add_argument("--stop-signal", metavar="SIGNAL")
    parser.add_argument("--annotation", action="append", default=[], metavar="K=V",
                        help="manifest annotation (OCI format only; wins over the ones "
                             "ociforge derives)")
    parser.add_argument("--source", metavar="URL",
                        help="where the image's source lives: the "
                             "org.opencontainers.image.source annotation (OCI format only)")
    add_platform_option(parser)
    parser.add_argument("--compression", default="gzip", choices=("gzip", "zstd", "none"))
    parser.add_argument("--remove", action="append", default=[], metavar="PATH",
                        help="hide PATH of a lower layer (a whiteout)")
    parser.add_argument("--tag", metavar="NAME:TAG",
                        help="name recorded in archives and the tag in layouts without one")
    parser.add_argument("--format", choices=("oci", "docker"),
                        help="media types of the result (default: the base's; OCI for scratch)")
    parser.add_argument("--source-date-epoch", type=int, metavar="N",
                        help="timestamp for files and config (default $SOURCE_DATE_EPOCH or 0)")
    add_registry_options(parser)
    add_cache_options(parser)
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class LayerSpec:
    """One --layer: a source and where it goes, or a tar added as it is."""

    src: Path
    dest: str
    as_tar: bool
    text: str


def parse_layer_spec(text: str) -> LayerSpec:
    """``SRC[:/PATH]``: the last ':' followed by '/' splits off the container path."""
    from ...errors import InvalidInputError

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
              and src.name.lower().endswith(_TAR_SUFFIXES))
    if not dest:
        name = src.resolve().name if src_text in (".", "..") or src_text.endswith("/") else src.name
        dest = "/" + name if name else "/"
    return LayerSpec(src, dest, as_tar, text)


def parse_command(text: str | None, what: str) -> list[str] | None:
    """A JSON array of strings, or a shell-split string; None when not given."""
    from ...errors import InvalidInputError

    if text is None:
        return None
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except ValueError as exc:
            raise InvalidInputError(f"{what} is not a valid JSON array: {exc}") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInputError(f"{what} must be a JSON array of strings")
        return value
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise InvalidInputError(f"{what} cannot be split into words: {exc}") from None


def _changes(args: argparse.Namespace) -> Any:
    from ...errors import InvalidInputError
    from ...model.mutate import ConfigChanges, check_stop_signal, normalize_port

    for port in args.expose:
        normalize_port(port)
    for volume in args.volume:
        if not volume.startswith("/"):
            raise InvalidInputError(f"--volume {volume!r} must be an absolute path")
    if args.workdir is not None and args.workdir and not args.workdir.startswith("/"):
        raise InvalidInputError(f"--workdir {args.workdir!r} must be an absolute path")
    return ConfigChanges(
        env=parse_key_value(args.env, "--env"),
        entrypoint=parse_command(args.entrypoint, "--entrypoint"),
        cmd=parse_command(args.cmd, "--cmd"),
        workdir=args.workdir,
        user=args.user,
        labels=parse_key_value(args.label, "--label"),
        exposed_ports=list(args.expose),
        volumes=list(args.volume),
        stop_signal=None if args.stop_signal is None else check_stop_signal(args.stop_signal),
    )


def derived_annotations(tag: str | None, source: str | None) -> dict[str, str]:
    """Annotations ociforge fills in from ``--tag NAME:TAG`` and ``--source URL``.

    title = the last path component of NAME (``ghcr.io/acme/web:1.2`` -> ``web``),
    version = TAG unless it is ``latest`` (that names no version), source = URL.
    """
    from ...model.reference import Reference

    notes: dict[str, str] = {}
    if tag:
        ref = Reference.parse(tag)
        notes[ANNOTATION_TITLE] = ref.repository.rsplit("/", 1)[-1]
        if ref.tag and ref.tag != "latest":
            notes[ANNOTATION_VERSION] = ref.tag
    if source:
        notes[ANNOTATION_SOURCE] = source
    return notes


def base_name_of(location: Any) -> str | None:
    """The base's fully qualified registry reference; None for local bases.

    A path is not a name: it would differ with how the base was spelled (oci:x,
    oci:./x, oci:/abs/x), change the digest and leak the host's folders.
    """
    from ...stores.registry import RegistryLocation

    if isinstance(location, RegistryLocation):
        return str(location.reference)
    return None


def _result_is_docker(base: Any, wanted_format: str | None) -> bool:
    """Whether the appended image keeps (or gets) Docker media types."""
    from ...model.image import Image

    if wanted_format is not None:
        return wanted_format == "docker"
    if isinstance(base, Image):
        return base.is_docker
    images = [child for _, child in base.children if isinstance(child, Image)]
    return bool(images) and all(image.is_docker for image in images)


def run(args: argparse.Namespace) -> int:
    from ...errors import InvalidInputError, InvalidPlatformError
    from ...layers.build import (
        BuildSettings,
        LayerSource,
        build_layer,
        layer_from_tar,
        settings_epoch,
    )
    from ...layers.compress import check_compression
    from ...layers.workspace import latest_blob_path
    from ...model.image import Image
    from ...model.index import Index, build_index
    from ...model.mediatypes import compression_of
    from ...model.mutate import (
        annotate,
        append_layers,
        configure,
        convert,
        drop_annotations,
        rfc3339,
        scratch,
        set_created,
    )
    from ...progress import Activity
    from ...stores.locations import Scratch, resolve_platform
    from . import _io
    from .common import make_options

    # -- 1. every input checked before anything is read or written ------------
    options = make_options(args)
    check_compression(args.compression)
    epoch = settings_epoch(args.source_date_epoch)
    tag = _io.check_tag(args.tag)
    destinations = [_io.destination(text, tag) for text in args.output]
    _io.check_distinct_outputs(destinations)
    _io.check_offline(destinations, options)
    base_location = _io.source(args.base)
    specs = [parse_layer_spec(text) for text in args.layer]
    changes = _changes(args)
    user_annotations = parse_key_value(args.annotation, "--annotation")
    if args.source is not None and not args.source.strip():
        raise InvalidInputError("--source needs a URL")
    asked_annotations = sorted(
        [f"--annotation {key}" for key in user_annotations]
        + (["--source"] if args.source else []))
    removes = list(args.remove)
    for path in removes:
        if not path.startswith("/") or ".." in path.split("/") or path.strip("/") == "":
            raise InvalidInputError(f"--remove {path!r} must be an absolute path below /")
    docker = args.format == "docker"
    if docker and args.compression == "zstd":
        raise InvalidInputError("--format docker cannot carry zstd layers; use gzip or none")
    if docker and asked_annotations:
        raise InvalidInputError(f"{asked_annotations[0]} needs OCI format; Docker manifests "
                                "have no annotations")
    from ...stores.archive import DockerArchiveLocation

    if args.compression == "zstd" and any(isinstance(d, DockerArchiveLocation)
                                          for d in destinations):
        raise InvalidInputError("docker-archive outputs need gzip or uncompressed layers "
                                "(docker load cannot read zstd); use --compression gzip")
    if options.all_platforms and isinstance(base_location, Scratch):
        raise InvalidPlatformError("--platform all needs a multi-platform base, not scratch")

    # -- 2. the base ------------------------------------------------------------
    if isinstance(base_location, Scratch):
        base: Any = scratch(options.wanted_platform(), docker=docker, epoch=epoch)
    else:
        # an explicit --platform that a single-image base does not have is refused here
        base = resolve_platform(base_location.read(options), options)
    for location in destinations:  # an index for a single-image output: refused before building
        accepts = getattr(location, "check_artifact", None)
        if callable(accepts):
            accepts(base)
    result_docker = _result_is_docker(base, args.format)
    if result_docker and args.format is None and asked_annotations:
        # a Docker manifest cannot carry them: say so rather than drop them silently
        raise InvalidInputError(
            f"{asked_annotations[0]} needs OCI media types, but base {args.base!r} is "
            "Docker format; add --format oci to convert it"
        )
    if result_docker and args.format is None and args.compression == "zstd":
        raise InvalidInputError(
            f"zstd layers need OCI media types, but base {args.base!r} is Docker format; "
            "add --format oci to convert it, or use --compression gzip"
        )

    # -- 3. the layers (built once, shared by every platform) --------------------
    settings = BuildSettings(compression=args.compression, epoch=epoch, docker=docker)
    layers: list[Any] = []
    created_by: list[str] = []
    steps = len(specs) + (1 if removes else 0)

    def building(what: str) -> Activity:
        number = len(layers) + 1
        before = latest_blob_path()  # the blob of the layer built before is not this one

        def measure() -> int | None:
            path = latest_blob_path()
            return None if path == before else _size_of(path)

        return Activity(f"building layer {number}/{steps} from {what}", options.progress,
                        measure=measure)

    if removes:
        with building("--remove"):
            result = build_layer([], settings, removes=removes)
        layers.append(result.layer)
        created_by.append("ociforge remove " + " ".join(removes))
    for spec in specs:
        with building(str(spec.src)) as activity:
            if spec.as_tar:
                result = layer_from_tar(spec.src, settings)
            else:
                result = build_layer([LayerSource(spec.src, spec.dest)], settings)
        log.debug("layer from %s: %s in %.1fs", spec.src, result.layer.digest.short,
                  activity.elapsed)
        if spec.as_tar:
            created_by.append(f"ociforge add tar {spec.src.name}")
            if result_docker and compression_of(result.layer.media_type) == "zstd":
                how = ("--format docker cannot carry it" if docker else
                       f"base {args.base!r} is Docker format; add --format oci to convert it")
                raise InvalidInputError(f"--layer {spec.text!r} is a zstd tar: {how}")
        else:
            created_by.append(f"ociforge add {spec.dest}")
        for warning in result.warnings:
            log.warning("%s", warning)
        layers.append(result.layer)

    # -- 4. the new image(s) ------------------------------------------------------
    base_name = None if isinstance(base_location, Scratch) else base_name_of(base_location)
    derived = derived_annotations(tag, args.source)

    def finish(image: Image) -> Image:
        base_digest = str(image.digest)
        if args.format is not None:
            image = convert(image, docker=docker)
        image = append_layers(image, layers, created_by=created_by, epoch=epoch)
        image = configure(image, changes)
        image = set_created(image, epoch)
        # the base's annotations describe the base (its title, version, own base): not ours
        image = drop_annotations(image)
        if image.is_docker:
            return image  # derived annotations only; asked-for ones were refused above
        notes = {ANNOTATION_CREATED: rfc3339(epoch), **derived}
        if not isinstance(base_location, Scratch):
            notes[ANNOTATION_BASE_DIGEST] = base_digest
            if base_name is not None:
                notes[ANNOTATION_BASE_NAME] = base_name
        notes.update(user_annotations)  # what the user wrote always wins
        return annotate(image, notes)
    if isinstance(base, Index):
        entries: list[tuple[Any, dict[str, str] | None]] = []
        for desc, child in base.children:
            notes = desc.annotations or {}
            if not isinstance(child, Image) or "vnd.docker.reference.type" in notes or (
                desc.platform is not None and desc.platform.os == "unknown"
            ):
                log.warning("leaving out %s (not a platform image)", desc.digest.short)
                continue
            entries.append((finish(child), dict(notes) or None))
        if not entries:
            raise InvalidInputError(f"base {args.base!r} holds no platform images to append to")
        # a Docker manifest list only when every child is Docker; else an OCI index
        result_artifact: Any = build_index(entries, docker=all(img.is_docker for img, _ in entries))
    else:
        result_artifact = finish(base)

    # -- 5. write -------------------------------------------------------------
    results = _io.write_all(result_artifact, destinations, options)
    layer_info = [
        {"digest": str(layer.digest), "diff_id": str(layer.diff_id), "size": layer.size,
         "mediaType": layer.media_type}
        for layer in layers
    ]
    emit(args, _io.result_json(result_artifact, results, layers=layer_info),
         _io.human_lines(result_artifact, results))
    return 0


def _size_of(path: Path | None) -> int | None:
    """Bytes written so far to the blob being built (None before it exists)."""
    if path is None:
        return None
    try:
        return path.stat().st_size
    except OSError:
        return None

