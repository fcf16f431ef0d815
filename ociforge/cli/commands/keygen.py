"""``ociforge keygen PREFIX``: an ECDSA P-256 key pair for ``sign`` and ``verify-signature``."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_command, emit


def register(sub: Any) -> None:
    parser = add_command(
        sub, "keygen", "create an ECDSA P-256 signing key pair (PREFIX.key, PREFIX.pub)",
        "Write PREFIX.key (PKCS#8 PEM, mode 0600; encrypted when a password is given with "
        "--password-stdin or OCIFORGE_KEY_PASSWORD) and PREFIX.pub (SubjectPublicKeyInfo "
        "PEM, usable as cosign.pub). Existing files are never overwritten.",
    )
    parser.add_argument("prefix", metavar="PREFIX", help="path prefix of the two key files")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the private key's password from standard input")
    parser.add_argument("--no-password", action="store_true",
                        help="write an unencrypted key even if OCIFORGE_KEY_PASSWORD is set")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...trust.keys import password_from, write_key_pair

    password = None if args.no_password else password_from(args.password_stdin)
    paths = write_key_pair(args.prefix, password)
    emit(
        args,
        {"private_key": str(paths.private), "public_key": str(paths.public),
         "encrypted": password is not None},
        f"wrote {paths.private} ({'encrypted' if password else 'unencrypted'}) "
        f"and {paths.public}",
    )
    return 0
