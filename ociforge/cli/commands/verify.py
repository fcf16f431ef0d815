"""``ociforge verify SRC``: recompute every digest and size and check the spec's rules.

Exit 0 when everything holds; exit 1 naming the first offending blob (all
problems are listed with ``--json`` or ``-v``).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from .common import (
    add_command,
    add_platform_option,
    add_registry_options,
    emit,
    fail_with,
    make_options,
)

log = logging.getLogger("ociforge")


def register(sub: Any) -> None:
    parser = add_command(
        sub, "verify", "check every digest, size, diff_id and image-spec rule of an image",
    )
    parser.add_argument("src", metavar="SRC", help="oci:DIR[:TAG], an archive, or REF")
    parser.add_argument("--shallow", action="store_true",
                        help="check documents only, do not read the layers")
    add_platform_option(parser)
    add_registry_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...pipeline.verify import verify_image

    verification = verify_image(args.src, make_options(args), deep=not args.shallow)
    if verification.ok:
        report = verification.report
        emit(args, verification.to_dict(),
             f"verified {verification.digest}: {report.manifests} manifest(s), "
             f"{report.blobs} blob(s), {report.bytes} bytes")
        return 0
    for problem in verification.problems:
        log.info("problem: %s", problem)
    fail_with(args, verification.to_dict())  # --json: the report, with the error
    verification.check()
    return 1
