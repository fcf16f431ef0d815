"""Inspect: an image or index as data (a summary, its manifest, its config or raw bytes).

Without a platform in the options an index is shown as the index it is (as
``skopeo inspect --raw`` does), so the raw bytes hash to the tag's digest;
``Options.platform`` picks one child, and the config view picks the host's.
The manifest and raw views of an OCI layout read only documents, so they also
work when layer blobs are missing or damaged (``verify`` names those).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, TypeAlias, overload

from ..model.image import Image
from ..model.index import Artifact
from ..model.jsonutil import JSONObject
from ..model.selection import platforms_of
from ..options import Options
from ..stores.locations import Location, resolve_platform
from .sources import open_source

InspectView: TypeAlias = Literal["summary", "manifest", "config", "raw"]


@overload
def inspect_image(source: str | Location, options: Options | None = None, *,
                  view: Literal["raw"]) -> bytes: ...


@overload
def inspect_image(source: str | Location, options: Options | None = None, *,
                  view: Literal["summary", "manifest", "config"] = "summary") -> JSONObject: ...


def inspect_image(source: str | Location, options: Options | None = None, *,
                  view: InspectView = "summary") -> JSONObject | bytes:
    """One view of what ``source`` names: see the module docstring for platforms."""
    artifact = read_for_view(source, options, view)
    if view == "raw":
        return artifact.manifest_bytes  # the exact bytes the digest is over
    if view == "manifest":
        return artifact.manifest
    if view == "config" and isinstance(artifact, Image):
        return artifact.config
    return summary(artifact)


def read_for_view(source: str | Location, options: Options | None, view: InspectView
                  ) -> Artifact:
    """The artifact a view shows (an index stays one unless a platform picks a child)."""
    options = options if options is not None else Options()
    location = open_source(source)
    picked = options.picks_platforms
    if not picked and view != "config":
        options = replace(options, all_platforms=True)
    if view in ("manifest", "raw"):
        artifact = location.read_documents(options)
    else:
        artifact = location.read(options)
    if picked:
        return resolve_platform(artifact, options)
    if view == "config" and not isinstance(artifact, Image):
        return resolve_platform(artifact, replace(options, all_platforms=False))
    return artifact


def summary(artifact: Artifact) -> JSONObject:
    """The default view: what a person (or a script) usually wants to know."""
    if not isinstance(artifact, Image):
        return {
            "digest": str(artifact.digest),
            "mediaType": artifact.media_type,
            "size": artifact.size,
            "platforms": [str(platform) for platform in platforms_of(artifact)],
            "annotations": artifact.manifest.get("annotations") or {},
            "manifests": [
                {"digest": str(desc.digest), "mediaType": desc.media_type, "size": desc.size,
                 "platform": str(desc.platform) if desc.platform else None,
                 "annotations": dict(desc.annotations or {})}
                for desc, _ in artifact.children
            ],
        }
    config = artifact.config
    runtime = config.get("config")
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
            **(runtime if isinstance(runtime, dict) else {}),
        },
        "layers": [
            {"digest": str(layer.digest), "mediaType": layer.media_type, "size": layer.size,
             "diff_id": str(layer.diff_id) if layer.diff_id else None}
            for layer in artifact.layers
        ],
        "history": config.get("history") or [],
    }


