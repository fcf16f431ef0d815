"""``ociforge referrers REF``: artifacts attached to an image (signatures' cousins, reports)."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_command, add_registry_options, emit, make_options, write_stdout_bytes


def register(sub: Any) -> None:
    parser = add_command(
        sub, "referrers", "list the artifacts whose subject is an image (e.g. export reports)",
        "List referrers of the manifest REF names, from the registry's referrers API or the "
        "sha256-<hex> fallback tag (also in OCI layouts). With --fetch DIGEST print the first "
        "blob of that artifact (e.g. the attached export report).",
    )
    parser.add_argument("ref", metavar="REF", help="registry reference or oci:DIR[:TAG]")
    parser.add_argument("--artifact-type", metavar="TYPE", help="only artifacts of this type")
    parser.add_argument("--digest", metavar="DIGEST",
                        help="list referrers of this manifest digest instead of REF's tag")
    parser.add_argument("--fetch", metavar="ARTIFACT",
                        help="print the content of this referrer (by digest) instead of listing")
    add_registry_options(parser, jobs=False, uploads=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...display import human as one_line
    from ...trust.referrers import list_referrers, read_artifact_blob

    options = make_options(args)
    if args.fetch:
        _, data = read_artifact_blob(args.ref, args.fetch, options)
        write_stdout_bytes(data)
        return 0
    subject, found = list_referrers(args.ref, options, artifact_type=args.artifact_type,
                                    digest=args.digest)
    # fields come from the registry: one referrer must stay one line
    lines = [one_line(f"{m.get('digest')} {m.get('artifactType', '-')} {m.get('size')}")
             for m in found]
    human = "\n".join(lines) if lines else f"no referrers for {subject.digest}"
    emit(args, {"subject": str(subject.digest), "referrers": found}, human)
    return 0
