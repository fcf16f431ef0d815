"""The app's own layers: one per ``[[layers]]`` entry, the files layer with
``--with-files``, and the tables; each built once when no platform placeholder
makes them differ.  The file rules (license material, secrets, the env_file and
ociforge.toml) decide what each walk leaves out: this module's source is part of
the layer cache key."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ...cache.keys import key_text
from ...cache.layers import build_layer_cached
from ...layers.build import BuildSettings, LayerSource
from ...layers.layerfiles import Kept, SkipCallback, is_folder
from ...model.platform import Platform
from ...progress.events import Progress
from ..spec import SPEC_NAME, AppSpec, PathSpec
from .api import ExportPlan, ExportRequest
from .built import Built
from .tablelayers import table_layers

log = logging.getLogger("ociforge.export")

# The modules whose code decides what a walk leaves out (the layer cache key holds their source).
FILE_RULE_DECIDERS = (__name__, "ociforge.app.policy", "ociforge.app.tokens",
                      "ociforge.app.placeholders")


def build_layers(plan: ExportPlan, request: ExportRequest, settings: BuildSettings,
                 platforms: Sequence[Platform]) -> list[list[Built]]:
    """Every platform's layers: runtime, files (with --with-files), tables.  An entry whose
    ``src`` has no placeholders (and every table) is built once and shared: the same
    blob in every platform's image."""
    spec = plan.spec
    done: dict[tuple[str, str, str, tuple[str, ...]], Built] = {}

    def build(entry: PathSpec, role: str) -> Built:
        key = (role, str(entry.path), entry.dest, entry.exclude)
        if key not in done:
            done[key] = _build(entry, role, settings, plan)
        return done[key]

    per_platform: list[list[Built]] = []
    workspace = workspace_of(spec)
    for platform in platforms:
        built = [build(entry.for_platform(platform), "runtime") for entry in spec.layers]
        if request.with_files and workspace is not None:
            built.append(build(workspace.for_platform(platform), "files"))
        per_platform.append(built)
    if request.with_files:
        with tempfile.TemporaryDirectory(prefix="ociforge-tables-") as tmp:
            tables = table_layers(plan, settings, Path(tmp))
        for built in per_platform:
            built += tables
    return per_platform


def _build(layer_spec: PathSpec, role: str, settings: BuildSettings, plan: ExportPlan
           ) -> Built:
    log.info("building %s layer from %s", role, layer_spec.src)
    left_out: list[tuple[str, str]] = []
    skip, replay, rules = skipper(plan, role, left_out)
    what = f"{role} layer {layer_spec.src}"
    source = LayerSource(layer_spec.path, layer_spec.dest, layer_spec.exclude)
    with Progress.of(plan.options).task("build", what) as task:
        result = build_layer_cached(
            plan.cache, [source], settings, skip=skip,
            replay=lambda path, rule: replay(path, rule, source.host_of(path)), rules=rules,
            deciders=FILE_RULE_DECIDERS,
            what=what, progress=task)
    return Built(role, layer_spec.src, result, left_out)


def skipper(plan: ExportPlan, role: str, left_out: list[tuple[str, str]],
            read_os_trees: bool = True
            ) -> tuple[SkipCallback, Callable[[str, str, Path | None], None], str]:
    """(skip, replay, rules): ``skip`` decides and notes a left-out file; ``replay`` notes
    one a reused layer left out; ``rules`` names everything ``skip`` decides by (not the
    platform: a layer's bytes do not depend on it, so platforms share it).

    ``read_os_trees`` False: token rules do not read the operating system's own trees
    (a rootfs's /usr holds packages' docs full of example tokens)."""
    env_file = str(plan.spec.config.env_file_path) if plan.spec.config.env_file_path else None
    spec_file = os.path.normpath(str(plan.spec.root / SPEC_NAME))

    def note(image_path: str, rule_name: str, host: Path | None = None) -> None:
        left_out.append((image_path + "/" * is_folder(host), rule_name))  # "/": a folder

    def skip(image_path: str, host_path: Path) -> str | Kept | None:
        rule_name: str | None = None
        host = os.path.normpath(str(host_path))
        unread: list[str] = []      # a text file too long to read for tokens to its end
        if env_file is not None and host == env_file:
            rule_name = "env-file"
        elif host == spec_file:
            rule_name = "spec-file"
        else:
            rule = plan.policy.host_file_rule(image_path, host_path, files_layer=role == "files",
                                              read_os_trees=read_os_trees, warn=unread.append)
            rule_name = rule.name if rule else None
        if rule_name is None:
            return Kept(unread[0]) if unread else None
        note(image_path, rule_name, host_path)
        return rule_name

    rules = key_text(plan.policy, role, env_file, spec_file)
    return skip, note, rules


def workspace_of(spec: AppSpec) -> PathSpec | None:
    """``[files]``; with a rootfs and no ``[files]``, the rootfs's /files when there is one."""
    if spec.files is not None or spec.rootfs is None:
        return spec.files
    default = spec.rootfs / "files"
    if not default.is_dir() or default.is_symlink():
        return None
    return PathSpec("/files", default, "/files")
