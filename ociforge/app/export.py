"""``ociforge export``: an application folder becomes a portable image.

Two phases.  First everything that can be wrong with the input is checked
(ociforge.toml, the licensed flag, names, destinations, the report path,
database connections) so that bad input exits 2 with nothing written.  Then
the image is assembled: base (its layers through the same file rules, see
baselayers.py), one layer per ``[[layers]]`` entry, and with
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
from ..errors import InvalidInputError
from ..fsutil import check_writable_destination
from ..layers.build import BuildResult, BuildSettings, LayerSource, build_layer, settings_epoch
from ..layers.compress import check_compression
from ..model.annotations import ANNOTATION_TITLE
from ..model.image import Image
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
from ..model.platform import Platform
from ..options import Compression, ImageFormat, Options
from ..pipeline.append import base_annotations, created_annotation, derived_annotations
from ..pipeline.outputs import Outputs, result_entry
from ..progress.events import NULL_TASK, Progress, Task
from ..stores.locations import Location, WriteResult, parse_location, resolve_platform
from .baselayers import BaseLayerScan, RewriteSettings, filter_base_layers
from .dburl import parse_db_url
from .envfile import read_env_file
from .inventory import Inventory, LayerRef, find_licensed, take_inventory, unused_allowances
from .policy import Policy
from .redact import history_scrubber
from .report import REPORT_LABEL, LayerEntry, Report
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


@dataclass
class ExportOutcome:
    image: Image
    report: Report
    results: list[WriteResult]
    attached: list[dict[str, str]] = field(default_factory=list)
    signatures: list[JSONObject] = field(default_factory=list)
    inventory: Inventory | None = None
    sbom: bytes | None = None
    attached_sboms: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ExportPlan:
    """Everything phase one checked, ready for phase two: ``run()``."""

    spec: AppSpec
    outputs: Outputs
    platform: Platform
    options: Options
    epoch: int
    env_layers: list[tuple[str, str, str]]     # (name, value, origin) from env_file and config
    policy: Policy
    base: Location
    request: ExportRequest
    allow_env: tuple[str, ...] = ()
    cache: Cache | None = None

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
    spec = load_spec(request.app_dir)
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
    platform = request.options.platform or (
        Platform.parse(spec.platform) if spec.platform else Platform.host())
    options = dataclasses.replace(request.options, platform=platform, all_platforms=False)
    outputs = _outputs(spec, request)
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
    return ExportPlan(spec, outputs, platform, options, epoch, env_layers, policy,
                      base, request, tuple(dict.fromkeys(request.allow_env)))


def _image_name(spec: AppSpec, tag: str | None) -> str:
    if tag is None:
        return f"{spec.name}:latest"
    from ..stores.archive import ImageName

    ImageName.parse(tag)  # validates NAME[:TAG]
    return tag if ":" in tag.rsplit("/", 1)[-1] else f"{tag}:latest"


def _outputs(spec: AppSpec, request: ExportRequest) -> Outputs:
    """The destinations (default ./<name>.tar), named after the app unless --tag."""
    texts = list(request.destinations) or [f"{spec.name.rsplit('/', 1)[-1]}.tar"]
    outputs = Outputs.parse(texts, default_name=_image_name(spec, request.tag),
                            report=request.report_path,
                            others=[("--sbom", request.sbom_path)] if request.sbom_path else [])
    outputs.check_compression(request.compression)
    return outputs


# -- phase two: assemble and write ------------------------------------------------------

def _assemble(plan: ExportPlan, request: ExportRequest) -> ExportOutcome:
    spec = plan.spec
    plan.cache = Cache.open(plan.options.cache)
    base = resolve_platform(plan.base.read(plan.options), plan.options)
    assert isinstance(base, Image)
    base_digest = None if str(plan.base) == "scratch" else str(base.digest)
    if request.format is not None:
        base = convert(base, docker=request.format == "docker")
    if base.is_docker and request.compression == "zstd":
        base = convert(base, docker=False)
    # normalize_modes: the checkout's umask must not change the digest (docs/export.md)
    settings = BuildSettings(compression=request.compression, epoch=plan.epoch,
                             docker=base.is_docker, normalize_modes=True)
    report = Report(app=spec.name, mode="app+files" if request.with_files else "app",
                    base_reference=str(spec.base), base_digest=base_digest,
                    platform=str(plan.platform), licensed=spec.licensed)
    used_rules: set[str] = set()
    base = _filter_base(base, settings, plan, request, report, used_rules)
    built: list[tuple[str, str, BuildResult]] = []
    for layer_spec in spec.layers:
        built.append(("runtime", layer_spec.src,
                      _build(layer_spec, "runtime", settings, plan, report, used_rules)))
    if request.with_files and spec.files is not None:
        built.append(("files", spec.files.src,
                      _build(spec.files, "files", settings, plan, report, used_rules)))
    with tempfile.TemporaryDirectory(prefix="ociforge-tables-") as tmp:
        if request.with_files:
            built += _table_layers(plan, settings, Path(tmp), report)
    for role, source, result in built:
        layer = result.layer
        report.layers.append(LayerEntry(role, source, str(layer.digest), str(layer.diff_id),
                                        layer.size, layer.file_count, layer.media_type))
        report.warnings += sorted(result.warnings)  # the folder walk order varies by machine
    report.left_out_files.sort(
        key=lambda entry: (entry["path"], entry["layer"], entry.get("base_layer", -1)))
    image = append_layers(base, [r.layer for _, _, r in built],
                          created_by=[f"ociforge export: {role} {source}"
                                      for role, source, _ in built], epoch=plan.epoch)
    inventory = inventory_and_licenses(image, report, plan.spec.licenses.allow,
                                       request.include_licensed)
    changes, dropped_values = _config_changes(image, plan, report, used_rules)
    report.rules = {k: v for k, v in plan.policy.describe().items() if k in used_rules}
    if "env-file" in used_rules:
        report.rules["env-file"] = "the env_file itself (its variables go into the config)"
    if "spec-file" in used_rules:
        report.rules["spec-file"] = ("the app's own ociforge.toml (it may hold [config.env] "
                                     "values and database URLs with passwords)")
    # The report is complete except for where the image goes: its digest labels the image.
    changes.labels = {**changes.labels, REPORT_LABEL: report.digest()}
    image = configure(image, changes)
    # Build leftovers (container_config repeats the build's Env and Cmd) go; history
    # text keeps its entries (aligned with the layers) but not the dropped values.
    image = redact_config(image, history_scrubber(plan.policy, dropped_values))
    image = set_created(image, plan.epoch)
    image = drop_annotations(image)  # the base's annotations describe the base, not this app
    if not image.is_docker:
        image = annotate(image, _own_annotations(plan, request, base_digest, report.digest()))
    results = plan.outputs.write(image, plan.options)
    report.image_digest = str(image.digest)
    report.media_type = image.media_type
    report.destinations = [result_entry(result) for result in results]
    outcome = ExportOutcome(image, report, results, inventory=inventory)
    if request.report_path:
        from ..fsutil import write_output_bytes

        write_output_bytes(request.report_path, report.to_json().encode(), what="--report")
    _write_sbom(outcome, plan, request)
    _attach_and_sign(outcome, plan, request)
    return outcome


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
    """SBOM and report as referrers, then a signature, next to every written image."""
    digest = str(outcome.image.digest)
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

            with progress.task("sign", str(location)):
                info = sign_location(location, request.sign_key, request.key_password,
                                     plan.options, digest=digest)
            outcome.signatures.append(info.to_dict())


def _filter_base(base: Image, settings: BuildSettings, plan: ExportPlan, request: ExportRequest,
                 report: Report, used: set[str]) -> Image:
    """Base layers through the file rules: clean ones as they are, others rewritten."""
    if request.keep_base_layers:
        report.base_scanned = False
        scans = [BaseLayerScan(i, layer, layer, scanned=False)
                 for i, layer in enumerate(base.layers)]
        if scans:
            report.warnings.append("base layers were not scanned (--keep-base-layers): license "
                                   "or credential files in them ship as they are")
    else:
        base, scans = filter_base_layers(
            base, plan.policy, RewriteSettings(settings.compression, settings.docker,
                                               settings.threads), cache=plan.cache,
            progress=Progress.of(plan.options))
    for scan in scans:
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


def _skipper(plan: ExportPlan, role: str, report: Report, used: set[str]
             ) -> tuple[Callable[[str, Path], str | None], Callable[[str, str], None], str]:
    """(skip, replay, rules): ``skip`` decides and notes a left-out file; ``replay`` notes
    one a reused layer left out; ``rules`` names everything ``skip`` decides by."""
    env_file = str(plan.spec.config.env_file_path) if plan.spec.config.env_file_path else None
    spec_file = os.path.normpath(str(plan.spec.root / SPEC_NAME))

    def note(image_path: str, rule_name: str) -> None:
        used.add(rule_name)
        report.left_out_files.append({**path_fields("/" + image_path.lstrip("/")),
                                      "rule": rule_name, "layer": role})

    def skip(image_path: str, host_path: Path) -> str | None:
        rule_name: str | None = None
        host = os.path.normpath(str(host_path))
        if env_file is not None and host == env_file:
            rule_name = "env-file"
        elif host == spec_file:
            rule_name = "spec-file"
        else:
            rule = plan.policy.host_file_rule(image_path, host_path, files_layer=role == "files")
            rule_name = rule.name if rule else None
        if rule_name is None:
            return None
        note(image_path, rule_name)
        return rule_name

    rules = repr((plan.policy.file_rules, plan.policy.content_rules, role, env_file, spec_file,
                  str(plan.platform)))
    return skip, note, rules


def _build(layer_spec: PathSpec, role: str, settings: BuildSettings, plan: ExportPlan,
           report: Report, used: set[str]) -> BuildResult:
    log.info("building %s layer from %s", role, layer_spec.src)
    skip, replay, rules = _skipper(plan, role, report, used)
    what = f"{role} layer {layer_spec.src}"
    with Progress.of(plan.options).task("build", what) as task:
        return build_layer_cached(
            plan.cache, [LayerSource(layer_spec.path, layer_spec.dest, layer_spec.exclude)],
            settings, skip=skip, replay=replay, rules=rules,
            deciders=(__name__, "ociforge.app.policy", "ociforge.app.tokens"),
            what=what, progress=task)


def _table_layers(plan: ExportPlan, settings: BuildSettings, tmp: Path, report: Report
                  ) -> list[tuple[str, str, BuildResult]]:
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
        report.tables.append(cast(JSONObject, meta["table"]))
        report.warnings += [w for w in cast(list[str], meta["warnings"])
                            if w not in report.warnings]
        out.append(("table", table.name, result))
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
    for decision in dropped:
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
                           include_licensed: bool) -> Inventory:
    """Take the inventory of the image's final layers (after the rules left files out),
    put the counts and licensed components in the report, and refuse (exit 2, before
    anything is written) licensed software that is neither allowed nor included.

    ``report.layers`` must describe ``image.layers`` one for one (they label the layers).
    """
    refs = []
    for index, layer in enumerate(image.layers):
        entry = report.layers[index] if index < len(report.layers) else None
        label = "" if entry is None else (
            "base" if entry.role == "base" else f"{entry.role} {entry.source}")
        refs.append((LayerRef(index, str(layer.digest), label), layer))
    inventory = take_inventory(refs)
    components = sorted(find_licensed(inventory, allow),
                        key=lambda c: (c.package.name.lower(), c.package.path))
    report.inventory = {"packages": len(inventory.packages),
                        "ecosystems": inventory.ecosystem_counts(),
                        "licenses": inventory.license_overview()}
    report.licensed_components = [c.to_dict() for c in components]
    report.warnings += list(inventory.warnings)
    report.warnings += [f"[licenses] allow {entry!r}: no licensed package of that name in the "
                        "image (a typo?)" for entry in unused_allowances(components, allow)]
    refused = [c for c in components if not c.allowed]
    if refused and not include_licensed:
        shown = "; ".join(c.describe() for c in refused[:5])
        if len(refused) > 5:
            shown += f"; and {len(refused) - 5} more: " + ", ".join(
                c.package.name for c in refused[5:20]) + (" ..." if len(refused) > 20 else "")
        names = ", ".join(f'"{n}"' for n in dict.fromkeys(c.package.name for c in refused))
        raise InvalidInputError(LICENSED_COMPONENTS_REFUSAL.format(found=shown, names=names))
    return inventory


def _check_sbom(request: ExportRequest) -> None:
    if not (request.sbom_path or request.attach_sbom):
        return
    from .sbom import require_spdx_tools

    require_spdx_tools("--sbom" if request.sbom_path else "--attach-sbom")
    if request.sbom_path:
        check_writable_destination(request.sbom_path, "--sbom")


def _write_sbom(outcome: ExportOutcome, plan: ExportPlan, request: ExportRequest) -> None:
    if outcome.inventory is None or not (request.sbom_path or request.attach_sbom):
        return
    from .sbom import spdx_json

    outcome.sbom = spdx_json(outcome.inventory, name=plan.spec.name,
                             image_digest=str(outcome.image.digest), epoch=plan.epoch)
    if request.sbom_path:
        from ..fsutil import write_output_bytes

        write_output_bytes(request.sbom_path, outcome.sbom, what="--sbom")
