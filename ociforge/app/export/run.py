"""Phase two: assemble every platform's image (base, layers, config, report
label), make an index of several, write every destination, then the report,
SBOM, referrers and signatures."""

from __future__ import annotations

from typing import cast

from ...cache.store import Cache
from ...layers.build import BuildSettings
from ...model.annotations import ANNOTATION_TITLE
from ...model.image import Image
from ...model.index import Artifact, build_index
from ...model.jsonutil import JSONObject
from ...model.mutate import (
    ConfigChanges,
    annotate,
    append_layers,
    configure,
    drop_annotations,
    redact_config,
    set_created,
)
from ...pipeline.append import base_annotations, created_annotation, derived_annotations
from ...pipeline.outputs import result_entry
from ..baselayers import BaseLayerScan
from ..redact import history_scrubber
from ..report import REPORT_LABEL, LayerEntry, Report, left_out_entry
from ..rootfs import ENV_RULES, LIVE_RULES, BaseRead, base_inventory
from .api import ExportOutcome, ExportPlan, ExportRequest
from .attach import attach_and_sign
from .base import base_images, base_index_digest, filter_base
from .built import Built, PlatformImage
from .environment import config_changes
from .layers import build_layers, workspace_of
from .plan import plan_export
from .rootfslayer import rootfs_layer
from .ships import platform_inventories, write_sbom


def export_app(request: ExportRequest) -> ExportOutcome:
    """Check, assemble and write: ``plan_export(request).run()``."""
    return plan_export(request).run()


def assemble(plan: ExportPlan, request: ExportRequest) -> ExportOutcome:
    """Phase two: every platform's image from its base and the layers, the report and
    config, then the writes (see the package docstring for the order)."""
    spec = plan.spec
    plan.cache = Cache.open(plan.options.cache)
    bases = base_images(plan, request)
    # normalize_modes: the checkout's umask must not change the digest (docs/export.md)
    settings = BuildSettings(compression=request.compression, epoch=plan.epoch,
                             docker=bases[0][1].is_docker, normalize_modes=True)
    scans: dict[tuple[str, str], BaseLayerScan] = {}   # base layers two platforms share
    children: list[PlatformImage] = []
    base_read = None if spec.rootfs is None else \
        BaseRead(plan.cache, bases[0][1].layers, spec.rootfs, request.compare)
    for platform, base, base_digest in bases:
        report = Report(app=spec.name, mode="app+files" if request.with_files else "app",
                        base_reference=str(spec.base), base_digest=base_digest,
                        platform=str(platform), licensed=spec.licensed)
        child = PlatformImage(platform, base, base_digest, report)
        child.base = filter_base(base, settings, plan, request, report, child.used, scans,
                                 base_read.observe if base_read is not None else None)
        children.append(child)
    layers = build_layers(plan, request, settings, [child.platform for child in children])
    if base_read is not None:               # a rootfs: one platform (phase one made sure)
        child = children[0]
        child.taker = base_inventory(bases[0][1], child.base)
        layers[0].insert(0, rootfs_layer(plan, request, bases[0][1], child,
                                         workspace_of(spec), settings, base_read))
    for child, built in zip(children, layers, strict=True):
        _add_layers(child, built, plan.epoch)
    platform_inventories(children, plan, request)
    configs = []
    for child in children:
        assert child.image is not None
        changes, dropped_values = config_changes(child.image, plan, child.report, child.used)
        child.report.rules = _rules(plan, child.used)
        configs.append((changes, dropped_values))
    report = children[0].report if len(children) == 1 else Report.combine(
        [child.report for child in children], base_digest=base_index_digest(plan))
    images = [_finish(child, changes, dropped, report.digest(), plan, request)
              for child, (changes, dropped) in zip(children, configs, strict=True)]
    artifact: Artifact = images[0]
    if len(images) > 1:
        docker = images[0].is_docker
        notes = None if docker else _own_annotations(plan, request, base_index_digest(plan),
                                                     report.digest())
        artifact = build_index([(image, None) for image in images], docker=docker,
                               annotations=notes)
    results = plan.outputs.write(artifact, plan.options)
    report.image_digest = str(artifact.digest)
    report.media_type = artifact.media_type
    report.destinations = [result_entry(result) for result in results]
    outcome = ExportOutcome(artifact, report, results,
                            inventory=children[0].inventory if len(children) == 1 else None,
                            images=images,
                            inventories=[child.inventory for child in children
                                         if child.inventory is not None],
                            platforms=[child.platform for child in children])
    if len(images) > 1:
        report.manifests = outcome.platform_digests()
    if request.report_path:
        from ...fsutil import write_output_bytes

        write_output_bytes(request.report_path, report.to_json().encode(), what="--report")
    write_sbom(outcome, plan, request)
    attach_and_sign(outcome, plan, request)
    return outcome



