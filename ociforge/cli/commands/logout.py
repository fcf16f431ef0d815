"""``ociforge logout [REGISTRY]``: remove stored credentials (helper or config.json)."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_command, emit


def register(sub: Any) -> None:
    parser = add_command(sub, "logout", "remove stored credentials for a registry")
    parser.add_argument("server", metavar="REGISTRY", nargs="?", default="docker.io",
                        help="registry host[:port] (default: Docker Hub)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...model.reference import parse_registry
    from ...remote.credentials import erase

    registry = parse_registry(args.server)
    removed = erase(registry)
    human = (f"Removing login credentials for {registry}" if removed
             else f"Not logged in to {registry}")
    emit(args, {"registry": registry, "removed": removed}, human)
    return 0
