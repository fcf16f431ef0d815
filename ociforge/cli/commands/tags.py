"""``ociforge tags LOCATION``: the tags of a registry repository or an OCI layout."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_command, add_registry_options, emit, make_options


def register(sub: Any) -> None:
    parser = add_command(
        sub, "tags", "list the tags of a registry repository or an OCI layout",
        "Print the tags of the repository LOCATION names (every page of the registry's tag "
        "list is read) or of an oci:DIR layout, one per line, sorted. Signature and referrer "
        "tags (sha256-<hex>.sig, sha256-<hex>) are left out unless --all. With --json: a "
        "JSON array of the tags.",
    )
    parser.add_argument("location", metavar="LOCATION",
                        help="docker://HOST/NAME, HOST/NAME[:TAG] (the tag is ignored), or "
                        "oci:DIR")
    parser.add_argument("--all", action="store_true", dest="attachments",
                        help="also list signature and referrer tags")
    add_registry_options(parser, jobs=False, uploads=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...pipeline.manage import list_tags

    listing = list_tags(args.location, make_options(args), attachments=args.attachments)
    if listing.tags or args.json:  # no tags: no output at all, not an empty line
        emit(args, list(listing.tags), "\n".join(listing.tags))
    return 0
