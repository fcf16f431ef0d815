"""``ociforge verify SRC``: recompute every digest and size and check the spec's rules.

Exit 0 when everything holds; exit 1 naming the first offending blob (all
problems are listed with ``--json`` or ``-v``).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from .common import add_command, add_platform_option, add_registry_options, emit

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
    from ...errors import InvalidInputError, OperationError, SelectionError, ValidationError
    from ...stores.locations import resolve_platform
    from ...stores.validate import raise_for, verify_artifact
    from . import _io
    from .common import make_options

    options = make_options(args)
    source = _io.source(args.src)
    try:
        try:
            artifact = source.read(options)
        except SelectionError:
            raise  # no tag / an unknown tag: the user must say which image (exit 2)
        except InvalidInputError as exc:
            # The location was fine; what it holds is not: that is a failed check (exit 1).
            raise ValidationError(f"{source}: {exc}") from None
    except OperationError as exc:
        # what could not even be read (a missing child manifest) is a problem to report too
        if getattr(args, "json", False):
            known = source.named_digest()
            emit(args, {"digest": str(known) if known else None, "ok": False, "manifests": 0,
                        "blobs": 0, "bytes": 0,
                        "problems": [{"where": str(source), "message": str(exc)}]}, "")
        raise
    if args.platform and not options.all_platforms:
        artifact = resolve_platform(artifact, options)
    report = verify_artifact(artifact, deep=not args.shallow)
    result = {
        "digest": str(artifact.digest),
        "ok": report.ok,
        "manifests": report.manifests,
        "blobs": report.blobs,
        "bytes": report.bytes,
        "problems": [{"where": p.where, "message": p.message} for p in report.problems],
    }
    if report.ok:
        emit(args, result, f"verified {artifact.digest}: {report.manifests} manifest(s), "
                           f"{report.blobs} blob(s), {report.bytes} bytes")
        return 0
    for problem in report.problems:
        log.info("problem: %s", problem)
    if getattr(args, "json", False):
        emit(args, result, "")
    raise_for(report)
    return 1
