"""What ships: the inventory of the final layers, licensed software in it
(refused unless allowed or included), and the SPDX SBOM."""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import InvalidInputError
from ...fsutil import check_writable_destination
from ...model.image import Image
from ...model.layer import Layer
from ..inventory import (
    Inventory,
    InventoryTaker,
    LayerRef,
    LicensedComponent,
    find_licensed,
    take_inventories,
    take_inventory,
    unused_allowances,
)
from ..report import Report
from .api import ExportOutcome, ExportPlan, ExportRequest
from .built import PlatformImage

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


def platform_inventories(children: Sequence[PlatformImage], plan: ExportPlan,
                         request: ExportRequest) -> None:
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


def check_sbom(request: ExportRequest) -> None:
    if not (request.sbom_path or request.attach_sbom):
        return
    from ..sbom import require_spdx_tools

    require_spdx_tools("--sbom" if request.sbom_path else "--attach-sbom")
    if request.sbom_path:
        check_writable_destination(request.sbom_path, "--sbom")


def write_sbom(outcome: ExportOutcome, plan: ExportPlan, request: ExportRequest) -> None:
    if not outcome.inventories or not (request.sbom_path or request.attach_sbom):
        return
    from ..sbom import spdx_json, spdx_json_platforms

    if isinstance(outcome.image, Image):
        outcome.sbom = spdx_json(outcome.inventories[0], name=plan.spec.name,
                                 image_digest=str(outcome.image.digest), epoch=plan.epoch)
    else:
        outcome.sbom = spdx_json_platforms(
            [(entry["platform"], entry["digest"], inventory) for entry, inventory
             in zip(outcome.platform_digests(), outcome.inventories, strict=True)],
            name=plan.spec.name, index_digest=str(outcome.image.digest), epoch=plan.epoch)
    if request.sbom_path:
        from ...fsutil import write_output_bytes

        write_output_bytes(request.sbom_path, outcome.sbom, what="--sbom")
