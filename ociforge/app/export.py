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
from typing import Any

from ..cache import tables as table_cache
from ..cache.layers import build_layer_cached
from ..cache.store import Cache
from ..errors import InvalidInputError
from ..fsutil import check_writable_destination, check_writable_folder
from ..layers.build import BuildResult, BuildSettings, LayerSource, build_layer, settings_epoch
from ..layers.compress import check_compression
from ..model.image import Image
from ..model.layer import Layer
from ..model.mutate import (
    ConfigChanges,
    annotate,
    append_layers,
    configure,
    convert,
    drop_annotations,
    redact_config,
    rfc3339,
    set_created,
)
from ..model.platform import Platform
from ..options import Options
from ..stores.archive import DockerArchiveLocation
from ..stores.locations import Location, WriteResult, parse_location, resolve_platform
from .baselayers import BaseLayerScan, RewriteSettings, filter_base_layers
from .dburl import parse_db_url
from .envfile import read_env_file
from .policy import Policy
from .redact import history_scrubber
from .report import REPORT_LABEL, LayerEntry, Report
from .spec import SPEC_NAME, AppSpec, PathSpec, TableSpec, load_spec
from .tables import open_database, require_pyarrow, snapshot_table

log = logging.getLogger("ociforge.export")

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
    compression: str = "gzip"
    tag: str | None = None                  # NAME:TAG for archives and untagged layouts
    format: str | None = None               # "oci" | "docker" | None (keep the base's)
    source_date_epoch: int | None = None
    sign_key: str | None = None             # sign every destination (cosign-compatible)
    key_password: bytes | None = field(default=None, repr=False)
    attach_report: bool = False             # store the report as a referrer of the image
    keep_base_layers: bool = False          # use base layers as they are (not scanned)
    options: Options = field(default_factory=Options)


@dataclass
class ExportOutcome:
    image: Image
    report: Report
    results: list[WriteResult]
    attached: list[dict[str, str]] = field(default_factory=list)
    signatures: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Plan:
    """Everything phase one checked, ready for phase two."""

    spec: AppSpec
    destinations: list[Location]
    platform: Platform
    options: Options
    epoch: int
    env_layers: list[tuple[str, str, str]]     # (name, value, origin) from env_file and config
    policy: Policy
    base: Location
    allow_env: tuple[str, ...] = ()
    cache: Cache | None = None


def export_app(request: ExportRequest) -> ExportOutcome:
    plan = _check(request)
    return _assemble(plan, request)


# -- phase one: check the input ---------------------------------------------------------

def _check(request: ExportRequest) -> _Plan:
    spec = load_spec(request.app_dir)
    if spec.licensed and not request.include_licensed:
        raise InvalidInputError(LICENSED_REFUSAL.format(name=spec.name))
    check_compression(request.compression)
    if request.format not in (None, "oci", "docker"):
        raise InvalidInputError(f"--format must be oci or docker, not {request.format!r}")
    if request.format == "docker" and request.compression == "zstd":
        raise InvalidInputError("Docker media types have no zstd layers; use --format oci")
    epoch = settings_epoch(request.source_date_epoch)
    for name in request.allow_env:
        if not name or "=" in name:
            raise InvalidInputError(f"--allow-env takes a variable NAME, not {name!r}")
    platform = request.options.platform or (
        Platform.parse(spec.platform) if spec.platform else Platform.host())
    options = dataclasses.replace(request.options, platform=platform, all_platforms=False)
    destinations = _destinations(spec, request)
    if request.sign_key or request.attach_report:
        from ..trust.sign import check_signable

        for location in destinations:
            check_signable(location)
    if request.sign_key:
        from ..trust.keys import load_private_key

        load_private_key(request.sign_key, request.key_password)  # a bad key fails up front
    if request.report_path:
        check_writable_destination(request.report_path, "--report")
    from ..cli.commands._io import check_distinct_outputs, check_offline

    check_distinct_outputs(destinations, request.report_path)
    check_offline(destinations, options)
    env_layers: list[tuple[str, str, str]] = []
    if spec.config.env_file_path is not None:
        env_file = read_env_file(spec.config.env_file_path, spec.config.env_file or "")
        env_layers += [(k, v, "env_file") for k, v in env_file.items()]
    env_layers += [(k, v, "config") for k, v in spec.config.env.items()]
    if request.with_files:
        for i, table in enumerate(spec.tables):
            where = f"{spec.root / 'ociforge.toml'}: tables[{i}]"
            if table.format == "parquet":
                require_pyarrow()
            open_database(table, spec.root, where)
    policy = Policy.for_app(spec.licenses, spec.secrets, request.allow_env)
    return _Plan(spec, destinations, platform, options, epoch, env_layers, policy,
                 _base_location(spec), tuple(dict.fromkeys(request.allow_env)))


def _image_name(spec: AppSpec, tag: str | None) -> str:
    if tag is None:
        return f"{spec.name}:latest"
    from ..stores.archive import ImageName

    ImageName.parse(tag)  # validates NAME[:TAG]
    return tag if ":" in tag.rsplit("/", 1)[-1] else f"{tag}:latest"


