"""An SPDX 2.3 JSON SBOM of an exported image, built and written with spdx-tools.

The document describes one package for the image (purpose CONTAINER, its
manifest digest as checksum) that CONTAINS every package of the inventory.  For
an index (several platforms) that package CONTAINS one such package per
platform image, and each of those its image's packages.
Each package has its version, its declared license (an SPDX expression, with
a ``LicenseRef-`` and its text in ``hasExtractedLicensingInfos`` for what is not
on the SPDX list, or NOASSERTION), a package URL, and in ``sourceInfo`` the
layer and the metadata file it was found in.  ``licenseConcluded`` is
NOASSERTION: ociforge reports what packages declare, it does not audit them.

Deterministic: the same image gives the same bytes.  ``created`` is the image's
own creation time (``--source-date-epoch`` / ``SOURCE_DATE_EPOCH``), never the
clock; the namespace is derived from the image digest
(``https://ociforge.invalid/spdx/<name>/sha256-<hex>``: an identifier under a
reserved domain that no one can own, RFC 2606, not a location).  spdx-tools
validates the document before it is written.
"""

from __future__ import annotations

import hashlib
import io
import re
from typing import Any

from .. import __version__
from ..errors import InvalidInputError
from .inventory.model import Inventory, Package

SBOM_MEDIA_TYPE = "application/spdx+json"
NAMESPACE_BASE = "https://ociforge.invalid/spdx"
_ID_CHARS = re.compile(r"[^A-Za-z0-9.-]+")


def require_spdx_tools(what: str) -> None:
    """Refuse (exit 2, before anything is written) when the sbom extra is missing."""
    try:
        import spdx_tools.spdx.writer.json.json_writer  # noqa: F401
    except ImportError:
        raise InvalidInputError(f"{what} needs spdx-tools: pip install 'ociforge[sbom]'") from None


def _spdx_id(package: Package, scope: str = "") -> str:
    key = "\0".join((package.ecosystem, package.name, package.version, package.path))
    if scope:  # the same package in two platforms' images: two SPDX elements
        key = scope + "\0" + key
    name = _ID_CHARS.sub("-", package.name).strip("-.")[:40] or "package"
    return f"SPDXRef-{package.ecosystem}-{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def spdx_document(inventory: Inventory, *, name: str, image_digest: str, epoch: int) -> Any:
    """The spdx-tools Document for an image and its inventory."""
    return _document([("", image_digest, inventory)], name=name, digest=image_digest,
                     epoch=epoch)


def spdx_document_platforms(images: list[tuple[str, str, Inventory]], *, name: str,
                            index_digest: str, epoch: int) -> Any:
    """The Document for an index: its package CONTAINS one package per platform image
    ``(platform, digest, inventory)``, each CONTAINS that image's packages."""
    return _document(images, name=name, digest=index_digest, epoch=epoch)


