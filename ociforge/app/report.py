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

from ..display import bytes_of, human, json_safe, json_text, plural
from ..model.digest import Digest
from ..model.jsonutil import JSONObject, canonical, pretty

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

    def to_dict(self) -> JSONObject:
        out: JSONObject = {
            "role": self.role, "source": self.source, "digest": self.digest,
            "diff_id": self.diff_id, "size": self.size, "files": self.files,
            "mediaType": self.media_type}
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

    def content(self) -> JSONObject:
        """Everything the report digest covers (no image digest, no destinations)."""
        out: JSONObject = {
            "format": REPORT_FORMAT,
            "app": self.app,
            "mode": self.mode,
            "base": {"reference": self.base_reference, "digest": self.base_digest},
            "base_scanned": self.base_scanned,
            "platform": self.platform,
            "layers": [layer.to_dict() for layer in self.layers],
            "dropped_env": self.dropped_env,
            "left_out_files": self.left_out_files,
            "tables": self.tables,
            "rules": self.rules,
            "warnings": self.warnings,
        }
        if self.licensed:  # only then, so reports of ordinary apps keep their digests
            out["licensed"] = {"app": True, "exported_with": "--include-licensed"}
        if self.overridden:  # likewise: only exports with --allow-env that kept something
            out["overridden"] = self.overridden
        out.update(self._inventory_content())
        return json_safe(out)

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
        return str(Digest.of_bytes(canonical(self.content())))

    def to_dict(self) -> JSONObject:
        out = self.content()
        out["report_digest"] = self.digest()
        out["image"] = json_safe({"digest": self.image_digest, "mediaType": self.media_type,
                                  "destinations": self.destinations})
        return out

    def to_json(self) -> str:
        return pretty(self.to_dict()) + "\n"

    def summary(self) -> str:
        """One screen for stderr: counts and names, never values."""
        lines = [f"exported {self.app} ({self.mode}) for {self.platform}",
                 f"  base     {self.base_reference}"
                 + (f" @ {self.base_digest}" if self.base_digest else "")]
        for layer in self.layers:
            files = f"{plural(layer.files, 'file')}, " if layer.files is not None else ""
            lines.append(f"  layer    {layer.role:<8} {layer.source:<24} "
                         f"{files}{_size(layer.size)}  {layer.digest[:19]}"
                         + (f"  rewritten (was {layer.original_digest[:19]})"
                            if layer.original_digest else ""))
        if self.licensed:
            lines.append("  licensed app exported with --include-licensed (its license keys "
                         "and server settings are left out)")
        lines += self._inventory_lines()
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
            shown = self.left_out_files[:8]
            lines.append(f"  left out {plural(len(self.left_out_files), 'file')}: " + ", ".join(
                f"{f['path']} ({f['rule']})" for f in shown)
                + (" ..." if len(self.left_out_files) > len(shown) else ""))
        for warning in self.warnings[:5]:
            lines.append(f"  warning  {warning}")
        lines.append(f"  image    {self.image_digest}")
        for dest in self.destinations:
            named = f" ({dest['name']})" if dest.get("name") else ""
            lines.append(f"  wrote    {dest['location']}{named}")
        lines.append(f"  report   {self.digest()}")
        return "\n".join(human(line) for line in lines)  # a name cannot start a line

    def _inventory_lines(self) -> list[str]:
        """The license overview (count per license) and the licensed components."""
        lines: list[str] = []
        if self.inventory is not None and not self.inventory.get("packages"):
            lines.append("  packages none found (no dpkg, apk, Python, conda, R or npm metadata)")
        elif self.inventory is not None:
            ecosystems = ", ".join(f"{k} {v}" for k, v in self.inventory["ecosystems"].items())
            overview = list(self.inventory["licenses"].items())
            shown = ", ".join(f"{name} {count}" for name, count in overview[:10])
            more = f" and {len(overview) - 10} more" if len(overview) > 10 else ""
            lines.append(f"  packages {self.inventory['packages']} ({ecosystems})")
            lines.append(f"  licenses {shown}{more}")
        for component in self.licensed_components[:8]:
            how = "allowed by [licenses] allow" if component.get("allowed") \
                else "exported with --include-licensed"
            lines.append(f"  licensed {component['name']} {component['version']} "
                         f"({component['ecosystem']}, layer {component['layer'] + 1}): {how}")
        if len(self.licensed_components) > 8:
            lines.append(f"  licensed ... and {len(self.licensed_components) - 8} more "
                         "(see the report's licensed_components)")
        return lines


def verify_report(report: JSONObject) -> bool:
    """True when a report's ``report_digest`` matches its content and every file name
    given as exact bytes (``path_bytes_b64``) agrees with its ``path``."""
    content = {k: v for k, v in report.items() if k not in _UNHASHED}
    if str(Digest.of_bytes(canonical(content))) != report.get("report_digest"):
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


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
