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

from .common import add_command, add_platform_option, add_registry_options, emit, parse_key_value

log = logging.getLogger("ociforge")
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst", ".tar.zstd")
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_BASE_NAME = "org.opencontainers.image.base.name"
ANNOTATION_BASE_DIGEST = "org.opencontainers.image.base.digest"


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
                        help="manifest annotation (OCI format only)")
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
    from ..errors import InvalidInputError

    src_text, dest = text, ""
    cut = text.rfind(":/")
    if cut > 0:
        src_text, dest = text[:cut], text[cut + 1:]
    elif text.endswith(":") and len(text) > 1:
        raise InvalidInputError(f"--layer {text!r}: the container path after ':' is empty")
    src = Path(os.path.expanduser(src_text))
    if not os.path.lexists(src):
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
    from ..errors import InvalidInputError

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
    from ..errors import InvalidInputError
    from ..mutate import ConfigChanges, normalize_port

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
        stop_signal=args.stop_signal,
    )


def run(args: argparse.Namespace) -> int:
    from ..build import BuildSettings, LayerSource, build_layer, layer_from_tar, settings_epoch
    from ..compress import check_compression
    from ..errors import InvalidInputError, InvalidPlatformError
    from ..image import Image
    from ..index import Index, build_index
    from ..locations import Scratch, resolve_platform
    from ..mutate import annotate, append_layers, configure, convert, rfc3339, scratch, set_created
    from . import _io
    from .common import make_options

    # -- 1. every input checked before anything is read or written ------------
    options = make_options(args)
    check_compression(args.compression)
    epoch = settings_epoch(args.source_date_epoch)
    tag = _io.check_tag(args.tag)
    destinations = [_io.destination(text, tag) for text in args.output]
    base_location = _io.source(args.base)
    specs = [parse_layer_spec(text) for text in args.layer]
    changes = _changes(args)
    user_annotations = parse_key_value(args.annotation, "--annotation")
    removes = list(args.remove)
    for path in removes:
        if not path.startswith("/") or ".." in path.split("/") or path.strip("/") == "":
            raise InvalidInputError(f"--remove {path!r} must be an absolute path below /")
    docker = args.format == "docker"
    if docker and args.compression == "zstd":
        raise InvalidInputError("--format docker cannot carry zstd layers; use gzip or none")
    if docker and user_annotations:
        raise InvalidInputError("--annotation needs OCI format; Docker manifests have none")
    from ..archive import DockerArchiveLocation

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
        base = resolve_platform(base_location.read(options), options)
        if (isinstance(base, Image) and args.platform and not options.all_platforms
                and base.platform is not None and not base.platform.matches(options.platform)):
            raise InvalidPlatformError(
                f"base {args.base!r} is {base.platform}, not {options.platform}"
            )

    # -- 3. the layers (built once, shared by every platform) --------------------
    settings = BuildSettings(compression=args.compression, epoch=epoch, docker=docker)
    layers, created_by = [], []
    if removes:
        result = build_layer([], settings, removes=removes)
        layers.append(result.layer)
        created_by.append("ociforge remove " + " ".join(removes))
    for spec in specs:
        if spec.as_tar:
            result = layer_from_tar(spec.src, settings)
            created_by.append(f"ociforge add tar {spec.src.name}")
        else:
            result = build_layer([LayerSource(spec.src, spec.dest)], settings)
            created_by.append(f"ociforge add {spec.dest}")
        for warning in result.warnings:
            log.warning("%s", warning)
        layers.append(result.layer)

    # -- 4. the new image(s) ------------------------------------------------------
    base_name = None if isinstance(base_location, Scratch) else str(base_location)

    def finish(image: Image) -> Image:
        base_digest = str(image.digest)
        if args.format is not None:
            image = convert(image, docker=docker)
        image = append_layers(image, layers, created_by=created_by, epoch=epoch)
        image = configure(image, changes)
        image = set_created(image, epoch)
        if image.is_docker:
            return image
        notes = {ANNOTATION_CREATED: rfc3339(epoch)}
        if base_name is not None:
            notes[ANNOTATION_BASE_NAME] = base_name
            notes[ANNOTATION_BASE_DIGEST] = base_digest
        notes.update(user_annotations)
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

