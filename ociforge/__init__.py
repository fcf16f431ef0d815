"""ociforge: a daemonless OCI image assembler.

The public API (docs/api.md): values (:class:`Digest`, :class:`Descriptor`,
:class:`Platform`, :class:`Layer`, :class:`Image`, :class:`Index`,
:class:`Reference`), pure transforms (:func:`append_layers`, :func:`configure`,
...), layer building (:func:`build_layer`), locations (:func:`parse_location`),
the registry client (:class:`RegistryClient`), the pipelines the command line
runs (:func:`append_image`, :func:`copy_image`, :func:`inspect_image`,
:func:`verify_image`, :func:`export_app`), signatures and referrers
(:func:`sign_location`, :func:`verify_location`, :func:`list_referrers`),
progress events (:class:`ProgressEvent`) and the errors.

Names are imported on first use, so that ``ociforge --version`` and ``--help``
start fast; type checkers see them through the imports below.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .app.export import ExportOutcome as ExportOutcome
    from .app.export import ExportPlan as ExportPlan
    from .app.export import ExportRequest as ExportRequest
    from .app.export import export_app as export_app
    from .app.export import plan_export as plan_export
    from .errors import AuthError as AuthError
    from .errors import Cancelled as Cancelled
    from .errors import DigestMismatchError as DigestMismatchError
    from .errors import InvalidInputError as InvalidInputError
    from .errors import NotFoundError as NotFoundError
    from .errors import OciforgeError as OciforgeError
    from .errors import OperationError as OperationError
    from .errors import RegistryError as RegistryError
    from .errors import Terminated as Terminated
    from .errors import TransportError as TransportError
    from .errors import ValidationError as ValidationError
    from .layers.build import BuildResult as BuildResult
    from .layers.build import BuildSettings as BuildSettings
    from .layers.build import build_layer as build_layer
    from .layers.build import layer_from_tar as layer_from_tar
    from .layers.layerfiles import LayerSource as LayerSource
    from .model.descriptor import Descriptor as Descriptor
    from .model.digest import Digest as Digest
    from .model.image import Image as Image
    from .model.index import Artifact as Artifact
    from .model.index import Index as Index
    from .model.index import build_index as build_index
    from .model.jsonutil import JSONObject as JSONObject
    from .model.jsonutil import JSONValue as JSONValue
    from .model.layer import Layer as Layer
    from .model.mutate import ConfigChanges as ConfigChanges
    from .model.mutate import annotate as annotate
    from .model.mutate import append_layers as append_layers
    from .model.mutate import configure as configure
    from .model.mutate import convert as convert
    from .model.mutate import scratch as scratch
    from .model.mutate import set_created as set_created
    from .model.platform import Platform as Platform
    from .model.reference import Reference as Reference
    from .options import Compression as Compression
    from .options import ImageFormat as ImageFormat
    from .options import Options as Options
    from .options import RegistryOptions as RegistryOptions
    from .pipeline.append import AppendOutcome as AppendOutcome
    from .pipeline.append import AppendPlan as AppendPlan
    from .pipeline.append import AppendRequest as AppendRequest
    from .pipeline.append import LayerSpec as LayerSpec
    from .pipeline.append import append_image as append_image
    from .pipeline.append import plan_append as plan_append
    from .pipeline.copy import CopyOutcome as CopyOutcome
    from .pipeline.copy import CopyPlan as CopyPlan
    from .pipeline.copy import copy_image as copy_image
    from .pipeline.copy import plan_copy as plan_copy
    from .pipeline.diff import ImageDiff as ImageDiff
    from .pipeline.diff import diff_images as diff_images
    from .pipeline.inspect import InspectView as InspectView
    from .pipeline.inspect import inspect_image as inspect_image
    from .pipeline.manage import TagListing as TagListing
    from .pipeline.manage import list_tags as list_tags
    from .pipeline.manage import remove_tag as remove_tag
    from .pipeline.outputs import Outputs as Outputs
    from .pipeline.verify import Verification as Verification
    from .pipeline.verify import verify_image as verify_image
    from .progress.events import ProgressCallback as ProgressCallback
    from .progress.events import ProgressEvent as ProgressEvent
    from .remote.auth import Credentials as Credentials
    from .remote.client import RegistryClient as RegistryClient
    from .stores.locations import Location as Location
    from .stores.locations import TagRemoval as TagRemoval
    from .stores.locations import WriteResult as WriteResult
    from .stores.locations import parse_location as parse_location
    from .stores.locations import resolve_platform as resolve_platform
    from .trust.keys import write_key_pair as write_key_pair
    from .trust.referrers import attach_artifact as attach_artifact
    from .trust.referrers import list_referrers as list_referrers
    from .trust.referrers import read_artifact_blob as read_artifact_blob
    from .trust.sign import SignatureInfo as SignatureInfo
    from .trust.sign import VerifiedSignature as VerifiedSignature
    from .trust.sign import sign_location as sign_location
    from .trust.sign import verify_location as verify_location
    from .trust.transfer import CopiedAttachment as CopiedAttachment
    from .trust.transfer import copy_attachments as copy_attachments

# public name -> the module (below ociforge) that defines it
_EXPORTS = MappingProxyType({
    **dict.fromkeys(("ExportOutcome", "ExportPlan", "ExportRequest", "export_app",
                     "plan_export"), "app.export"),
    **dict.fromkeys(("AuthError", "Cancelled", "DigestMismatchError", "InvalidInputError",
                     "NotFoundError", "OciforgeError", "OperationError", "RegistryError",
                     "Terminated", "TransportError", "ValidationError"), "errors"),
    **dict.fromkeys(("BuildResult", "BuildSettings", "build_layer", "layer_from_tar"),
                    "layers.build"),
    "LayerSource": "layers.layerfiles",
    "Descriptor": "model.descriptor",
    "Digest": "model.digest",
    "Image": "model.image",
    **dict.fromkeys(("Artifact", "Index", "build_index"), "model.index"),
    **dict.fromkeys(("JSONObject", "JSONValue"), "model.jsonutil"),
    "Layer": "model.layer",
    **dict.fromkeys(("ConfigChanges", "annotate", "append_layers", "configure", "convert",
                     "scratch", "set_created"), "model.mutate"),
    "Platform": "model.platform",
    "Reference": "model.reference",
    **dict.fromkeys(("Compression", "ImageFormat", "Options", "RegistryOptions"), "options"),
    **dict.fromkeys(("AppendOutcome", "AppendPlan", "AppendRequest", "LayerSpec",
                     "append_image", "plan_append"), "pipeline.append"),
    **dict.fromkeys(("CopyOutcome", "CopyPlan", "copy_image", "plan_copy"), "pipeline.copy"),
    **dict.fromkeys(("ImageDiff", "diff_images"), "pipeline.diff"),
    **dict.fromkeys(("InspectView", "inspect_image"), "pipeline.inspect"),
    **dict.fromkeys(("TagListing", "list_tags", "remove_tag"), "pipeline.manage"),
    "Outputs": "pipeline.outputs",
    **dict.fromkeys(("Verification", "verify_image"), "pipeline.verify"),
    **dict.fromkeys(("ProgressCallback", "ProgressEvent"), "progress.events"),
    "Credentials": "remote.auth",
    "RegistryClient": "remote.client",
    **dict.fromkeys(("Location", "TagRemoval", "WriteResult", "parse_location",
                     "resolve_platform"), "stores.locations"),
    "write_key_pair": "trust.keys",
    **dict.fromkeys(("attach_artifact", "list_referrers", "read_artifact_blob"),
                    "trust.referrers"),
    **dict.fromkeys(("SignatureInfo", "VerifiedSignature", "sign_location", "verify_location"),
                    "trust.sign"),
    **dict.fromkeys(("CopiedAttachment", "copy_attachments"), "trust.transfer"),
})

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> object:
    """Import a public name on first use (PEP 562); its type is the import above."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ociforge' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"ociforge.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