def _destinations(spec: AppSpec, request: ExportRequest) -> list[Location]:
    name = _image_name(spec, request.tag)
    texts = list(request.destinations) or [f"{spec.name.rsplit('/', 1)[-1]}.tar"]
    out: list[Location] = []
    for text in texts:
        location = parse_location(text)
        from ..stores.layout import LayoutLocation

        if isinstance(location, LayoutLocation) and location.tag is None:
            location = LayoutLocation(location.path, name.rsplit(":", 1)[1])
        with_default = getattr(location, "with_default_name", None)
        if with_default is not None:
            location = with_default(name)
        check = getattr(location, "check_destination", None)
        if check is not None:
            check()
        path = getattr(location, "path", None)
        if isinstance(location, LayoutLocation):
            check_writable_folder(location.path)
        elif isinstance(path, str):
            check_writable_destination(path)
        if request.compression == "zstd" and isinstance(location, DockerArchiveLocation):
            raise InvalidInputError(f"output {text!r}: docker load cannot read zstd layers; "
                                    "use --compression gzip or write oci-archive:")
        out.append(location)
    return out


def destination_entry(location: Location, result: WriteResult) -> dict[str, str]:
    """Where one copy went, machine-readable: a location ociforge reads back (a docker
    archive's image name is a field of its own, not a decoration), digest, media type."""
    entry = {"location": str(location), "digest": result.digest,
             "mediaType": result.media_type}
    if isinstance(location, DockerArchiveLocation):
        path = location.path
        bare = path.endswith((".tar", ".tar.gz", ".tgz"))  # what parse_location takes bare
        entry["location"] = path if bare else f"docker-archive:{path}"
        entry["name"] = location.image_name().repo_tag
    return entry


def _base_location(spec: AppSpec) -> Location:
    """The base; local paths in ociforge.toml are relative to the app folder."""
    text = spec.base
    location = parse_location(text)
    path = getattr(location, "path", None)
    if isinstance(path, str) and not os.path.isabs(os.path.expanduser(path)):
        scheme, sep, rest = text.partition(":")
        if sep and scheme in ("oci", "oci-archive", "docker-archive"):
            text = f"{scheme}:{spec.root / rest}"
        else:
            text = str(spec.root / text)
        location = parse_location(text)
    return location


# -- phase two: assemble and write ------------------------------------------------------

def _assemble(plan: _Plan, request: ExportRequest) -> ExportOutcome:
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
    for location in plan.destinations:  # every destination agrees before the first write
        accepts = getattr(location, "check_artifact", None)
        if callable(accepts):
            accepts(image)
    results = []
    for location in plan.destinations:
        log.info("writing %s", location)
        results.append(location.write(image, plan.options))
    report.image_digest = str(image.digest)
    report.media_type = image.media_type
    report.destinations = [destination_entry(location, result)
                           for location, result in zip(plan.destinations, results, strict=True)]
    outcome = ExportOutcome(image, report, results)
    if request.report_path:
        from ..fsutil import write_output_bytes

        write_output_bytes(request.report_path, report.to_json().encode(), what="--report")
    _attach_and_sign(outcome, plan, request)
    return outcome


def _own_annotations(plan: _Plan, request: ExportRequest, base_digest: str | None,
                     report_digest: str) -> dict[str, str]:
    """created, title/version (from --tag, else the app's name), and the base: its digest,
    and its name only when it is a registry reference (a host path is no name)."""
    from ..cli.commands.append import (
        ANNOTATION_BASE_DIGEST,
        ANNOTATION_BASE_NAME,
        ANNOTATION_CREATED,
        ANNOTATION_TITLE,
        base_name_of,
        derived_annotations,
    )

    notes = {ANNOTATION_CREATED: rfc3339(plan.epoch)}
    if request.tag:
        notes.update(derived_annotations(request.tag, None))
    else:
        notes[ANNOTATION_TITLE] = plan.spec.name.rsplit("/", 1)[-1]
    if base_digest:
        notes[ANNOTATION_BASE_DIGEST] = base_digest
        base_name = base_name_of(plan.base)
        if base_name is not None:
            notes[ANNOTATION_BASE_NAME] = base_name
    notes[REPORT_LABEL] = report_digest
    return notes


def _attach_and_sign(outcome: ExportOutcome, plan: _Plan, request: ExportRequest) -> None:
    """Report as a referrer, then a signature, next to every written image."""
    digest = str(outcome.image.digest)
    for location in plan.destinations:
        if request.attach_report:
            from ..trust.referrers import attach_report

            desc = attach_report(location, outcome.report.to_json().encode(), plan.options,
                                 digest=digest)
            outcome.attached.append({"location": str(location), "digest": str(desc.digest)})
        if request.sign_key:
            from ..trust.sign import sign_location

            info = sign_location(location, request.sign_key, request.key_password,
                                 plan.options, digest=digest)
            outcome.signatures.append(info.to_dict())


