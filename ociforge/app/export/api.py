"""The values of an export: what is asked (:class:`ExportRequest`), what phase one
checked (:class:`ExportPlan`, whose ``run()`` is phase two) and what was written
(:class:`ExportOutcome`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ...cache.store import Cache
from ...model.image import Image
from ...model.index import Artifact
from ...model.jsonutil import JSONObject
from ...model.platform import Platform
from ...options import Compression, ImageFormat, Options
from ...pipeline.outputs import Outputs
from ...stores.locations import Location, WriteResult
from ..inventory import Inventory
from ..policy import EnvDecision, Policy
from ..report import Report
from ..spec import AppSpec


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
    rootfs: str | None = None               # export this root filesystem's changes (--rootfs)
    compare: str = "metadata"               # rootfs: "content" hashes every candidate file
    env_from_pid: int | None = None         # capture this process's environment too


@dataclass
class ExportOutcome:
    """What an export wrote: ``image`` is the image, or for several platforms the index
    (``images`` holds one image per platform, in the platforms' order)."""

    image: Artifact
    report: Report
    results: list[WriteResult]
    attached: list[dict[str, str]] = field(default_factory=list)
    signatures: list[JSONObject] = field(default_factory=list)
    inventory: Inventory | None = None          # one platform: its inventory
    sbom: bytes | None = None
    attached_sboms: list[dict[str, str]] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    inventories: list[Inventory] = field(default_factory=list)   # one per platform
    platforms: list[Platform] = field(default_factory=list)      # of ``images``, as asked

    def platform_digests(self) -> list[dict[str, str]]:
        """``[{"platform", "digest"}]``: each platform's image."""
        return [{"platform": str(platform), "digest": str(image.digest)}
                for platform, image in zip(self.platforms, self.images, strict=True)]


@dataclass
class ExportPlan:
    """Everything phase one checked, ready for phase two: ``run()``."""

    spec: AppSpec
    outputs: Outputs
    platforms: tuple[Platform, ...]            # one image each; several make an index
    options: Options
    epoch: int
    env_layers: list[tuple[str, str, str]]     # (name, value, origin) from env_file and config
    policy: Policy
    base: Location
    request: ExportRequest
    allow_env: tuple[str, ...] = ()
    cache: Cache | None = None
    base_artifact: Artifact | None = None      # the whole base, when phase one read it
    env_dropped: list[EnvDecision] = field(default_factory=list)   # before the policy

    @property
    def platform(self) -> Platform:
        """The first (for one platform: the) platform."""
        return self.platforms[0]

    def run(self) -> ExportOutcome:
        """Assemble the image, write every destination, then the report, attach, sign."""
        from .run import assemble

        with self.outputs.running(self.options):
            return assemble(self, self.request)
