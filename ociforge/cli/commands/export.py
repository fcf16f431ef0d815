"""``ociforge export APP_DIR``: an application folder with ociforge.toml as an image."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import (
    add_command,
    add_image_options,
    add_platform_option,
    add_transfer_options,
    emit,
    make_options,
    track,
)


def register(sub: Any) -> None:
    parser = add_command(
        sub, "export", "export an application folder (ociforge.toml) as a portable image",
        "Export the application described by APP_DIR/ociforge.toml: its base, runtime layers "
        "and config (and with --with-files its project files and table snapshots). License "
        "keys, license-server settings and secrets are kept out by default; a report says "
        "what was dropped and why. Without -o it writes ./NAME.tar (a docker-archive; for "
        "several platforms an oci-archive holding the index).",
    )
    parser.add_argument("app_dir", metavar="APP_DIR", help="folder holding ociforge.toml")
    parser.add_argument("-o", "--output", action="append", default=[], metavar="DEST",
                        help="destination location (repeatable): app.tar, oci:DIR[:TAG], "
                        "oci-archive:FILE, docker-archive:FILE[:NAME:TAG], or a registry "
                        "reference (no host: Docker Hub)")
    parser.add_argument("--with-files", action="store_true",
                        help="also export the project files ([files]) and tables ([[tables]])")
    parser.add_argument("--include-licensed", action="store_true",
                        help="allow exporting a licensed application: one marked licensed = "
                        "true, or holding licensed software (a proprietary package, a "
                        "license-managed product); its license keys and settings are still "
                        "left out")
    parser.add_argument("--allow-env", action="append", default=[], metavar="NAME",
                        help="keep this environment variable even if a rule would drop it "
                        "(repeatable)")
    parser.add_argument("--report", metavar="FILE", help="write the export report (JSON) here")
    add_image_options(parser, "image name for archives and untagged layouts "
                      "(default: [app] name, tag latest)")
    parser.add_argument("--sign", metavar="KEY",
                        help="sign what was written with this private key (cosign-compatible; "
                        "destinations must be oci:DIR or a registry); for several platforms "
                        "the index and each platform's image")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the signing key's password from standard input "
                        "(else OCIFORGE_KEY_PASSWORD)")
    parser.add_argument("--attach-report", action="store_true",
                        help="store the export report as an OCI artifact referring to the image "
                        "(for several platforms: the index)")
    parser.add_argument("--base", metavar="LOCATION",
                        help="use this base instead of [app] base (e.g. busybox:1.36 to get "
                        "a shell; a path is relative to the working directory)")
    parser.add_argument("--sbom", metavar="FILE",
                        help="write an SPDX 2.3 JSON SBOM of the image (its packages and "
                        "licenses) here (needs ociforge[sbom])")
    parser.add_argument("--attach-sbom", action="store_true",
                        help="store the SBOM as an OCI artifact (application/spdx+json) "
                        "referring to the image")
    parser.add_argument("--rootfs", metavar="DIR",
                        help="export what is installed: the changes of this root filesystem "
                        "(/ from inside the running application, or a folder holding one) "
                        "against the base, as one layer on the base's own layers (overrides "
                        "[app] rootfs)")
    parser.add_argument("--compare", choices=("metadata", "content"), default="metadata",
                        help="rootfs: how unchanged files are recognised: by size, mode, owner "
                        "and mtime, hashing only where those cannot decide (default), or by "
                        "hashing every file whose size agrees (content)")
    parser.add_argument("--env-from-pid", type=int, metavar="PID",
                        help="also take the environment of this running process "
                        "(/proc/PID/environ); the license and secret rules drop what they "
                        "always drop, and per-session variables (HOSTNAME, PWD, ...) are left "
                        "out")
    parser.add_argument("--keep-base-layers", action="store_true",
                        help="use the base image's layers as they are, without leaving out "
                        "license and credential files found in them (the report says so)")
    add_platform_option(parser, "platform(s) to build: OS/ARCH[/VARIANT], a comma list "
                        "(an image index, one image each) or 'all' (every platform of the "
                        "base); default [app] platform, else the host's")
    add_transfer_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...app.export import ExportRequest, plan_export
    from ...display import human
    from ...trust.keys import password_from

    request = ExportRequest(
        app_dir=args.app_dir,
        destinations=args.output,
        with_files=args.with_files,
        include_licensed=args.include_licensed,
        allow_env=args.allow_env,
        report_path=args.report,
        compression=args.compression,
        tag=args.tag,
        format=args.format,
        source_date_epoch=args.source_date_epoch,
        sign_key=args.sign,
        key_password=password_from(args.password_stdin) if args.sign else None,
        attach_report=args.attach_report,
        keep_base_layers=args.keep_base_layers,
        base=args.base,
        options=make_options(args),
        sbom_path=args.sbom,
        attach_sbom=args.attach_sbom,
        rootfs=args.rootfs,
        compare=args.compare,
        env_from_pid=args.env_from_pid,
    )
    plan = plan_export(request)
    track(args, plan.outputs)
    outcome = plan.run()
    summary = outcome.report.summary()
    for kind, attachments in (("report", outcome.attached), ("sbom", outcome.attached_sboms)):
        for attached in attachments:
            summary += "\n" + human(f"  attached {kind} {attached['digest'][:19]} to "
                                    f"{attached['location']}")
    if args.sbom:
        summary += "\n" + human(f"  sbom     {args.sbom}")
    for signature in outcome.signatures:
        summary += "\n" + human(f"  signed   {signature['location']} "
                                f"({signature['signature_tag']})")
    if not getattr(args, "quiet", False):
        print(summary, file=sys.stderr)
    emit(args, {"digest": str(outcome.image.digest),
                "mediaType": outcome.image.media_type,
                "platforms": outcome.platform_digests(),
                "destinations": outcome.report.destinations,
                "report_digest": outcome.report.digest(),
                "mode": outcome.report.mode,
                "attached_reports": outcome.attached,
                "attached_sboms": outcome.attached_sboms,
                "signatures": outcome.signatures},
         str(outcome.image.digest))
    return 0
