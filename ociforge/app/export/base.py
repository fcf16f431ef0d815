"""The base of every platform: read in the result's format, its digest, and its
layers put through the same file rules as the app's own (see ``app/baselayers``)."""

from __future__ import annotations

import dataclasses

from ...errors import InvalidPlatformError
from ...layers.build import BuildSettings
from ...layers.delta import Observe
from ...model.image import Image
from ...model.mutate import convert
from ...model.platform import Platform
from ...progress.events import Progress
from ...stores.locations import Scratch, resolve_platform
from ..baselayers import BaseLayerScan, RewriteSettings, filter_base_layers
from ..report import LayerEntry, Report, left_out_entry
from .api import ExportPlan, ExportRequest


def base_images(plan: ExportPlan, request: ExportRequest
                ) -> list[tuple[Platform, Image, str | None]]:
    """(platform, base image in the result's format, its digest or None for scratch) for
    every platform, in the order the platforms were given."""
    scratch = plan.base.kind == "scratch"
    found: list[tuple[Platform, Image, str | None]] = []
    if len(plan.platforms) == 1:
        base = resolve_platform(plan.base_artifact or plan.base.read(plan.options),
                                plan.options)
        assert isinstance(base, Image)
        found.append((plan.platform, base, None if scratch else str(base.digest)))
    else:
        every = plan.base_artifact
        if every is None and not scratch:
            every = plan.base.read(dataclasses.replace(plan.options, all_platforms=True))
            plan.base_artifact = every
        for platform in plan.platforms:
            one = dataclasses.replace(plan.options, platform=platform, all_platforms=False)
            try:
                base = resolve_platform(every if every is not None else Scratch().read(one),
                                        one)
            except InvalidPlatformError as exc:
                raise InvalidPlatformError(f"base {plan.spec.base!r}: {exc}") from None
            assert isinstance(base, Image)
            found.append((platform, base, None if scratch else str(base.digest)))
    converted = []
    for platform, base, digest in found:
        if request.format is not None:
            base = convert(base, docker=request.format == "docker")
        if base.is_docker and request.compression == "zstd":
            base = convert(base, docker=False)
        converted.append((platform, base, digest))
    if len({base.is_docker for _, base, _ in converted}) > 1:
        # one index holds one media-type family: Docker children of a mixed base become OCI
        converted = [(platform, convert(base, docker=False) if base.is_docker else base,
                      digest) for platform, base, digest in converted]
    return converted


def base_index_digest(plan: ExportPlan) -> str | None:
    """The digest of the base as named (its index, for a multi-platform base); None for
    scratch."""
    if plan.base.kind == "scratch":
        return None
    every = plan.base_artifact
    if every is None:
        every = plan.base.read_documents(dataclasses.replace(plan.options, all_platforms=True))
        plan.base_artifact = every
    return str(every.digest)


def filter_base(base: Image, settings: BuildSettings, plan: ExportPlan, request: ExportRequest,
                report: Report, used: set[str],
                scans: dict[tuple[str, str], BaseLayerScan] | None = None,
                observe: Observe | None = None) -> Image:
    """Base layers through the file rules: clean ones as they are, others rewritten.
    ``scans`` holds the scans of layers another platform's base has too (read once)."""
    if request.keep_base_layers:
        report.base_scanned = False
        found = [BaseLayerScan(i, layer, layer, scanned=False)
                 for i, layer in enumerate(base.layers)]
        if found:
            report.warnings.append("base layers were not scanned (--keep-base-layers): license "
                                   "or credential files in them ship as they are")
    else:
        base, found = filter_base_layers(
            base, plan.policy, RewriteSettings(settings.compression, settings.docker,
                                               settings.threads), cache=plan.cache,
            shared=scans, progress=Progress.of(plan.options), observe=observe)
    for scan in found:
        layer = scan.layer
        if not scan.scanned and not request.keep_base_layers:
            report.warnings.append(f"base layer {scan.index} was not scanned: "
                                   f"{layer.media_type} is a foreign or unknown layer type")
        report.layers.append(LayerEntry.of(
            "base", plan.spec.base, layer, scanned=scan.scanned,
            original=scan.original if scan.rewritten else None))
        for item in scan.left_out:
            used.add(item.rule)
            report.left_out_files.append({**left_out_entry(item.path, item.rule, "base"),
                                          "base_layer": scan.index})
        report.warnings += [f"base layer {scan.index}: {warning}" for warning in scan.warnings]
    return base
