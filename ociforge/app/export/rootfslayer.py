"""With a rootfs: one layer of its changes against the base it was made from,
with the live rules (caches, the running system's own files) as well as the
license and secret rules."""

from __future__ import annotations

import dataclasses
import logging
import os

from ...layers.build import BuildSettings
from ...layers.delta import DeltaOptions, build_delta
from ...layers.workspace import blob_dir
from ...model.image import Image
from ...progress.events import Progress
from ..inventory import LayerRef
from ..rootfs import BaseRead, changed_after, live_prune
from ..spec import PathSpec
from .api import ExportPlan, ExportRequest
from .built import Built, PlatformImage
from .layers import skipper

log = logging.getLogger("ociforge.export")


def rootfs_layer(plan: ExportPlan, request: ExportRequest, original: Image,
                 child: PlatformImage, workspace: PathSpec | None, settings: BuildSettings,
                 base_read: BaseRead) -> Built:
    """The layer of the rootfs's changes against the base as it was (the layers the rootfs
    was made from), with the live rules, and the license and secret rules as any layer.

    With ``child.taker``, the base layers' inventory is taken in the same read."""
    spec = plan.spec
    rootfs = spec.rootfs
    assert rootfs is not None
    own: list[tuple[str | os.PathLike[str] | None, str]] = [
        (workspace.path if workspace else None, "workspace"),
        *((layer.path, "own-layer") for layer in spec.layers),
        (plan.options.cache.dir, "ociforge-files"), (str(blob_dir()), "ociforge-files"),
        (plan.base.path, "ociforge-files"), (request.report_path, "ociforge-files"),
        (request.sbom_path, "ociforge-files"),
        *((location.path, "ociforge-files") for location in plan.outputs)]
    prune = live_prune(rootfs, [(path, rule) for path, rule in own if path])
    left_out: list[tuple[str, str]] = []
    skip, note, _ = skipper(plan, "rootfs", left_out, read_os_trees=False)
    options = DeltaOptions(compare=request.compare, prune=prune, protected=prune.protected,
                           skip=skip,
                           changed_after_ns=changed_after(rootfs))
    layers = [kept if kept.digest == was.digest else was
              for was, kept in zip(original.layers, child.base.layers, strict=True)]
    log.info("comparing the rootfs %s with the base", rootfs)
    refs = [LayerRef(i, str(layer.digest), "base") for i, layer in enumerate(child.base.layers)]
    progress = Progress.of(plan.options)
    index = base_read.index(layers, refs, options, child.taker, progress)
    with progress.task("build", "rootfs layer", label="rootfs layer (changes against the base)"
                       ) as task:
        delta = build_delta(rootfs, index,
                            dataclasses.replace(settings, normalize_modes=False), options, task)
    stats = delta.stats
    for path, rule in stats.pruned:
        if rule == "own-layer" or (rule == "workspace" and request.with_files):
            continue                # exported, by a layer of its own
        note(path, rule, rootfs / path.lstrip("/"))
    for path, rule in stats.left_out:
        note(path, rule, rootfs / path.lstrip("/"))
    counts = {"compare": request.compare, "added": stats.added, "changed": stats.changed,
              "deleted": stats.deleted}
    return Built("rootfs", "/", delta.build, left_out, rootfs=counts)
