"""``ociforge sign REF --key KEY``: a cosign-compatible signature stored next to the image."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_command, add_registry_options, emit, make_options


def register(sub: Any) -> None:
    parser = add_command(
        sub, "sign", "sign an image the way `cosign sign --key` does (no transparency log)",
        "Sign the manifest REF names (a registry reference or oci:DIR[:TAG]) and store the "
        "signature under the tag sha256-<hex>.sig in the same repository or layout; signing "
        "again adds a signature. Verify with `ociforge verify-signature` or "
        "`cosign verify --key KEY.pub --insecure-ignore-tlog=true`.",
    )
    parser.add_argument("ref", metavar="REF",
                        help="image to sign: registry reference or oci:DIR[:TAG]")
    parser.add_argument("--key", required=True, metavar="KEY", help="private key (PEM) from keygen")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the key's password from standard input "
                             "(else OCIFORGE_KEY_PASSWORD)")
    parser.add_argument("--digest", metavar="DIGEST",
                        help="sign this manifest digest instead of resolving REF's tag")
    parser.add_argument("--identity", metavar="NAME",
                        help="docker-reference written in the payload (default: REF's repository)")
    add_registry_options(parser, jobs=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...display import plural
    from ...trust.keys import password_from
    from ...trust.sign import sign_location

    options = make_options(args)
    info = sign_location(args.ref, args.key, password_from(args.password_stdin), options,
                         digest=args.digest, identity=args.identity)
    verb = "signed" if info.added else "already signed (same signature)"
    emit(args, info.to_dict(),
         f"{verb} {info.image_digest} in {info.location}: {info.signature_tag} "
         f"holds {plural(info.signatures, 'signature')}")
    return 0
