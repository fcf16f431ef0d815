"""``ociforge rm LOCATION``: remove a tag from a registry repository or an OCI layout."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_command, add_registry_options, emit, make_options


def register(sub: Any) -> None:
    parser = add_command(
        sub, "rm", "remove a tag from a registry repository or an OCI layout",
        "Remove the tag LOCATION names. A registry deletes the manifest by digest, which "
        "removes every tag naming it: when other tags name the same manifest, rm refuses "
        "(exit 2, naming them) unless --all-tags. On Docker Hub the tag is removed through "
        "Docker Hub's own API with the stored credentials. In an oci:DIR:TAG layout the tag "
        "goes and so do the blobs nothing else in the layout needs. Signatures and referrers "
        "of an image that is gone are removed with it.",
    )
    parser.add_argument("location", metavar="LOCATION",
                        help="HOST/NAME:TAG, HOST/NAME@DIGEST, NAME:TAG (Docker Hub) or "
                        "oci:DIR:TAG")
    parser.add_argument("--all-tags", action="store_true",
                        help="also remove every other tag naming the same manifest")
    add_registry_options(parser, jobs=False, uploads=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...display import plural
    from ...pipeline.manage import removal_dict, remove_tag

    removal = remove_tag(args.location, make_options(args), all_tags=args.all_tags)
    lines = [f"removed {plural(len(removal.tags), 'tag')} ({', '.join(removal.tags)}) "
             f"naming {removal.digest} from {removal.location}"]
    if removal.attachments:
        lines.append(f"  and {plural(len(removal.attachments), 'attachment')} of it: "
                     + ", ".join(removal.attachments))
    if removal.blobs_removed:
        lines.append(f"  freed {plural(removal.blobs_removed, 'blob')}, "
                     f"{plural(removal.bytes_freed, 'byte')}")
    emit(args, removal_dict(removal), "\n".join(lines))
    return 0
