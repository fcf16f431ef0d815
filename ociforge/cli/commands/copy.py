"""``ociforge copy SRC DEST``: move an image between locations, digests unchanged.

Raw manifest and config bytes are written as read, so the digest at DEST is the
digest at SRC.  An index is resolved to one platform (``--platform``, default
the host's) unless ``--platform all`` keeps it whole.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_cache_options, add_command, add_platform_option, add_registry_options, emit


def register(sub: Any) -> None:
    parser = add_command(sub, "copy", "copy an image between locations (digests unchanged)")
    parser.add_argument("src", metavar="SRC", help="oci:DIR[:TAG], an archive, or REF")
    parser.add_argument("dest", metavar="DEST", nargs="+", help="destination location(s)")
    parser.add_argument("--tag", metavar="NAME:TAG",
                        help="name recorded in archives (and tag of layouts) without one")
    add_platform_option(parser)
    add_registry_options(parser)
    add_cache_options(parser, keep_pulled_blobs=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...stores.locations import resolve_platform
    from . import _io
    from .common import make_options

    options = make_options(args)
    tag = _io.check_tag(args.tag)
    destinations = [_io.destination(text, tag) for text in args.dest]
    _io.check_distinct_outputs(destinations)
    _io.check_offline(destinations, options)
    source = _io.source(args.src)
    artifact = resolve_platform(source.read(options), options)
    results = _io.write_all(artifact, destinations, options)
    emit(args, _io.result_json(artifact, results, source=str(source)),
         _io.human_lines(artifact, results))
    return 0
