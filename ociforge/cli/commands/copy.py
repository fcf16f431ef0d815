"""``ociforge copy SRC DEST...``: :func:`ociforge.pipeline.copy.plan_copy` from the flags."""

from __future__ import annotations

import argparse
from typing import Any

from .common import (
    add_cache_options,
    add_command,
    add_platform_option,
    add_progress_option,
    add_registry_options,
    emit,
    make_options,
    result_json,
    result_lines,
    track,
)


def register(sub: Any) -> None:
    parser = add_command(sub, "copy", "copy an image between locations (digests unchanged)")
    parser.add_argument("src", metavar="SRC", help="oci:DIR[:TAG], an archive, or REF")
    parser.add_argument("dest", metavar="DEST", nargs="+", help="destination location(s)")
    parser.add_argument("--tag", metavar="NAME:TAG",
                        help="name recorded in archives (and tag of layouts) without one")
    add_platform_option(parser, "keep one platform of an index (OS/ARCH[/VARIANT]), or a "
                        "comma list of them as a new index (digests unchanged); default: "
                        "the whole index")
    add_registry_options(parser)
    add_cache_options(parser, keep_pulled_blobs=False)
    add_progress_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...pipeline.copy import plan_copy

    plan = plan_copy(args.src, args.dest, make_options(args), tag=args.tag)
    track(args, plan.outputs)
    outcome = plan.run()
    emit(args, result_json(outcome.artifact, outcome.results, source=str(outcome.source)),
         result_lines(outcome.artifact, outcome.results))
    return 0
