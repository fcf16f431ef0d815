"""Does an export report describe this image?  (``ociforge verify SRC --report FILE``)

The report must be intact (``verify_report``: its ``report_digest`` matches its
content, its byte-exact file names agree), and the image must carry that digest
in the config label ``org.ociforge.export-report.digest`` (and, for OCI, the
manifest annotation); the image's digest, platform and layers (digest,
diff_id, size, mediaType, in order) must be the report's.  Every mismatch is a
problem, named; none means the report is this image's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..display import plural
from ..errors import InvalidInputError
from ..fsutil import read_regular
from ..model.image import Image
from ..model.jsonutil import JSONObject
from .report import REPORT_LABEL, verify_report

MAX_REPORT = 256 << 20


@dataclass
class ReportCheck:
    path: str
    report_digest: str | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> JSONObject:
        return {"path": self.path, "report_digest": self.report_digest, "ok": self.ok,
                "problems": list(self.problems)}


def load_report(path: str) -> JSONObject:
    """The report file as a JSON object; anything else is bad input (exit 2)."""
    data = read_regular(path, "--report", limit=MAX_REPORT)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidInputError(f"--report {path!r} is not JSON") from None
    if not isinstance(doc, dict) or "report_digest" not in doc or "layers" not in doc:
        raise InvalidInputError(f"--report {path!r} is not an ociforge export report")
    return doc


def check_report(image: Image, report: JSONObject, path: str) -> ReportCheck:
    """Compare an image with an export report; see the module docstring."""
    digest = report.get("report_digest")
    check = ReportCheck(path, digest if isinstance(digest, str) else None)
    problems = check.problems
    if not verify_report(report):
        problems.append("the report's report_digest does not match its content "
                        "(it was changed after the export)")
    runtime: Any = image.config.get("config")
    labels = runtime.get("Labels") if isinstance(runtime, dict) else None
    label = labels.get(REPORT_LABEL) if isinstance(labels, dict) else None
    if label is None:
        problems.append(f"the image has no {REPORT_LABEL} label: it is not an ociforge export")
    elif label != digest:
        problems.append(f"the image's {REPORT_LABEL} label is {label}, the report's "
                        f"report_digest is {digest}")
    annotations: Any = image.manifest.get("annotations")
    note = annotations.get(REPORT_LABEL) if isinstance(annotations, dict) else None
    if note is not None and note != label:
        problems.append(f"the manifest annotation {REPORT_LABEL} ({note}) differs from the "
                        f"config label ({label})")
    described = report.get("image")
    wanted = described.get("digest") if isinstance(described, dict) else None
    if wanted and wanted != str(image.digest):
        problems.append(f"the report describes image {wanted}, this is {image.digest}")
    platform = image.platform
    if report.get("platform") and platform is not None and str(platform) != report["platform"]:
        problems.append(f"the report is for {report['platform']}, the image for {platform}")
    problems.extend(_layer_problems(image, report.get("layers")))
    return check


def _layer_problems(image: Image, listed: Any) -> list[str]:
    if not isinstance(listed, list):
        return ["the report has no layers list"]
    out = []
    if len(listed) != len(image.layers):
        out.append(f"the report lists {plural(len(listed), 'layer')}, the image has "
                   f"{plural(len(image.layers), 'layer')}")
    diff_ids = image.diff_ids
    for i, (entry, layer) in enumerate(zip(listed, image.layers, strict=False)):
        if not isinstance(entry, dict):
            out.append(f"layer {i}: not an object in the report")
            continue
        have = {"digest": str(layer.digest), "size": layer.size,
                "mediaType": layer.media_type,
                "diff_id": diff_ids[i] if i < len(diff_ids) else None}
        for key, value in have.items():
            if entry.get(key) != value:
                out.append(f"layer {i} ({entry.get('source', '?')}): {key} is {value} in the "
                           f"image, {entry.get(key)} in the report")
    return out