def _document(images: list[tuple[str, str, Inventory]], *, name: str, digest: str,
              epoch: int) -> Any:
    import datetime as dt

    from spdx_tools.common.spdx_licensing import spdx_licensing
    from spdx_tools.spdx.model import (
        Actor,
        ActorType,
        CreationInfo,
        Document,
        ExternalPackageRef,
        ExternalPackageRefCategory,
        ExtractedLicensingInfo,
        PackagePurpose,
        Relationship,
        RelationshipType,
        SpdxNoAssertion,
    )
    from spdx_tools.spdx.model import (
        Package as SpdxPackage,
    )

    algorithm, _, hex_digest = digest.partition(":")
    created = dt.datetime.fromtimestamp(epoch, dt.UTC).replace(tzinfo=None)
    several = len(images) > 1
    creation = CreationInfo(
        spdx_version="SPDX-2.3", spdx_id="SPDXRef-DOCUMENT", name=f"{name}@{digest}",
        document_namespace=f"{NAMESPACE_BASE}/{name}/{algorithm}-{hex_digest}",
        creators=[Actor(ActorType.TOOL, f"ociforge-{__version__}")], created=created,
        document_comment=("The packages found in the exported image's layers"
                          + (", one image per platform" if several else "")
                          + "; licenses as each package declares them (NOASSERTION where it "
                          "declares none in a form that can be read)."))
    image_id = "SPDXRef-Image"
    packages = [_image_package(image_id, name, name, digest)]
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, image_id)]
    extracted: dict[str, ExtractedLicensingInfo] = {}
    for platform, child_digest, inventory in images:
        holder = image_id
        if several:
            holder = "SPDXRef-Image-" + _ID_CHARS.sub("-", platform).strip("-.")
            packages.append(_image_package(holder, f"{name} {platform}", name, child_digest))
            relationships.append(Relationship(image_id, RelationshipType.CONTAINS, holder))
        for package in inventory.packages:
            spdx_id = _spdx_id(package, platform if several else "")
            expression = package.license.expression
            declared = SpdxNoAssertion() if expression == "NOASSERTION" \
                else spdx_licensing.parse(expression)
            for ref in package.license.refs:
                extracted.setdefault(ref.license_id, ExtractedLicensingInfo(
                    license_id=ref.license_id, extracted_text=ref.text or ref.name,
                    license_name=ref.name or SpdxNoAssertion()))
            layer = package.layer
            source = f"found in layer {layer.index + 1} ({layer.digest}) at {package.path}"
            packages.append(SpdxPackage(
                spdx_id, package.name, SpdxNoAssertion(),
                version=package.version if package.version != "NOASSERTION" else None,
                files_analyzed=False, source_info=source, license_concluded=SpdxNoAssertion(),
                license_declared=declared, copyright_text=SpdxNoAssertion(),
                comment="; ".join(package.evidence) or None,
                primary_package_purpose=(PackagePurpose.APPLICATION
                                         if package.ecosystem == "binary" else None),
                external_references=[ExternalPackageRef(
                    ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", package.purl)]))
            relationships.append(Relationship(holder, RelationshipType.CONTAINS, spdx_id))
    return Document(creation, packages=packages, relationships=relationships,
                    extracted_licensing_info=[extracted[key] for key in sorted(extracted)])


def _image_package(spdx_id: str, shown: str, name: str, digest: str) -> Any:
    """The package of an image (or index): its digest as version, checksum and purl."""
    from spdx_tools.spdx.model import (
        Checksum,
        ChecksumAlgorithm,
        ExternalPackageRef,
        ExternalPackageRefCategory,
        PackagePurpose,
        SpdxNoAssertion,
    )
    from spdx_tools.spdx.model import (
        Package as SpdxPackage,
    )

    algorithm, _, hex_digest = digest.partition(":")
    return SpdxPackage(
        spdx_id, shown, SpdxNoAssertion(), version=digest, files_analyzed=False,
        checksums=[Checksum(ChecksumAlgorithm.SHA256, hex_digest)],
        license_concluded=SpdxNoAssertion(), license_declared=SpdxNoAssertion(),
        copyright_text=SpdxNoAssertion(), primary_package_purpose=PackagePurpose.CONTAINER,
        external_references=[ExternalPackageRef(
            ExternalPackageRefCategory.PACKAGE_MANAGER, "purl",
            f"pkg:oci/{name.rsplit('/', 1)[-1]}@{algorithm}%3A{hex_digest}")])


def spdx_json(inventory: Inventory, *, name: str, image_digest: str, epoch: int) -> bytes:
    """The SBOM as SPDX 2.3 JSON bytes (validated by spdx-tools as it is written)."""
    return _json(spdx_document(inventory, name=name, image_digest=image_digest, epoch=epoch))


def spdx_json_platforms(images: list[tuple[str, str, Inventory]], *, name: str,
                        index_digest: str, epoch: int) -> bytes:
    """The SBOM of an index (see spdx_document_platforms) as SPDX 2.3 JSON bytes."""
    return _json(spdx_document_platforms(images, name=name, index_digest=index_digest,
                                         epoch=epoch))


def _json(document: Any) -> bytes:
    from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

    out = io.StringIO()
    write_document_to_stream(document, out, validate=True)
    return out.getvalue().encode("utf-8") + b"\n"
