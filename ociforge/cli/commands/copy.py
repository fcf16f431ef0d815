"""``ociforge copy SRC DEST...``: :func:`ociforge.pipeline.copy.plan_copy` from the flags."""

from __future__ import annotations

import argparse
from typing import Any

from .common import (
    add_command,
    add_platform_option,
    add_transfer_options,
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
    parser.add_argument("--with-referrers", action="store_true",
                        help="also copy the image's signatures (sha256-<hex>.sig) and "
                        "attached artifacts (reports, SBOMs); oci:DIR and registries only")
    add_platform_option(parser, "keep one platform of an index (OS/ARCH[/VARIANT]), or a "
                        "comma list of them as a new index (digests unchanged); default: "
                        "the whole index")
    add_transfer_options(parser, keep_pulled_blobs=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...pipeline.copy import plan_copy

    plan = plan_copy(args.src, args.dest, make_options(args), tag=args.tag,
                     with_referrers=args.with_referrers)
    track(args, plan.outputs)
    outcome = plan.run()
    extra: dict[str, Any] = {"source": str(outcome.source)}
    lines = result_lines(outcome.artifact, outcome.results)
    if args.with_referrers:
        from ...display import plural

        extra["attachments"] = [a.to_dict() for a in outcome.attachments]
        for attached in outcome.attachments:
            what = attached.tag or attached.artifact_type or "referrer"
            lines += f"\n  + {attached.digest} {what} -> {attached.location}"
        if not outcome.attachments:
            lines += "\n  (no signatures or referrers to copy)"
        else:
            lines += f"\n  {plural(len(outcome.attachments), 'attachment')} copied"
    emit(args, result_json(outcome.artifact, outcome.results, **extra), lines)
    return 0
