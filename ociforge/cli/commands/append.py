"""``ociforge append BASE -o DEST [--layer SRC[:PATH]]... [config options]``.

Parses the flags into an :class:`ociforge.pipeline.append.AppendRequest` and
prints the outcome; the pipeline (checks, layers, format rules, writes) is the
library's.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from .common import (
    add_command,
    add_image_options,
    add_platform_option,
    add_transfer_options,
    emit,
    make_options,
    parse_key_value,
    result_json,
    result_lines,
    track,
)


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
    parser.add_argument("--env", action="append", default=[], metavar="K=V",
                        help="set an environment variable (repeatable)")
    parser.add_argument("--entrypoint", metavar="ARGS",
                        help="JSON array or shell-split string ('' clears it)")
    parser.add_argument("--cmd", metavar="ARGS", help="JSON array or shell-split string")
    parser.add_argument("--workdir", metavar="DIR", help="working directory of the process")
    parser.add_argument("--user", metavar="USER", help="user (and group) of the process")
    parser.add_argument("--label", action="append", default=[], metavar="K=V",
                        help="config label (repeatable)")
    parser.add_argument("--expose", action="append", default=[], metavar="PORT[/PROTO]",
                        help="exposed port, 8080 meaning 8080/tcp (repeatable)")
    parser.add_argument("--volume", action="append", default=[], metavar="PATH",
                        help="volume mount point (repeatable)")
    parser.add_argument("--stop-signal", metavar="SIGNAL",
                        help="signal that stops the container (SIGTERM, 15, ...)")
    parser.add_argument("--annotation", action="append", default=[], metavar="K=V",
                        help="manifest annotation (OCI format only; wins over the ones "
                             "ociforge derives)")
    parser.add_argument("--source", metavar="URL",
                        help="where the image's source lives: the "
                             "org.opencontainers.image.source annotation (OCI format only)")
    add_platform_option(parser, "the platform to build on scratch or to pick from an index "
                        "base (default: the host's); a comma list, or 'all', appends to "
                        "those platforms and writes an index of exactly them")
    parser.add_argument("--remove", action="append", default=[], metavar="PATH",
                        help="hide PATH of a lower layer (a whiteout)")
    add_image_options(parser, "name recorded in archives and the tag in layouts without one")
    add_transfer_options(parser)
    parser.set_defaults(func=run)


def parse_command(text: str | None, what: str) -> list[str] | None:
    """A JSON array of strings, or a shell-split string; None when not given."""
    from ...errors import InvalidInputError

    if text is None:
        return None
    stripped = text.strip()
    if stripped.startswith("["):
        from ...model.jsonutil import loads

        value = loads(stripped, what)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInputError(f"{what} must be a JSON array of strings")
        return value
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise InvalidInputError(f"{what} cannot be split into words: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from ...model.mutate import ConfigChanges
    from ...pipeline.append import AppendRequest, plan_append

    request = AppendRequest(
        base=args.base,
        destinations=args.output,
        layers=args.layer,
        changes=ConfigChanges(
            env=parse_key_value(args.env, "--env"),
            entrypoint=parse_command(args.entrypoint, "--entrypoint"),
            cmd=parse_command(args.cmd, "--cmd"),
            workdir=args.workdir,
            user=args.user,
            labels=parse_key_value(args.label, "--label"),
            exposed_ports=list(args.expose),
            volumes=list(args.volume),
            stop_signal=args.stop_signal,
        ),
        annotations=parse_key_value(args.annotation, "--annotation"),
        source=args.source,
        remove=args.remove,
        compression=args.compression,
        format=args.format,
        tag=args.tag,
        source_date_epoch=args.source_date_epoch,
        options=make_options(args),
    )
    plan = plan_append(request)
    track(args, plan.outputs)
    outcome = plan.run()
    layers = [
        {"digest": str(layer.digest), "diff_id": str(layer.diff_id), "size": layer.size,
         "mediaType": layer.media_type}
        for layer in outcome.layers
    ]
    emit(args, result_json(outcome.artifact, outcome.results, layers=layers),
         result_lines(outcome.artifact, outcome.results))
    return 0
