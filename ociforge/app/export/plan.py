"""Phase one: every input checked before anything is written.

ociforge.toml, the licensed flag, compression and format, names, destinations,
the report and SBOM paths, the signing key, database connections: bad input
exits 2 with nothing written; then push access to every registry destination
(exit 1, nothing written anywhere).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ...errors import InvalidInputError
from ...fsutil import check_writable_destination
from ...layers.build import settings_epoch
from ...layers.compress import check_compression
from ...layers.delta import check_compare
from ...model.platform import Platform
from ...pipeline.outputs import Outputs
from ...stores.locations import parse_location
from ..policy import Policy
from ..spec import AppSpec, load_spec
from .api import ExportPlan, ExportRequest
from .environment import app_environment, check_allow_env
from .platforms import ROOTFS_PLATFORMS, choose_platforms, several_asked
from .ships import check_sbom
from .tablelayers import check_tables

LICENSED_REFUSAL = (
    "application {name!r} is marked licensed = true: it needs a license to run, and its "
    "license keys and license-server settings are always left out (bring your own license). "
    "Export it only if the recipient may receive the software itself: rerun with "
    "--include-licensed"
)


def plan_export(request: ExportRequest) -> ExportPlan:
    """Check every input (exit 2, nothing written), then push access to every registry
    destination (exit 1, nothing written anywhere)."""
    spec = load_spec(request.app_dir, rootfs=request.rootfs)
    check_compare(request.compare)
    if request.base is not None:
        # a location from the command line: a relative path is relative to where we run
        base = parse_location(request.base, role="source")
        base.check_source()
        spec = dataclasses.replace(spec, base=request.base)
    else:
        base = parse_location(spec.base, role="source", base_dir=spec.root)
    if spec.licensed and not request.include_licensed:
        raise InvalidInputError(LICENSED_REFUSAL.format(name=spec.name))
    check_compression(request.compression)
    if request.format not in (None, "oci", "docker"):
        raise InvalidInputError(f"--format must be oci or docker, not {request.format!r}")
    if request.format == "docker" and request.compression == "zstd":
        raise InvalidInputError("Docker media types have no zstd layers; use --format oci")
    epoch = settings_epoch(request.source_date_epoch, request.options.source_date_epoch)
    check_allow_env(request.allow_env)
    if spec.rootfs is not None and several_asked(spec, request.options):
        raise InvalidInputError(ROOTFS_PLATFORMS)
    platforms, base_artifact = choose_platforms(spec, request, base)
    if spec.rootfs is not None and len(platforms) > 1:
        raise InvalidInputError(ROOTFS_PLATFORMS)
    for platform in platforms:  # a per-platform folder missing for one of them: exit 2
        for entry in (*spec.layers, *((spec.files,) if spec.files and request.with_files
                                      else ())):
            entry.for_platform(platform)
    options = dataclasses.replace(request.options, platform=platforms[0], platforms=(),
                                  all_platforms=False)
    outputs = _outputs(spec, request, platforms)
    outputs.check_offline(options)
    check_sbom(request)
    if request.sign_key or request.attach_report or request.attach_sbom:
        from ...trust.sign import check_signable

        for location in outputs:
            check_signable(location)
    if request.sign_key:
        from ...trust.keys import load_private_key

        load_private_key(request.sign_key, request.key_password)  # a bad key fails up front
    if request.report_path:
        check_writable_destination(request.report_path, "--report")
    env_layers, env_dropped = app_environment(spec, request.env_from_pid)
    if request.with_files:
        check_tables(spec)
    policy = Policy.for_app(spec.licenses, spec.secrets, request.allow_env)
    outputs.check_push_access(options)
    return ExportPlan(spec, outputs, platforms, options, epoch, env_layers, policy, base,
                      request, tuple(dict.fromkeys(request.allow_env)),
                      base_artifact=base_artifact, env_dropped=env_dropped)


def _image_name(spec: AppSpec, tag: str | None) -> str:
    if tag is None:
        return f"{spec.name}:latest"
    from ...stores.archive import ImageName

    ImageName.parse(tag)  # validates NAME[:TAG]
    return tag if ":" in tag.rsplit("/", 1)[-1] else f"{tag}:latest"


def _outputs(spec: AppSpec, request: ExportRequest, platforms: Sequence[Platform]
             ) -> Outputs:
    """The destinations, named after the app unless --tag.  Default ./<name>.tar: a
    docker archive for one platform, an OCI archive holding the index for several (a
    docker archive holds one platform, so it is refused then, naming what can)."""
    last = spec.name.rsplit("/", 1)[-1]
    several = len(platforms) > 1
    texts = list(request.destinations) or [f"oci-archive:./{last}.tar" if several
                                           else f"{last}.tar"]
    outputs = Outputs.parse(texts, default_name=_image_name(spec, request.tag),
                            report=request.report_path,
                            others=[("--sbom", request.sbom_path)] if request.sbom_path else [])
    if several:
        for location in outputs:
            if location.kind == "docker-archive":
                raise InvalidInputError(
                    f"{location}: a docker archive holds one platform, and this export "
                    f"builds {len(platforms)} ({', '.join(str(p) for p in platforms)}); write "
                    "the index to oci-archive:FILE, oci:DIR or a registry, or export one "
                    "platform with --platform OS/ARCH")
    outputs.check_compression(request.compression)
    return outputs
