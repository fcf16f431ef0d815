"""After the writes: the SBOM and report as referrers of what was written, and
signatures next to every written image."""

from __future__ import annotations

from ...model.index import Index
from ...progress.events import Progress
from .api import ExportOutcome, ExportPlan, ExportRequest


def attach_and_sign(outcome: ExportOutcome, plan: ExportPlan, request: ExportRequest
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
            from ...trust.referrers import attach_sbom

            with progress.task("attach", str(location), label=f"SBOM to {location}"):
                desc = attach_sbom(location, outcome.sbom, plan.options, digest=digest)
            outcome.attached_sboms.append({"location": str(location),
                                           "digest": str(desc.digest)})
        if request.attach_report:
            from ...trust.referrers import attach_report

            with progress.task("attach", str(location), label=f"report to {location}"):
                desc = attach_report(location, outcome.report.to_json().encode(),
                                     plan.options, digest=digest)
            outcome.attached.append({"location": str(location), "digest": str(desc.digest)})
        if request.sign_key:
            from ...trust.sign import sign_location

            for subject in signed:
                with progress.task("sign", str(location)):
                    info = sign_location(location, request.sign_key, request.key_password,
                                         plan.options, digest=subject)
                outcome.signatures.append(info.to_dict())
