"""``ociforge verify-signature REF --key PUB``: exit 0 only if a signature checks out."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_command, add_registry_options, emit, fail_with, make_options


def register(sub: Any) -> None:
    parser = add_command(
        sub, "verify-signature", "verify an image's cosign-style signatures against a public key",
        "Exit 0 when at least one signature in sha256-<hex>.sig verifies against the key AND "
        "its payload names the image's manifest digest; exit 1 naming the reason otherwise.",
    )
    parser.add_argument("ref", metavar="REF", help="registry reference or oci:DIR[:TAG]")
    parser.add_argument("--key", required=True, metavar="PUB",
                        help="public key (PEM, e.g. PREFIX.pub or cosign.pub)")
    parser.add_argument("--digest", metavar="DIGEST",
                        help="verify this manifest digest instead of resolving REF's tag")
    add_registry_options(parser, jobs=False, uploads=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...display import plural
    from ...errors import OciforgeError
    from ...trust.sign import SignatureVerificationError, verify_location

    options = make_options(args)
    try:
        verified = verify_location(args.ref, args.key, options, digest=args.digest)
    except SignatureVerificationError as exc:
        # scripts read .ok; the error object says why, the exit code stays the error's
        fail_with(args, {"ok": False, "digest": exc.image_digest, "signatures": []})
        raise
    except OciforgeError:
        fail_with(args, {"ok": False, "digest": None, "signatures": []})
        raise
    digest = verified[0].manifest_digest
    emit(
        args,
        {"ok": True, "digest": digest,
         "signatures": [{"layer": v.layer_digest, "identity": v.identity} for v in verified]},
        f"verified {plural(len(verified), 'signature')} on {digest}",
    )
    return 0
