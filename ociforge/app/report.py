"""The export report: what went into the image, and what was kept out and why.

The report's digest is stored in the image as the config label
``org.ociforge.export-report.digest`` so a report can be matched to an image
later.  The image digest depends on that label, so the digest cannot cover the
whole report: it is the sha256 of the canonical JSON (sorted keys, no spaces,
UTF-8) of the report WITHOUT its ``image`` and ``report_digest`` members.  To
check a report: drop those two keys, serialise canonically, hash, and compare
with the label.

Names are not always text: a file name that is not UTF-8 is written in
``path`` with each such byte as ``\\xNN`` and its exact bytes in
``path_bytes_b64`` (see ociforge.display); every other string of the report is
valid Unicode the same way.  The stderr summary escapes control characters too,
so a file name cannot forge a line of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..display import bytes_of, human, json_safe, json_text, path_fields, plural
from ..model.digest import Digest
from ..model.jsonutil import JSONObject, canonical, pretty
from ..model.layer import Layer

REPORT_LABEL = "org.ociforge.export-report.digest"
REPORT_FORMAT = 2
_UNHASHED = ("image", "report_digest")


@dataclass
class LayerEntry:
    role: str               # base, runtime, files, table
    source: str             # the app-relative src, the table name, or the base reference
    digest: str
    diff_id: str | None
    size: int
    files: int | None
    media_type: str
    scanned: bool = True                    # base layers: went through the file rules
    original_digest: str | None = None      # base layers rewritten without left-out files
    original_diff_id: str | None = None
    shared: bool | None = None              # several platforms: the blob is in others too

    @classmethod
    def of(cls, role: str, source: str, layer: Layer, scanned: bool = True,
           original: Layer | None = None) -> LayerEntry:
        """The entry of ``layer``; ``original``: the base layer it was rewritten from."""
        return cls(role, source, str(layer.digest),
                   str(layer.diff_id) if layer.diff_id else None, layer.size,
                   layer.file_count, layer.media_type, scanned=scanned,
                   original_digest=str(original.digest) if original is not None else None,
                   original_diff_id=(str(original.diff_id)
                                     if original is not None and original.diff_id else None))

    def to_dict(self) -> JSONObject:
        out: JSONObject = {
            "role": self.role, "source": self.source, "digest": self.digest,
            "diff_id": self.diff_id, "size": self.size, "files": self.files,
            "mediaType": self.media_type}
        if self.shared is not None:
            out["shared"] = self.shared
        if self.role == "base":
            out["scanned"] = self.scanned
            out["rewritten"] = self.original_digest is not None
            if self.original_digest is not None:
                out["original"] = {"digest": self.original_digest,
                                   "diff_id": self.original_diff_id}
        return out


@dataclass
class Report:
    app: str
    mode: str                                   # "app" or "app+files"
    base_reference: str
    base_digest: str | None
    platform: str
    layers: list[LayerEntry] = field(default_factory=list)
    dropped_env: list[dict[str, str]] = field(default_factory=list)
    left_out_files: list[JSONObject] = field(default_factory=list)
    base_scanned: bool = True                   # False with --keep-base-layers
    tables: list[JSONObject] = field(default_factory=list)
    rules: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    image_digest: str | None = None
    media_type: str | None = None
    destinations: list[dict[str, str]] = field(default_factory=list)
    licensed: bool = False                      # licensed = true, exported with --include-licensed
    overridden: list[dict[str, str]] = field(default_factory=list)  # kept by --allow-env
    inventory: dict[str, Any] | None = None     # packages, per ecosystem, per license (counts)
    licensed_components: list[dict[str, Any]] = field(default_factory=list)
    rootfs: dict[str, Any] | None = None        # a rootfs's delta: compare mode and counts
    # several platforms: one report per platform (its base, layers, inventory); the
    # lists above then hold what every platform shares, the rest naming its platforms
    platforms: list[Report] = field(default_factory=list)
    manifests: list[dict[str, str]] = field(default_factory=list)   # platform, digest

    @classmethod
    def combine(cls, reports: list[Report], base_digest: str | None) -> Report:
        """One report for the platforms of one export (each report one platform's, in
        order).  A layer whose blob is in several platforms is marked ``shared``; an
        entry of dropped_env or left_out_files that holds for every platform is listed
        once, one that holds for some names them in ``platforms``; a warning of some
        platforms only starts with their names."""
        first = reports[0]
        counts: dict[str, int] = {}
        for report in reports:
            for digest in {layer.digest for layer in report.layers}:
                counts[digest] = counts.get(digest, 0) + 1
        for report in reports:
            for layer in report.layers:
                layer.shared = counts[layer.digest] > 1
        names = [report.platform for report in reports]
        rules: dict[str, str] = {}
        for report in reports:
            rules.update(report.rules)
        combined = cls(
            app=first.app, mode=first.mode, base_reference=first.base_reference,
            base_digest=base_digest, platform=",".join(names),
            dropped_env=_merge([(r.platform, r.dropped_env) for r in reports], names),
            overridden=_merge([(r.platform, r.overridden) for r in reports], names),
            left_out_files=sorted(
                _merge([(r.platform, r.left_out_files) for r in reports], names),
                key=lambda item: (item["path"], item["layer"], item.get("base_layer", -1),
                                  item.get("platforms", []))),
            base_scanned=first.base_scanned, tables=first.tables,
            rules=dict(sorted(rules.items())),
            warnings=[warning if len(where) == len(names) else f"{', '.join(where)}: {warning}"
                      for warning, where in _occurrences(
                          [(r.platform, r.warnings) for r in reports])],
            licensed=first.licensed, platforms=reports)
        return combined

    def content(self) -> JSONObject:
        """Everything the report digest covers (no image digest, no destinations)."""
        if self.platforms:
            return self._platforms_content()
        out = self._shared_content()
        out["platform"] = self.platform
        out["layers"] = [layer.to_dict() for layer in self.layers]
        if self.licensed:  # only then, so reports of ordinary apps keep their digests
            out["licensed"] = {"app": True, "exported_with": "--include-licensed"}
        if self.rootfs is not None:
            out["rootfs"] = self.rootfs
        if self.overridden:  # likewise: only exports with --allow-env that kept something
            out["overridden"] = self.overridden
        out.update(self._inventory_content())
        return json_safe(out)

    def _shared_content(self) -> JSONObject:
        """What every report's content holds, of one platform or several (the JSON is
        written and hashed with sorted keys, so the order here is free)."""
        return {
            "format": REPORT_FORMAT,
            "app": self.app,
            "mode": self.mode,
            "base": {"reference": self.base_reference, "digest": self.base_digest},
            "base_scanned": self.base_scanned,
            "dropped_env": self.dropped_env,
            "left_out_files": self.left_out_files,
            "tables": self.tables,
            "rules": self.rules,
            "warnings": self.warnings,
        }

    def _platforms_content(self) -> JSONObject:
        """The content of a report over several platforms: the shared lists, and per
        platform its base digest, layers, inventory and licensed components."""
        out = self._shared_content()
        out["platforms"] = [report._platform_entry() for report in self.platforms]
        refused = sum(1 for report in self.platforms for c in report.licensed_components
                      if not c.get("allowed"))
        if self.licensed or refused:
            licensed: dict[str, Any] = {"app": self.licensed,
                                        "exported_with": "--include-licensed"}
            if refused:
                licensed["components"] = refused
            out["licensed"] = licensed
        if self.overridden:  # as in a one-platform report: only when something was kept
            out["overridden"] = self.overridden
        return json_safe(out)

    def _platform_entry(self) -> JSONObject:
        out: JSONObject = {"platform": self.platform, "base": {"digest": self.base_digest},
                           "layers": [layer.to_dict() for layer in self.layers]}
        if self.inventory is not None:
            out["inventory"] = self.inventory
        if self.licensed_components:
            out["licensed_components"] = self.licensed_components
        return out

    def _inventory_content(self) -> dict[str, Any]:
        """What ships: package and license counts, and every licensed component."""
        out: dict[str, Any] = {}
        if self.inventory is not None:
            out["inventory"] = self.inventory
        if self.licensed_components:
            out["licensed_components"] = self.licensed_components
            refused = [c for c in self.licensed_components if not c.get("allowed")]
            if refused:
                licensed = out.setdefault("licensed", {"app": self.licensed,
                                                       "exported_with": "--include-licensed"})
                licensed["components"] = len(refused)
        return out

    def digest(self) -> str:
        return _content_digest(self.content())

    def to_dict(self) -> JSONObject:
        out = self.content()
        out["report_digest"] = _content_digest(out)
        image: dict[str, Any] = {"digest": self.image_digest, "mediaType": self.media_type,
                                 "destinations": self.destinations}
        if self.manifests:
            image["manifests"] = self.manifests
        out["image"] = json_safe(image)
        return out

    def to_json(self) -> str:
        return pretty(self.to_dict()) + "\n"

    def summary(self) -> str:
        """One screen for stderr: counts and names, never values."""
        shown = ", ".join(r.platform for r in self.platforms) or self.platform
        lines = [f"exported {self.app} ({self.mode}) for {shown}",
                 f"  base     {self.base_reference}"
                 + (f" @ {self.base_digest}" if self.base_digest else "")]
        for report in self.platforms or [self]:
            if self.platforms:
                lines.append(f"  platform {report.platform}"
                             + (f" (base @ {report.base_digest})" if report.base_digest
                                else ""))
            lines += report._layer_lines()
        if self.rootfs is not None:
            lines.append(f"  rootfs   {self.rootfs['added']} added, {self.rootfs['changed']} "
                         f"changed, {self.rootfs['deleted']} deleted (compared by "
                         f"{self.rootfs['compare']})")
        if self.licensed:
            lines.append("  licensed app exported with --include-licensed (its license keys "
                         "and server settings are left out)")
        for report in self.platforms or [self]:
            lines += report._inventory_lines(f"{report.platform}: " if self.platforms else "")
        if not self.base_scanned:
            lines.append("  base     layers NOT scanned (--keep-base-layers): "
                         "license or credential files in them ship as they are")
        for table in self.tables:
            rows = plural(int(str(table["rows"])), "row")
            lines.append(f"  table    {table['name']:<17} {rows} -> {table['dest']}")
        if self.dropped_env:
            lines.append("  dropped  variables: " + ", ".join(
                f"{d['name']} ({d['rule']})" for d in self.dropped_env[:12])
                + (f" and {len(self.dropped_env) - 12} more" if len(self.dropped_env) > 12
                   else ""))
        if self.overridden:
            lines.append("  kept     variables: " + ", ".join(
                f"{d['name']} (--allow-env, overrides {d['rule']})" for d in self.overridden))
        if self.left_out_files:
            listed = self.left_out_files[:8]
            folders = sum(1 for f in self.left_out_files if f.get("folder"))
            counts = [plural(n, what) for n, what in
                      ((len(self.left_out_files) - folders, "file"), (folders, "folder")) if n]
            lines.append(f"  left out {' and '.join(counts)}: " + ", ".join(
                f"{f['path']}{'/' if f.get('folder') else ''} ({f['rule']})" for f in listed)
                + (" ..." if len(self.left_out_files) > len(listed) else ""))
        for warning in self.warnings[:5]:
            lines.append(f"  warning  {warning}")
        if self.manifests:
            lines.append(f"  index    {self.image_digest}")
            lines += [f"  image    {entry['platform']} {entry['digest']}"
                      for entry in self.manifests]
        else:
            lines.append(f"  image    {self.image_digest}")
        for dest in self.destinations:
            named = f" ({dest['name']})" if dest.get("name") else ""
            lines.append(f"  wrote    {dest['location']}{named}")
        lines.append(f"  report   {self.digest()}")
        return "\n".join(human(line) for line in lines)  # a name cannot start a line

    def _layer_lines(self) -> list[str]:
        lines = []
        for layer in self.layers:
            files = f"{plural(layer.files, 'file')}, " if layer.files is not None else ""
            lines.append(f"  layer    {layer.role:<8} {layer.source:<24} "
                         f"{files}{_size(layer.size)}  {layer.digest[:19]}"
                         + (f"  rewritten (was {layer.original_digest[:19]})"
                            if layer.original_digest else "")
                         + ("  shared" if layer.shared else ""))
        return lines

    def _inventory_lines(self, where: str = "") -> list[str]:
        """The license overview (count per license) and the licensed components; ``where``
        starts each line's text (the platform, in a report of several)."""
        lines: list[str] = []
        if self.inventory is not None and not self.inventory.get("packages"):
            lines.append(f"  packages {where}none found (no dpkg, apk, Python, conda, R or "
                         "npm metadata)")
        elif self.inventory is not None:
            ecosystems = ", ".join(f"{k} {v}" for k, v in self.inventory["ecosystems"].items())
            overview = list(self.inventory["licenses"].items())
            shown = ", ".join(f"{name} {count}" for name, count in overview[:10])
            more = f" and {len(overview) - 10} more" if len(overview) > 10 else ""
            lines.append(f"  packages {where}{self.inventory['packages']} ({ecosystems})")
            lines.append(f"  licenses {where}{shown}{more}")
        for component in self.licensed_components[:8]:
            how = "allowed by [licenses] allow" if component.get("allowed") \
                else "exported with --include-licensed"
            lines.append(f"  licensed {where}{component['name']} {component['version']} "
                         f"({component['ecosystem']}, layer {component['layer'] + 1}): {how}")
        if len(self.licensed_components) > 8:
            lines.append(f"  licensed {where}... and {len(self.licensed_components) - 8} more "
                         "(see the report's licensed_components)")
        return lines


