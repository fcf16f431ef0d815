"""``ociforge diff A B``: what changed between two images (layers, files, config)."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_command, add_platform_option, add_registry_options, emit, make_options


def register(sub: Any) -> None:
    parser = add_command(
        sub, "diff", "compare two images: layers, files and runtime config",
        "Compare image A (e.g. the last export) with image B: layers kept, added and removed "
        "(by digest, and by diff_id for recompressed layers); files added, removed and "
        "changed (by content digest, symlink target, mode, owner; whiteouts applied; each "
        "layer is read once); and changes of env, entrypoint, cmd, workdir, user, labels, "
        "exposed ports, volumes and stop signal. Exit 0 whether or not they differ.",
    )
    parser.add_argument("a", metavar="A", help="the old image: oci:DIR[:TAG], an archive, or REF")
    parser.add_argument("b", metavar="B", help="the new image")
    parser.add_argument("--no-files", action="store_true",
                        help="compare layers and config only (no layer is read)")
    add_platform_option(parser, "the platform to compare where A or B is an index "
                        "(OS/ARCH[/VARIANT]; default: the host's)")
    add_registry_options(parser, uploads=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...errors import InvalidInputError
    from ...pipeline.diff import diff_images, summary_lines

    platform = getattr(args, "platform", None) or ""
    if platform == "all" or "," in platform:
        raise InvalidInputError("diff compares one image of each side; give --platform OS/ARCH")
    result = diff_images(args.a, args.b, make_options(args), files=not args.no_files)
    emit(args, result.to_dict(), "\n".join(summary_lines(result)))
    return 0
