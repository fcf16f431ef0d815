"""``ociforge keygen PREFIX``: an ECDSA P-256 key pair for ``sign`` and ``verify-signature``."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_command, emit


def register(sub: Any) -> None:
    parser = add_command(
        sub, "keygen", "create an ECDSA P-256 signing key pair (PREFIX.key, PREFIX.pub)",
        "Write PREFIX.key (PKCS#8 PEM, mode 0600, encrypted with a password) and PREFIX.pub "
        "(SubjectPublicKeyInfo PEM, usable as cosign.pub). The password comes from "
        "--password-stdin or OCIFORGE_KEY_PASSWORD, else it is asked twice on the terminal; "
        "--no-password writes an unencrypted key on purpose. Existing files are never "
        "overwritten; missing parent folders are created.",
    )
    parser.add_argument("prefix", metavar="PREFIX", help="path prefix of the two key files")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the private key's password from standard input")
    parser.add_argument("--no-password", action="store_true",
                        help="write an unencrypted key (no prompt; OCIFORGE_KEY_PASSWORD is "
                        "ignored)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...trust.keys import check_key_destination, new_key_password, write_key_pair

    check_key_destination(args.prefix)  # before a password is asked for
    password = new_key_password(args.password_stdin, args.no_password)
    paths = write_key_pair(args.prefix, password)
    emit(
        args,
        {"private_key": str(paths.private), "public_key": str(paths.public),
         "encrypted": password is not None},
        f"wrote {paths.private} ({'encrypted' if password else 'unencrypted'}) "
        f"and {paths.public}",
    )
    return 0
