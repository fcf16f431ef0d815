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


def run(args: argparse.Namespace) -> int:
    from ...errors import InvalidInputError
    from ...model.reference import parse_registry
    from ...remote.auth import Credentials
    from ...remote.client import RegistryClient
    from ...remote.credentials import store
    from .common import make_options

    registry = parse_registry(args.server)
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
