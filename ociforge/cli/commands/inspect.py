"""``ociforge inspect SRC [--config|--manifest|--raw]``: an image as JSON.

The default is a summary (digest, media type, platform, layers, config);
``--manifest`` and ``--config`` print the documents, ``--raw`` the manifest's
exact bytes (as stored, no newline added: ``| sha256sum`` gives the digest).
An index is shown as an index unless ``--platform`` picks one
(``--config`` picks the host's).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .common import add_command, add_platform_option, add_registry_options


def register(sub: Any) -> None:
    parser = add_command(sub, "inspect", "print an image's manifest, config or a summary as JSON")
    parser.add_argument("src", metavar="SRC", help="scratch, oci:DIR[:TAG], an archive, or REF")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--config", action="store_true", help="print the image config")
    what.add_argument("--manifest", action="store_true", help="print the manifest (or index)")
    what.add_argument("--raw", action="store_true", help="print the manifest's exact bytes")
    add_platform_option(parser)
    add_registry_options(parser)
    parser.set_defaults(func=run)


def summary(artifact: Any) -> dict[str, Any]:
    """The default view: what a person (or a script) usually wants to know."""
    from ...model.image import Image

    if not isinstance(artifact, Image):
        return {
            "digest": str(artifact.digest),
            "mediaType": artifact.media_type,
            "size": artifact.size,
            "annotations": artifact.manifest.get("annotations") or {},
            "manifests": [
                {"digest": str(desc.digest), "mediaType": desc.media_type, "size": desc.size,
                 "platform": str(desc.platform) if desc.platform else None,
                 "annotations": dict(desc.annotations or {})}
                for desc, _ in artifact.children
            ],
        }
    config = artifact.config
    return {
        "digest": str(artifact.digest),
        "mediaType": artifact.media_type,
        "size": artifact.size,
        "platform": str(artifact.platform) if artifact.platform else None,
        "created": config.get("created"),
        "annotations": artifact.manifest.get("annotations") or {},
        "config": {
            "digest": str(artifact.config_descriptor.digest),
            "mediaType": artifact.config_descriptor.media_type,
            "size": artifact.config_descriptor.size,
            **(config.get("config") or {}),
        },
        "layers": [
            {"digest": str(layer.digest), "mediaType": layer.media_type, "size": layer.size,
             "diff_id": str(layer.diff_id) if layer.diff_id else None}
            for layer in artifact.layers
        ],
        "history": config.get("history") or [],
    }


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ...model.image import Image
    from ...stores.locations import resolve_platform
    from . import _io
    from .common import make_options

    options = make_options(args)
    source = _io.source(args.src)
    if not args.platform and not args.config:
        # no --platform: a multi-platform tag is shown as the index it is (as skopeo does),
        # so `inspect REF --raw | sha256sum` gives the tag's digest
        options = replace(options, all_platforms=True)
    # --manifest/--raw show a damaged image whose layer blobs are missing (verify names them)
    artifact = source.read_documents(options) if args.manifest or args.raw else source.read(options)
    if args.platform and not options.all_platforms:
        artifact = resolve_platform(artifact, options)
    elif args.config and not isinstance(artifact, Image):
        artifact = resolve_platform(artifact, replace(options, all_platforms=False))
    if args.raw:
        # the exact bytes the digest is over: no decoding, no newline added
        sys.stdout.flush()
        sys.stdout.buffer.write(artifact.manifest_bytes)
        sys.stdout.buffer.flush()
    elif args.manifest:
        print(json.dumps(artifact.manifest, indent=2, sort_keys=True))
    elif args.config and isinstance(artifact, Image):
        print(json.dumps(artifact.config, indent=2, sort_keys=True))
    else:
        print(json.dumps(summary(artifact), indent=2, sort_keys=True))
    return 0