def _add_layers(child: PlatformImage, built: list[Built], epoch: int) -> None:
    """The platform's layers on its base, and in its report: tables, layers, warnings
    and the files each walk left out."""
    report = child.report
    for entry in built:
        if entry.table is not None:
            report.tables.append(cast(JSONObject, entry.table["table"]))
            report.warnings += [w for w in cast(list[str], entry.table["warnings"])
                                if w not in report.warnings]
    for entry in built:
        layer = entry.result.layer
        if entry.rootfs is not None:
            report.rootfs = entry.rootfs
        report.layers.append(LayerEntry.of(entry.role, entry.source, layer))
        report.warnings += sorted(entry.result.warnings)  # walk order varies by machine
        for image_path, rule in entry.left_out:
            child.used.add(rule)
            report.left_out_files.append(left_out_entry(image_path, rule, entry.role))
    report.left_out_files.sort(
        key=lambda item: (item["path"], item["layer"], item.get("base_layer", -1)))
    child.image = append_layers(child.base, [entry.result.layer for entry in built],
                                created_by=[f"ociforge export: {entry.role} {entry.source}"
                                            for entry in built], epoch=epoch)

def _finish(child: PlatformImage, changes: ConfigChanges, dropped_values: set[str],
            report_digest: str, plan: ExportPlan, request: ExportRequest) -> Image:
    """The platform's final image: config, the report label, history scrubbed, created,
    and (OCI) its own annotations."""
    assert child.image is not None
    # The report is complete except for where the image goes: its digest labels the image.
    changes.labels = {**changes.labels, REPORT_LABEL: report_digest}
    image = configure(child.image, changes)
    # Build leftovers (container_config repeats the build's Env and Cmd) go; history
    # text keeps its entries (aligned with the layers) but not the dropped values.
    image = redact_config(image, history_scrubber(plan.policy, dropped_values))
    image = set_created(image, plan.epoch)
    image = drop_annotations(image)  # the base's annotations describe the base, not this app
    if not image.is_docker:
        image = annotate(image, _own_annotations(plan, request, child.base_digest,
                                                 report_digest))
    return image


def _rules(plan: ExportPlan, used: set[str]) -> dict[str, str]:
    """The description of every rule that fired."""
    described = {**plan.policy.describe(), **LIVE_RULES, **ENV_RULES}
    rules = {k: v for k, v in described.items() if k in used}
    if "env-file" in used:
        rules["env-file"] = "the env_file itself (its variables go into the config)"
    if "spec-file" in used:
        rules["spec-file"] = ("the app's own ociforge.toml (it may hold [config.env] "
                              "values and database URLs with passwords)")
    return rules


def _own_annotations(plan: ExportPlan, request: ExportRequest, base_digest: str | None,
                     report_digest: str) -> dict[str, str]:
    """created, title/version (from --tag, else the app's name), and the base: its digest,
    and its name only when it is a registry reference (a host path is no name)."""
    notes = created_annotation(plan.epoch)
    if request.tag:
        notes.update(derived_annotations(request.tag, None))
    else:
        notes[ANNOTATION_TITLE] = plan.spec.name.rsplit("/", 1)[-1]
    if base_digest:
        notes.update(base_annotations(plan.base, base_digest))
    notes[REPORT_LABEL] = report_digest
    return notes
