"""``ociforge inspect SRC [--config|--manifest|--raw]``: an image as JSON.

The default is a summary (digest, media type, platform, layers, config);
``--manifest`` and ``--config`` print the documents, ``--raw`` the manifest's
exact bytes (as stored, no newline added: ``| sha256sum`` gives the digest).
An index is shown as an index unless ``--platform`` picks one
(``--config`` picks the host's).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Literal

from .common import (
    add_command,
    add_platform_option,
    add_registry_options,
    make_options,
    write_stdout_bytes,
)


def register(sub: Any) -> None:
    parser = add_command(sub, "inspect", "print an image's manifest, config or a summary as JSON")
    parser.add_argument("src", metavar="SRC", help="scratch, oci:DIR[:TAG], an archive, or REF")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--config", action="store_true", help="print the image config")
    what.add_argument("--manifest", action="store_true", help="print the manifest (or index)")
    what.add_argument("--raw", action="store_true", help="print the manifest's exact bytes")
    add_platform_option(parser)
    add_registry_options(parser, jobs=False, uploads=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...pipeline.inspect import inspect_image

    options = make_options(args)
    if args.raw:
        # the exact bytes the digest is over
        write_stdout_bytes(inspect_image(args.src, options, view="raw"))
        return 0
    view: Literal["summary", "manifest", "config"] = (
        "manifest" if args.manifest else "config" if args.config else "summary")
    print(json.dumps(inspect_image(args.src, options, view=view), indent=2, sort_keys=True))
    return 0
