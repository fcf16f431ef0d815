"""Which platforms an export builds: ``--platform`` (one, a list, or all), else
``[app] platform``, else the host's; ``all`` reads the base to find them."""

from __future__ import annotations

import dataclasses

from ...errors import InvalidPlatformError
from ...model.image import Image
from ...model.index import Artifact
from ...model.platform import ALL_PLATFORMS, Platform, parse_platforms
from ...model.selection import platforms_of
from ...options import Options
from ...stores.locations import Location
from ..spec import AppSpec
from .api import ExportRequest

ROOTFS_PLATFORMS = ("a rootfs holds one platform's files: export it for one platform "
                    "(--platform OS/ARCH), not several or all")


def several_asked(spec: AppSpec, options: Options) -> bool:
    """Several platforms (or all) asked for, by --platform or else by [app] platform."""
    if options.all_platforms or len(options.platforms) > 1:
        return True
    if options.platforms or options.platform is not None or spec.platform is None:
        return False
    return spec.platform.strip().lower() == ALL_PLATFORMS or "," in spec.platform


def choose_platforms(spec: AppSpec, request: ExportRequest, base: Location
                     ) -> tuple[tuple[Platform, ...], Artifact | None]:
    """The platforms to build, in the order given: ``--platform`` (one, a list, or all),
    else ``[app] platform``, else the host's; and for ``all`` the base read to find
    them (every platform of its index; a single image gives its own)."""
    options = request.options
    if options.all_platforms:
        text: str | None = ALL_PLATFORMS
    elif options.platforms:
        return tuple(options.platforms), None
    elif options.platform is not None:
        return (options.platform,), None
    else:
        text = spec.platform
    if text is None:
        return (Platform.host(),), None
    if text != ALL_PLATFORMS:
        return parse_platforms(text), None
    if base.kind == "scratch":
        raise InvalidPlatformError(
            "platform 'all' means every platform of the base, and scratch has none (it "
            "serves any): name them, e.g. --platform linux/amd64,linux/arm64")
    artifact = base.read(dataclasses.replace(options, platform=None, platforms=(),
                                             all_platforms=True))
    if isinstance(artifact, Image):
        return ((artifact.platform or Platform.host()).normalized(),), artifact
    # normalised as a --platform list is, so that {variant} means the same either way
    found = [platform.normalized() for platform in platforms_of(artifact)]
    if not found:
        raise InvalidPlatformError(f"base {spec.base!r} is an index with no platform images")
    return tuple(found), artifact