def left_out_entry(path: str, rule: str, layer: str) -> JSONObject:
    """A ``left_out_files`` entry; ``path`` is an image path, a folder's ending in "/"
    (the entry then says ``folder``: left out whole, with everything in it)."""
    folder = path.endswith("/") and path.strip("/") != ""
    entry: JSONObject = {**path_fields("/" + path.strip("/")), "rule": rule, "layer": layer}
    if folder:
        entry["folder"] = True
    return entry


def _content_digest(content: JSONObject) -> str:
    """The report digest: sha256 of the canonical JSON of the content (see the module
    docstring)."""
    return str(Digest.of_bytes(canonical(content)))


def verify_report(report: JSONObject) -> bool:
    """True when a report's ``report_digest`` matches its content and every file name
    given as exact bytes (``path_bytes_b64``) agrees with its ``path``."""
    content = {k: v for k, v in report.items() if k not in _UNHASHED}
    if _content_digest(content) != report.get("report_digest"):
        return False
    entries = report.get("left_out_files") or []
    if not isinstance(entries, list):
        return False
    for entry in entries:
        try:
            if not isinstance(entry, dict) or json_text(bytes_of(entry)) != entry["path"]:
                return False
        except (KeyError, ValueError):
            return False
    return True


def _occurrences(lists: list[tuple[str, list[Any]]]) -> list[tuple[Any, list[str]]]:
    """Each distinct item (equal items are one), in first-seen order, with the names of
    the lists holding it."""
    found: dict[bytes, tuple[Any, list[str]]] = {}
    for name, items in lists:
        for item in items:
            entry = found.setdefault(canonical(item), (item, []))
            if name not in entry[1]:
                entry[1].append(name)
    return list(found.values())


def _merge(lists: list[tuple[str, list[Any]]], names: list[str]) -> list[Any]:
    """Dict entries of several platforms' lists: once each, with ``platforms`` naming
    where it holds unless it holds for every platform."""
    return [item if len(where) == len(names) else {**item, "platforms": where}
            for item, where in _occurrences(lists)]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
