"""``ociforge verify SRC``: recompute every digest and size and check the spec's rules.

Exit 0 when everything holds; exit 1 naming the first offending blob (all
problems are listed with ``--json`` or ``-v``).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ...display import plural
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
    parser.add_argument("--report", metavar="FILE",
                        help="also check that this export report describes the image (its "
                        "report_digest, the image's report label, digest, platform, layers)")
    add_platform_option(parser)
    add_registry_options(parser, uploads=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...errors import ValidationError
    from ...pipeline.verify import verify_image

    report = None
    if args.report:
        from ...app.reportcheck import load_report

        report = load_report(args.report)  # bad input before anything is read
    options = make_options(args)
    verification = verify_image(args.src, options, deep=not args.shallow)
    result = verification.to_dict()
    check = None
    if report is not None and verification.artifact is not None:
        check = _check_report(verification.artifact, report, args.report, options)
        result["report"] = check.to_dict()
        result["ok"] = verification.ok and check.ok
    if verification.ok and (check is None or check.ok):
        counts = verification.report
        line = (f"verified {verification.digest}: {plural(counts.manifests, 'manifest')}, "
                f"{plural(counts.blobs, 'blob')}, {plural(counts.bytes, 'byte')}")
        if check is not None:
            line += f"\nreport {args.report} matches ({check.report_digest})"
        emit(args, result, line)
        return 0
    for problem in verification.problems:
        log.info("problem: %s", problem)
    for text in check.problems if check is not None else []:
        log.info("report problem: %s", text)
    fail_with(args, result)  # --json: the report, with the error
    verification.check()
    assert check is not None
    raise ValidationError(f"--report {args.report}: {check.problems[0]}"
                          + (f" (and {plural(len(check.problems) - 1, 'more problem')})"
                             if len(check.problems) > 1 else ""))


def _check_report(artifact: Any, report: dict[str, Any], path: str, options: Any) -> Any:
    """The report against the image it describes (in an index: the report's platform)."""
    from dataclasses import replace

    from ...app.reportcheck import check_report
    from ...model.image import Image
    from ...model.platform import Platform
    from ...stores.locations import resolve_platform

    image = artifact
    if not isinstance(image, Image):
        wanted = report.get("platform")
        platform = Platform.parse(wanted) if isinstance(wanted, str) else options.platform
        image = resolve_platform(artifact, replace(options, platform=platform,
                                                   all_platforms=False))
    return check_report(image, report, path)
