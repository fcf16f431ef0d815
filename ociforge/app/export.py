"""``ociforge export``: an application folder becomes a portable image.

Two phases.  First everything that can be wrong with the input is checked
(ociforge.toml, the licensed flag, names, destinations, the report path,
database connections) so that bad input exits 2 with nothing written.  Then
the image is assembled: base (its layers through the same file rules, see
baselayers.py), with a rootfs the layer of its changes against the base
(rootfs.py, layers/delta.py), one layer per ``[[layers]]`` entry, and with
``--with-files`` the files layer and one layer per table; the config gets the
kept environment and the report digest label; then every destination is
written and the report last.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from ..cache import tables as table_cache
from ..cache.layers import build_layer_cached
from ..cache.store import Cache
from ..display import path_fields, plural
from ..errors import InvalidInputError, InvalidPlatformError
from ..fsutil import check_writable_destination
from ..layers.build import BuildResult, BuildSettings, LayerSource, build_layer, settings_epoch
from ..layers.compress import check_compression
from ..layers.delta import DeltaOptions, Observe, build_delta, check_compare
from ..layers.workspace import blob_dir
from ..model.annotations import ANNOTATION_TITLE
from ..model.image import Image
from ..model.index import Artifact, Index, build_index
from ..model.jsonutil import JSONObject
from ..model.layer import Layer
from ..model.mutate import (
    ConfigChanges,
    annotate,
    append_layers,
    configure,
    convert,
    drop_annotations,
    redact_config,
    set_created,
)
from ..model.platform import ALL_PLATFORMS, Platform, parse_platforms
from ..model.selection import platforms_of
from ..options import Compression, ImageFormat, Options
from ..pipeline.append import base_annotations, created_annotation, derived_annotations
from ..pipeline.outputs import Outputs, result_entry
from ..progress.events import NULL_TASK, Progress, Task
from ..stores.locations import Location, Scratch, WriteResult, parse_location, resolve_platform
from .baselayers import BaseLayerScan, RewriteSettings, filter_base_layers
from .dburl import parse_db_url
from .envfile import read_env_file
from .inventory import (
    Inventory,
    InventoryTaker,
    LayerRef,
    LicensedComponent,
    find_licensed,
    take_inventories,
    take_inventory,
    unused_allowances,
)
from .policy import EnvDecision, Policy
from .redact import history_scrubber
from .report import REPORT_LABEL, LayerEntry, Report
from .rootfs import (
    ENV_RULES,
    LIVE_RULES,
    BaseRead,
    base_inventory,
    changed_after,
    live_prune,
    process_env,
)
from .spec import SPEC_NAME, AppSpec, PathSpec, TableSpec, load_spec
from .tables import TableExport, TableSnapshot, open_database, require_pyarrow, snapshot_table

log = logging.getLogger("ociforge.export")

# The modules whose code decides a table snapshot's bytes (the cache key holds their source).
TABLE_READERS = ("ociforge.app.tables", "ociforge.app.tablesource", "ociforge.app.tablefiles",
                 "ociforge.app.tabletypes", "ociforge.app.dburl")

LICENSED_REFUSAL = (
    "application {name!r} is marked licensed = true: it needs a license to run, and its "
    "license keys and license-server settings are always left out (bring your own license). "
    "Export it only if the recipient may receive the software itself: rerun with "
    "--include-licensed"
)


@dataclass(frozen=True)
class ExportRequest:
    app_dir: str
    destinations: Sequence[str] = ()        # none: ./<name>.tar (docker-archive)
    with_files: bool = False
    include_licensed: bool = False
    allow_env: Sequence[str] = ()
    report_path: str | None = None
    compression: Compression = "gzip"
    tag: str | None = None                  # NAME:TAG for archives and untagged layouts
    format: ImageFormat | None = None       # None: keep the base's
    source_date_epoch: int | None = None
    sign_key: str | None = None             # sign every destination (cosign-compatible)
    key_password: bytes | None = field(default=None, repr=False)
    attach_report: bool = False             # store the report as a referrer of the image
    keep_base_layers: bool = False          # use base layers as they are (not scanned)
    base: str | None = None                 # instead of [app] base (a path: relative to cwd)
    options: Options = field(default_factory=Options)
    sbom_path: str | None = None            # write an SPDX 2.3 JSON SBOM here
    attach_sbom: bool = False               # store the SBOM as a referrer of the image
    rootfs: str | None = None               # export this root filesystem's changes (--rootfs)
    compare: str = "metadata"               # rootfs: "content" hashes every candidate file
    env_from_pid: int | None = None         # capture this process's environment too


@dataclass
class ExportOutcome:
    """What an export wrote: ``image`` is the image, or for several platforms the index
    (``images`` holds one image per platform, in the platforms' order)."""

    image: Artifact
    report: Report
    results: list[WriteResult]
    attached: list[dict[str, str]] = field(default_factory=list)
    signatures: list[JSONObject] = field(default_factory=list)
    inventory: Inventory | None = None          # one platform: its inventory
    sbom: bytes | None = None
    attached_sboms: list[dict[str, str]] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    inventories: list[Inventory] = field(default_factory=list)   # one per platform
    platforms: list[Platform] = field(default_factory=list)      # of ``images``, as asked

    def platform_digests(self) -> list[dict[str, str]]:
        """``[{"platform", "digest"}]``: each platform's image."""
        return [{"platform": str(platform), "digest": str(image.digest)}
                for platform, image in zip(self.platforms, self.images, strict=True)]


@dataclass
class ExportPlan:
    """Everything phase one checked, ready for phase two: ``run()``."""

    spec: AppSpec
    outputs: Outputs
    platforms: tuple[Platform, ...]            # one image each; several make an index
    options: Options
    epoch: int
    env_layers: list[tuple[str, str, str]]     # (name, value, origin) from env_file and config
    policy: Policy
    base: Location
    request: ExportRequest
    allow_env: tuple[str, ...] = ()
    cache: Cache | None = None
    base_artifact: Artifact | None = None      # the whole base, when phase one read it
    env_dropped: list[EnvDecision] = field(default_factory=list)   # before the policy

    @property
    def platform(self) -> Platform:
        """The first (for one platform: the) platform."""
        return self.platforms[0]

    def run(self) -> ExportOutcome:
        """Assemble the image, write every destination, then the report, attach, sign."""
        with self.outputs.running(self.options):
            return _assemble(self, self.request)


def export_app(request: ExportRequest) -> ExportOutcome:
    """Check, assemble and write: ``plan_export(request).run()``."""
    return plan_export(request).run()


# -- phase one: check the input ---------------------------------------------------------

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
    for name in request.allow_env:
        if not name or "=" in name:
            raise InvalidInputError(f"--allow-env takes a variable NAME, not {name!r}")
    if spec.rootfs is not None and _several_asked(spec, request.options):
        raise InvalidInputError(ROOTFS_PLATFORMS)
    platforms, base_artifact = _platforms(spec, request, base)
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
    _check_sbom(request)
    if request.sign_key or request.attach_report or request.attach_sbom:
        from ..trust.sign import check_signable

        for location in outputs:
            check_signable(location)
    if request.sign_key:
        from ..trust.keys import load_private_key

        load_private_key(request.sign_key, request.key_password)  # a bad key fails up front
    if request.report_path:
        check_writable_destination(request.report_path, "--report")
    env_layers: list[tuple[str, str, str]] = []
    env_dropped: list[EnvDecision] = []
    if request.env_from_pid is not None:
        captured = process_env(request.env_from_pid)
        env_layers += captured.env
        env_dropped = captured.dropped
    if spec.config.env_file_path is not None:
        env_file = read_env_file(spec.config.env_file_path, spec.config.env_file or "")
        env_layers += [(k, v, "env_file") for k, v in env_file.items()]
    env_layers += [(k, v, "config") for k, v in spec.config.env.items()]
    if request.with_files:
        for i, table in enumerate(spec.tables):
            if table.format == "parquet":
                require_pyarrow()
            open_database(table, spec.root, spec.locate(("tables", i)),
                          spec.locate(("tables", i, "table")))
    policy = Policy.for_app(spec.licenses, spec.secrets, request.allow_env)
    outputs.check_push_access(options)
    return ExportPlan(spec, outputs, platforms, options, epoch, env_layers, policy, base,
                      request, tuple(dict.fromkeys(request.allow_env)),
                      base_artifact=base_artifact, env_dropped=env_dropped)


ROOTFS_PLATFORMS = ("a rootfs holds one platform's files: export it for one platform "
                    "(--platform OS/ARCH), not several or all")


def _several_asked(spec: AppSpec, options: Options) -> bool:
    """Several platforms (or all) asked for, by --platform or else by [app] platform."""
    if options.all_platforms or len(options.platforms) > 1:
        return True
    if options.platforms or options.platform is not None or spec.platform is None:
        return False
    return spec.platform.strip().lower() == ALL_PLATFORMS or "," in spec.platform


def _platforms(spec: AppSpec, request: ExportRequest, base: Location
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


def _image_name(spec: AppSpec, tag: str | None) -> str:
    if tag is None:
        return f"{spec.name}:latest"
    from ..stores.archive import ImageName

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


# -- phase two: assemble and write ------------------------------------------------------

@dataclass
class _Built:
    """A layer the export built (once, however many platforms use it) and what its walk
    left out, as (image path, rule)."""

    role: str
    source: str
    result: BuildResult
    left_out: list[tuple[str, str]] = field(default_factory=list)
    table: JSONObject | None = None       # a table layer: its report entry and warnings
    rootfs: dict[str, object] | None = None   # the rootfs layer: compare mode and counts


@dataclass
class _Child:
    """One platform's image while it is assembled."""

    platform: Platform
    base: Image
    base_digest: str | None
    report: Report
    used: set[str] = field(default_factory=set)
    image: Image | None = None
    inventory: Inventory | None = None
    taker: InventoryTaker | None = None     # the base's inventory, taken by the rootfs index


def _assemble(plan: ExportPlan, request: ExportRequest) -> ExportOutcome:
    spec = plan.spec
    plan.cache = Cache.open(plan.options.cache)
    bases = _bases(plan, request)
    # normalize_modes: the checkout's umask must not change the digest (docs/export.md)
    settings = BuildSettings(compression=request.compression, epoch=plan.epoch,
                             docker=bases[0][1].is_docker, normalize_modes=True)
    scans: dict[tuple[str, str], BaseLayerScan] = {}   # base layers two platforms share
    children: list[_Child] = []
    base_read = None if spec.rootfs is None else \
        BaseRead(plan.cache, bases[0][1].layers, spec.rootfs, request.compare)
    for platform, base, base_digest in bases:
        report = Report(app=spec.name, mode="app+files" if request.with_files else "app",
                        base_reference=str(spec.base), base_digest=base_digest,
                        platform=str(platform), licensed=spec.licensed)
        child = _Child(platform, base, base_digest, report)
        child.base = _filter_base(base, settings, plan, request, report, child.used, scans,
                                  base_read.observe if base_read is not None else None)
        children.append(child)
    layers = _build_all(plan, request, settings, [child.platform for child in children])
    if base_read is not None:               # a rootfs: one platform (phase one made sure)
        child = children[0]
        child.taker = base_inventory(bases[0][1], child.base)
        layers[0].insert(0, _rootfs_layer(plan, request, bases[0][1], child,
                                          _workspace(spec), settings, base_read))
    for child, built in zip(children, layers, strict=True):
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
            report.layers.append(LayerEntry(entry.role, entry.source, str(layer.digest),
                                            str(layer.diff_id), layer.size, layer.file_count,
                                            layer.media_type))
            report.warnings += sorted(entry.result.warnings)  # walk order varies by machine
            for image_path, rule in entry.left_out:
                child.used.add(rule)
                report.left_out_files.append({**path_fields("/" + image_path.lstrip("/")),
                                              "rule": rule, "layer": entry.role})
        report.left_out_files.sort(
            key=lambda item: (item["path"], item["layer"], item.get("base_layer", -1)))
        child.image = append_layers(child.base, [entry.result.layer for entry in built],
                                    created_by=[f"ociforge export: {entry.role} {entry.source}"
                                                for entry in built], epoch=plan.epoch)
    _inventories(children, plan, request)
    configs = []
    for child in children:
        assert child.image is not None
        changes, dropped_values = _config_changes(child.image, plan, child.report, child.used)
        child.report.rules = _rules(plan, child.used)
        configs.append((changes, dropped_values))
    report = children[0].report if len(children) == 1 else Report.combine(
        [child.report for child in children], base_digest=_base_index_digest(plan))
    images = [_finish(child, changes, dropped, report.digest(), plan, request)
              for child, (changes, dropped) in zip(children, configs, strict=True)]
    artifact: Artifact = images[0]
    if len(images) > 1:
        docker = images[0].is_docker
        notes = None if docker else _own_annotations(plan, request, _base_index_digest(plan),
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
        from ..fsutil import write_output_bytes

        write_output_bytes(request.report_path, report.to_json().encode(), what="--report")
    _write_sbom(outcome, plan, request)
    _attach_and_sign(outcome, plan, request)
    return outcome


def _bases(plan: ExportPlan, request: ExportRequest) -> list[tuple[Platform, Image, str | None]]:
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


def _base_index_digest(plan: ExportPlan) -> str | None:
    """The digest of the base as named (its index, for a multi-platform base); None for
    scratch."""
    if plan.base.kind == "scratch":
        return None
    every = plan.base_artifact
    if every is None:
        every = plan.base.read_documents(dataclasses.replace(plan.options, all_platforms=True))
        plan.base_artifact = every
    return str(every.digest)


def _build_all(plan: ExportPlan, request: ExportRequest, settings: BuildSettings,
               platforms: Sequence[Platform]) -> list[list[_Built]]:
    """Every platform's layers: runtime, files (with --with-files), tables.  An entry whose
    ``src`` has no placeholders (and every table) is built once and shared: the same
    blob in every platform's image."""
    spec = plan.spec
    done: dict[tuple[str, str, str, tuple[str, ...]], _Built] = {}

    def build(entry: PathSpec, role: str) -> _Built:
        key = (role, str(entry.path), entry.dest, entry.exclude)
        if key not in done:
            done[key] = _build(entry, role, settings, plan)
        return done[key]

    per_platform: list[list[_Built]] = []
    for platform in platforms:
        built = [build(entry.for_platform(platform), "runtime") for entry in spec.layers]
        workspace = _workspace(spec)
        if request.with_files and workspace is not None:
            built.append(build(workspace.for_platform(platform), "files"))
        per_platform.append(built)
    if request.with_files:
        with tempfile.TemporaryDirectory(prefix="ociforge-tables-") as tmp:
            tables = _table_layers(plan, settings, Path(tmp))
        for built in per_platform:
            built += tables
    return per_platform


def _finish(child: _Child, changes: ConfigChanges, dropped_values: set[str], report_digest: str,
            plan: ExportPlan, request: ExportRequest) -> Image:
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


def _attach_and_sign(outcome: ExportOutcome, plan: ExportPlan, request: ExportRequest
                     ) -> None:
    """SBOM and report as referrers of what was written (the index, for several
    platforms), then a signature next to every written image: the index's, and each
    platform image's too (as ``cosign sign --recursive`` does), so whichever digest a
    verifier holds has one."""
    digest = str(outcome.image.digest)
    signed = [digest]
    if isinstance(outcome.image, Index):
        signed += [str(image.digest) for image in outcome.images]
    progress = Progress.of(plan.options)
    for location in plan.outputs:
        if request.attach_sbom and outcome.sbom is not None:
            from ..trust.referrers import attach_sbom

            with progress.task("attach", str(location), label=f"SBOM to {location}"):
                desc = attach_sbom(location, outcome.sbom, plan.options, digest=digest)
            outcome.attached_sboms.append({"location": str(location),
                                           "digest": str(desc.digest)})
        if request.attach_report:
            from ..trust.referrers import attach_report

            with progress.task("attach", str(location), label=f"report to {location}"):
                desc = attach_report(location, outcome.report.to_json().encode(),
                                     plan.options, digest=digest)
            outcome.attached.append({"location": str(location), "digest": str(desc.digest)})
        if request.sign_key:
            from ..trust.sign import sign_location

            for subject in signed:
                with progress.task("sign", str(location)):
                    info = sign_location(location, request.sign_key, request.key_password,
                                         plan.options, digest=subject)
                outcome.signatures.append(info.to_dict())


def _filter_base(base: Image, settings: BuildSettings, plan: ExportPlan, request: ExportRequest,
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
        report.layers.append(LayerEntry(
            "base", plan.spec.base, str(layer.digest),
            str(layer.diff_id) if layer.diff_id else None, layer.size, layer.file_count,
            layer.media_type, scanned=scan.scanned,
            original_digest=str(scan.original.digest) if scan.rewritten else None,
            original_diff_id=(str(scan.original.diff_id)
                              if scan.rewritten and scan.original.diff_id else None)))
        for item in scan.left_out:
            used.add(item.rule)
            report.left_out_files.append({**path_fields(item.path), "rule": item.rule,
                                          "layer": "base", "base_layer": scan.index})
    return base


def _skipper(plan: ExportPlan, role: str, left_out: list[tuple[str, str]],
             read_os_trees: bool = True
             ) -> tuple[Callable[[str, Path], str | None], Callable[[str, str], None], str]:
    """(skip, replay, rules): ``skip`` decides and notes a left-out file; ``replay`` notes
    one a reused layer left out; ``rules`` names everything ``skip`` decides by (not the
    platform: a layer's bytes do not depend on it, so platforms share it).

    ``read_os_trees`` False: token rules do not read the operating system's own trees
    (a rootfs's /usr holds packages' docs full of example tokens)."""
    env_file = str(plan.spec.config.env_file_path) if plan.spec.config.env_file_path else None
    spec_file = os.path.normpath(str(plan.spec.root / SPEC_NAME))

    def note(image_path: str, rule_name: str) -> None:
        left_out.append((image_path, rule_name))

    def skip(image_path: str, host_path: Path) -> str | None:
        rule_name: str | None = None
        host = os.path.normpath(str(host_path))
        if env_file is not None and host == env_file:
            rule_name = "env-file"
        elif host == spec_file:
            rule_name = "spec-file"
        else:
            rule = plan.policy.host_file_rule(image_path, host_path, files_layer=role == "files",
                                              read_os_trees=read_os_trees)
            rule_name = rule.name if rule else None
        if rule_name is None:
            return None
        note(image_path, rule_name)
        return rule_name

    rules = repr((plan.policy.file_rules, plan.policy.content_rules, role, env_file, spec_file))
    return skip, note, rules


def _workspace(spec: AppSpec) -> PathSpec | None:
    """``[files]``; with a rootfs and no ``[files]``, the rootfs's /files when there is one."""
    if spec.files is not None or spec.rootfs is None:
        return spec.files
    default = spec.rootfs / "files"
    if not default.is_dir() or default.is_symlink():
        return None
    return PathSpec("/files", default, "/files")


def _rootfs_layer(plan: ExportPlan, request: ExportRequest, original: Image, child: _Child,
                  workspace: PathSpec | None, settings: BuildSettings, base_read: BaseRead
                  ) -> _Built:
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
    skip, note, _ = _skipper(plan, "rootfs", left_out, read_os_trees=False)
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
        note(path, rule)
    for path, rule in stats.left_out:
        note(path, rule)
    counts = {"compare": request.compare, "added": stats.added, "changed": stats.changed,
              "deleted": stats.deleted}
    return _Built("rootfs", "/", delta.build, left_out, rootfs=counts)


def _build(layer_spec: PathSpec, role: str, settings: BuildSettings, plan: ExportPlan
           ) -> _Built:
    log.info("building %s layer from %s", role, layer_spec.src)
    left_out: list[tuple[str, str]] = []
    skip, replay, rules = _skipper(plan, role, left_out)
    what = f"{role} layer {layer_spec.src}"
    with Progress.of(plan.options).task("build", what) as task:
        result = build_layer_cached(
            plan.cache, [LayerSource(layer_spec.path, layer_spec.dest, layer_spec.exclude)],
            settings, skip=skip, replay=replay, rules=rules,
            deciders=(__name__, "ociforge.app.policy", "ociforge.app.tokens"),
            what=what, progress=task)
    return _Built(role, layer_spec.src, result, left_out)


def _table_layers(plan: ExportPlan, settings: BuildSettings, tmp: Path) -> list[_Built]:
    """One layer per table.  The tables of one database come from one snapshot: a SQLite
    database's tables are reused from the cache only when every one of them can be
    (the file proves unchanged), else all of them are read again together."""
    tables = plan.spec.tables
    where = [plan.spec.locate(("tables", i, "query" if table.query else "table"))
             for i, table in enumerate(tables)]
    entries = [_table_entry(plan, table, settings, w) for table, w in zip(tables, where,
                                                                         strict=True)]
    hits: dict[int, tuple[BuildResult, JSONObject]] = {}
    for i, entry in enumerate(entries):
        if entry is not None:
            again = functools.partial(_table_again, plan, tables[i], settings, where[i])
            reused = table_cache.reuse(entry, again)
            if reused is not None and isinstance(reused[1].get("table"), dict):
                hits[i] = (reused[0], reused[1])
    by_source: dict[str, list[int]] = {}
    for i, table in enumerate(tables):
        by_source.setdefault(table.source, []).append(i)
    done: dict[int, tuple[BuildResult, JSONObject]] = {}
    jobs: list[int] = []
    for members in by_source.values():
        if all(i in hits for i in members):
            done.update((i, hits[i]) for i in members)
        else:
            jobs += members
    if jobs:
        log.info("reading %s", plural(len(jobs), "table"))
        for i in jobs:
            (tmp / str(i)).mkdir()
        progress = Progress.of(plan.options)
        with TableExport(plan.spec.root, progress) as export:  # one snapshot per database
            snaps = export.snapshot_all([(tables[i], tmp / str(i), where[i]) for i in jobs])
        for i, snap in zip(jobs, snaps, strict=True):
            with progress.task("build", f"table layer {snap.spec.name}") as task:
                done[i] = _snapshot_layer(snap, settings, task)
            entry = entries[i]
            if entry is not None:
                table_cache.store(entry, *done[i])
    out = []
    for i, table in enumerate(tables):
        result, meta = done[i]
        out.append(_Built("table", table.name, result, table=meta))
    return out


def _snapshot_layer(snap: TableSnapshot, settings: BuildSettings, progress: Task = NULL_TASK
                    ) -> tuple[BuildResult, JSONObject]:
    """A table file's layer, and what the report says of it (its entry and warnings)."""
    os.chmod(snap.path, 0o644)  # the umask must not change the layer's bytes
    result = build_layer([LayerSource(snap.path, snap.spec.dest)], settings, progress=progress)
    table = snap.spec
    entry: JSONObject = {"name": table.name, "source": snap.source_shown,
                         "format": table.format, "dest": table.dest, "rows": snap.rows,
                         "columns": list(snap.columns), "digest": str(snap.digest),
                         "size": snap.size}
    return result, {"table": entry, "warnings": list(snap.warnings)}


def _table_again(plan: ExportPlan, table: TableSpec, settings: BuildSettings,
                 where: str) -> Layer:
    """A reused table layer whose cached blob turned out damaged: read the table again."""
    with tempfile.TemporaryDirectory(prefix="ociforge-tables-") as folder:
        snap = snapshot_table(table, plan.spec.root, Path(folder), where)
        return _snapshot_layer(snap, settings)[0].layer


def _table_entry(plan: ExportPlan, table: TableSpec, settings: BuildSettings,
                 where: str) -> table_cache.TableEntry | None:
    """A SQLite table's cache entry; None for a database server (always read again)."""
    if plan.cache is None:
        return None
    db = parse_db_url(table.source, plan.spec.root, where)
    if db.kind != "sqlite" or db.path is None:
        return None
    parts = [table.name, table.source, table.table or "", table.query or "", table.format,
             table.dest, str(db.path.resolve())]
    return table_cache.table_entry(plan.cache, db.path, parts, settings,
                                   f"table {table.name}", table.format == "parquet",
                                   TABLE_READERS)


def _config_changes(image: Image, plan: ExportPlan, report: Report, used: set[str]
                    ) -> tuple[ConfigChanges, set[str]]:
    """The runtime config: the app's settings and the environment the policy keeps;
    and the values of every dropped variable (to mask them in the history text)."""
    runtime = image.config.get("config")
    env = runtime.get("Env") if isinstance(runtime, dict) else None
    base_env: list[tuple[str, str, str]] = []
    for item in env if isinstance(env, list) else []:
        if isinstance(item, str):
            key, _, value = item.partition("=")
            base_env.append((key, value, "base"))
    leftover = image.config.get("container_config")
    leftover_env = leftover.get("Env") if isinstance(leftover, dict) else None
    build_env = [tuple(item.partition("=")[::2])
                 for item in (leftover_env if isinstance(leftover_env, list) else [])
                 if isinstance(item, str)]
    known = {name for name, _, _ in base_env + plan.env_layers}
    missing = [name for name in plan.allow_env if name not in known]
    for name in reversed(missing):  # first, so the summary's first warnings show them
        report.warnings.insert(0, f"--allow-env {name}: no such variable in the base, "
                                  "env_file or [config] env (a typo?)")
    kept, dropped = plan.policy.filter_env(base_env + plan.env_layers)
    origins = {name: origin for name, _, origin in base_env + plan.env_layers}
    for name in plan.allow_env:
        if name in kept:
            rule = plan.policy.rule_for(name, kept[name])
            if rule is not None:
                used.add(rule.name)
                report.overridden.append({"name": name, "rule": rule.name, "kind": rule.kind,
                                          "origin": origins.get(name, "config"),
                                          "allowed_by": "--allow-env"})
    for decision in sorted(plan.env_dropped + dropped, key=lambda d: d.name):
        used.add(decision.rule)
        report.dropped_env.append({"name": decision.name, "rule": decision.rule,
                                   "kind": decision.kind, "origin": decision.origin})
    new_env = {k: v for k, v, _ in plan.env_layers if k in kept}
    new_env = {k: kept[k] for k in new_env}
    dropped_names = {d.name for d in dropped}
    dropped_values = {v for k, v, _ in base_env + plan.env_layers if k in dropped_names}
    dropped_values |= {v for k, v in build_env if plan.policy.env_rule(k, v) is not None}
    config = plan.spec.config
    return ConfigChanges(
        env=new_env,
        env_remove=[d.name for d in dropped],
        entrypoint=config.entrypoint,
        cmd=config.cmd,
        workdir=config.workdir,
        user=config.user,
        labels=dict(config.labels),
        exposed_ports=config.ports,
        volumes=config.volumes,
        stop_signal=config.stop_signal,
    ), dropped_values


# -- what ships: inventory, licensed software, SBOM --------------------------------------

LICENSED_COMPONENTS_REFUSAL = (
    "licensed software in the image: {found}. It needs a license to run, and licensed "
    "software stays out unless asked for (bring your own license): rerun with "
    "--include-licensed if the recipient may receive it, or accept named packages with "
    "[licenses] allow = [{names}] in ociforge.toml"
)


def inventory_and_licenses(image: Image, report: Report, allow: Sequence[str],
                           include_licensed: bool, taker: InventoryTaker | None = None
                           ) -> Inventory:
    """Take the inventory of the image's final layers (after the rules left files out),
    put the counts and licensed components in the report, and refuse (exit 2, before
    anything is written) licensed software that is neither allowed nor included.

    ``report.layers`` must describe ``image.layers`` one for one (they label the layers).
    ``taker`` may hold the inventory of the lowest layers already (as many as its refs).
    """
    refs = _layer_refs(image, report)
    if taker is None:
        inventory = take_inventory(refs)
    else:
        assert taker.refs == [ref for ref, _ in refs[:len(taker.refs)]]
        for ref, layer in refs[len(taker.refs):]:
            taker.add(ref, layer)
        inventory = taker.result()
    refused = _record_inventory(inventory, report, allow)
    if refused and not include_licensed:
        _refuse_licensed([("", refused)])
    return inventory


def _inventories(children: Sequence[_Child], plan: ExportPlan, request: ExportRequest
                 ) -> None:
    """Every platform's inventory in its report (taken together: a layer several
    platforms' images hold is read once for those that reach it together); licensed
    software in any platform that is neither allowed nor included is refused, naming
    the platform."""
    allow = plan.spec.licenses.allow
    if len(children) == 1:
        child = children[0]
        assert child.image is not None
        child.inventory = inventory_and_licenses(child.image, child.report, allow,
                                                 request.include_licensed, child.taker)
        return
    stacks = []
    for child in children:
        assert child.image is not None
        stacks.append(_layer_refs(child.image, child.report))
    refused: list[tuple[str, list[LicensedComponent]]] = []
    for child, inventory in zip(children, take_inventories(stacks), strict=True):
        child.inventory = inventory
        found = _record_inventory(inventory, child.report, allow)
        if found:
            refused.append((str(child.platform), found))
    if refused and not request.include_licensed:
        _refuse_licensed(refused)


def _layer_refs(image: Image, report: Report) -> list[tuple[LayerRef, Layer]]:
    refs = []
    for index, layer in enumerate(image.layers):
        entry = report.layers[index] if index < len(report.layers) else None
        label = "" if entry is None else (
            "base" if entry.role == "base" else f"{entry.role} {entry.source}")
        refs.append((LayerRef(index, str(layer.digest), label), layer))
    return refs


def _record_inventory(inventory: Inventory, report: Report, allow: Sequence[str]
                      ) -> list[LicensedComponent]:
    """The inventory's counts, licensed components and warnings in the report; returns
    the licensed components that are not allowed."""
    components = sorted(find_licensed(inventory, allow),
                        key=lambda c: (c.package.name.lower(), c.package.path))
    report.inventory = {"packages": len(inventory.packages),
                        "ecosystems": inventory.ecosystem_counts(),
                        "licenses": inventory.license_overview()}
    report.licensed_components = [c.to_dict() for c in components]
    report.warnings += list(inventory.warnings)
    report.warnings += [f"[licenses] allow {entry!r}: no licensed package of that name in the "
                        "image (a typo?)" for entry in unused_allowances(components, allow)]
    return [c for c in components if not c.allowed]


def _refuse_licensed(refused: Sequence[tuple[str, Sequence[LicensedComponent]]]) -> None:
    """Exit 2 naming the licensed components (prefixed with their platform when there
    are several platforms)."""
    every = [(platform, c) for platform, found in refused for c in found]
    shown = "; ".join((f"{platform}: " if platform else "") + c.describe()
                      for platform, c in every[:5])
    if len(every) > 5:
        shown += f"; and {len(every) - 5} more: " + ", ".join(
            c.package.name for _, c in every[5:20]) + (" ..." if len(every) > 20 else "")
    names = ", ".join(f'"{n}"' for n in dict.fromkeys(c.package.name for _, c in every))
    raise InvalidInputError(LICENSED_COMPONENTS_REFUSAL.format(found=shown, names=names))


def _check_sbom(request: ExportRequest) -> None:
    if not (request.sbom_path or request.attach_sbom):
        return
    from .sbom import require_spdx_tools

    require_spdx_tools("--sbom" if request.sbom_path else "--attach-sbom")
    if request.sbom_path:
        check_writable_destination(request.sbom_path, "--sbom")


def _write_sbom(outcome: ExportOutcome, plan: ExportPlan, request: ExportRequest) -> None:
    if not outcome.inventories or not (request.sbom_path or request.attach_sbom):
        return
    from .sbom import spdx_json, spdx_json_platforms

    if isinstance(outcome.image, Image):
        outcome.sbom = spdx_json(outcome.inventories[0], name=plan.spec.name,
                                 image_digest=str(outcome.image.digest), epoch=plan.epoch)
    else:
        outcome.sbom = spdx_json_platforms(
            [(entry["platform"], entry["digest"], inventory) for entry, inventory
             in zip(outcome.platform_digests(), outcome.inventories, strict=True)],
            name=plan.spec.name, index_digest=str(outcome.image.digest), epoch=plan.epoch)
    if request.sbom_path:
        from ..fsutil import write_output_bytes

        write_output_bytes(request.sbom_path, outcome.sbom, what="--sbom")