def _filter_base(base: Image, settings: BuildSettings, plan: _Plan, request: ExportRequest,
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
                                               settings.threads), cache=plan.cache)
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
            report.left_out_files.append({"path": item.path, "rule": item.rule,
                                          "layer": "base", "base_layer": scan.index})
    return base


def _skipper(plan: _Plan, role: str, report: Report, used: set[str]
             ) -> tuple[Callable[[str, Path], str | None], Callable[[str, str], None], str]:
    """(skip, replay, rules): ``skip`` decides and notes a left-out file; ``replay`` notes
    one a reused layer left out; ``rules`` names everything ``skip`` decides by."""
    env_file = str(plan.spec.config.env_file_path) if plan.spec.config.env_file_path else None
    spec_file = os.path.normpath(str(plan.spec.root / SPEC_NAME))

    def note(image_path: str, rule_name: str) -> None:
        used.add(rule_name)
        report.left_out_files.append({"path": "/" + image_path.lstrip("/"), "rule": rule_name,
                                      "layer": role})

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


def _build(layer_spec: PathSpec, role: str, settings: BuildSettings, plan: _Plan,
           report: Report, used: set[str]) -> BuildResult:
    log.info("building %s layer from %s", role, layer_spec.src)
    skip, replay, rules = _skipper(plan, role, report, used)
    return build_layer_cached(
        plan.cache, [LayerSource(layer_spec.path, layer_spec.dest, layer_spec.exclude)],
        settings, skip=skip, replay=replay, rules=rules,
        deciders=(__name__, "ociforge.app.policy"), what=f"{role} layer {layer_spec.src}")


def _table_layers(plan: _Plan, settings: BuildSettings, tmp: Path, report: Report
                  ) -> list[tuple[str, str, BuildResult]]:
    out = []
    for i, table in enumerate(plan.spec.tables):
        where = f"{plan.spec.root / 'ociforge.toml'}: tables[{i}]"
        folder = tmp / str(i)
        folder.mkdir()
        entry = _table_entry(plan, table, settings, where)
        again = functools.partial(_table_again, plan, table, settings, where)
        reused = table_cache.reuse(entry, again) if entry is not None else None
        if reused is not None:
            result, meta = reused
        else:
            result, meta = _snapshot_layer(plan, table, settings, folder, where)
            if entry is not None:
                table_cache.store(entry, result, meta)
        report.tables.append(meta)
        out.append(("table", table.name, result))
    return out


def _snapshot_layer(plan: _Plan, table: TableSpec, settings: BuildSettings, folder: Path,
                    where: str) -> tuple[BuildResult, dict[str, Any]]:
    """Read one table into a file in ``folder`` and build its layer; and its report entry."""
    log.info("reading table %s", table.name)
    snap = snapshot_table(table, plan.spec.root, folder, where)
    os.chmod(snap.path, 0o644)  # the umask must not change the layer's bytes
    result = build_layer([LayerSource(snap.path, table.dest)], settings)
    return result, {"name": table.name, "source": snap.source_shown, "format": table.format,
                    "dest": table.dest, "rows": snap.rows, "columns": list(snap.columns),
                    "digest": str(snap.digest), "size": snap.size}


def _table_again(plan: _Plan, table: TableSpec, settings: BuildSettings, where: str) -> Layer:
    """A reused table layer whose cached blob turned out damaged: read the table again."""
    with tempfile.TemporaryDirectory(prefix="ociforge-tables-") as folder:
        return _snapshot_layer(plan, table, settings, Path(folder), where)[0].layer


def _table_entry(plan: _Plan, table: TableSpec, settings: BuildSettings,
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
                                   ("ociforge.app.tables",))


def _config_changes(image: Image, plan: _Plan, report: Report, used: set[str]
                    ) -> tuple[ConfigChanges, set[str]]:
    """The runtime config: the app's settings and the environment the policy keeps;
    and the values of every dropped variable (to mask them in the history text)."""
    runtime = image.config.get("config") if isinstance(image.config.get("config"), dict) else {}
    base_env: list[tuple[str, str, str]] = []
    for item in (runtime or {}).get("Env") or []:
        if isinstance(item, str):
            key, _, value = item.partition("=")
            base_env.append((key, value, "base"))
    leftover = image.config.get("container_config")
    leftover_env = leftover.get("Env") if isinstance(leftover, dict) else None
    build_env = [tuple(item.partition("=")[::2]) for item in leftover_env or []
                 if isinstance(item, str)]
    known = {name for name, _, _ in base_env + plan.env_layers}
    missing = [name for name in plan.allow_env if name not in known]
    for name in reversed(missing):  # first, so the summary's first warnings show them
        report.warnings.insert(0, f"--allow-env {name}: no such variable in the base, "
                                  "env_file or [config] env (a typo?)")
    kept, dropped = plan.policy.filter_env(base_env + plan.env_layers)
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
