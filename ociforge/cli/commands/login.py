"""``ociforge login [REGISTRY] -u USER --password-stdin``: check, then store credentials.

The credentials are tried against the registry first (Basic, or a token
request for Bearer registries); only accepted ones are stored, through the
configured credential helper when there is one, else in config.json (written
atomically, mode 0600).  Docker Hub is the default registry.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from .common import add_command, add_registry_options, emit


def register(sub: Any) -> None:
    parser = add_command(sub, "login", "log in to a registry (stores credentials like docker)")
    parser.add_argument("server", metavar="REGISTRY", nargs="?", default="docker.io",
                        help="registry host[:port] (default: Docker Hub)")
    parser.add_argument("-u", "--username", required=True, help="user name")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password or access token from standard input")
    add_registry_options(parser, jobs=False, uploads=False)
    parser.set_defaults(func=run)


def registry_host(text: str) -> str:
    """``https://index.docker.io/v1/`` or ``ghcr.io`` -> a normalised registry host."""
    from ...errors import InvalidReferenceError
    from ...model.reference import Reference, normalize_registry

    host = text.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0]
    if not host:
        raise InvalidReferenceError(f"invalid registry {text!r}")
    # Validate the host with the reference grammar (a registry needs '.' or ':' or localhost).
    probe = host if ("." in host or ":" in host or host == "localhost") else None
    if probe is None:
        raise InvalidReferenceError(f"invalid registry {text!r}: expected host[:port]")
    Reference.parse(f"{probe}/x")
    return normalize_registry(host)


def run(args: argparse.Namespace) -> int:
    from ...errors import InvalidInputError
    from ...remote.auth import Credentials
    from ...remote.client import RegistryClient
    from ...remote.credentials import store
    from .common import make_options

    registry = registry_host(args.server)
    if args.password_stdin:
        secret = sys.stdin.read().rstrip("\r\n")
    elif sys.stdin.isatty():
        secret = getpass.getpass("Password: ")
    else:
        raise InvalidInputError("no password given: use --password-stdin")
    if not secret:
        raise InvalidInputError("the password is empty")
    if not args.username:
        raise InvalidInputError("the user name is empty")
    options = make_options(args)
    client = RegistryClient(registry, options.registry, Credentials(args.username, secret))
    try:
        client.check_login()
    finally:
        client.close()
    where = store(registry, args.username, secret)
    emit(args, {"registry": registry, "username": args.username, "stored_in": where},
         "Login Succeeded")
    return 0
