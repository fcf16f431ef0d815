"""Verify: recompute every digest and size of an image and check the image-spec's rules.

``verify_image`` never raises for what a location *holds*: a blob that does not
match, a rule broken, even a child manifest that cannot be read are problems in
the returned :class:`Verification`, and ``Verification.check()`` raises the
error the command line exits with.  Only bad input (a location that names no
single image, an unknown tag: exit 2) is raised at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..errors import (
    InvalidInputError,
    OciforgeError,
    OperationError,
    SelectionError,
    ValidationError,
)
from ..model.index import Artifact
from ..model.jsonutil import JSONObject
from ..options import Options
from ..stores.locations import Location, resolve_platform
from ..stores.validate import Problem, Report, raise_for, verify_artifact
from .sources import open_source


@dataclass(frozen=True)
class Verification:
    """The outcome of one verify: ``ok`` when every check held."""

    digest: str | None              # the artifact's digest whenever anything names it
    report: Report
    error: OciforgeError | None = field(default=None, compare=False)  # it could not be read
    artifact: Artifact | None = field(default=None, compare=False)    # what was checked

    @property
    def ok(self) -> bool:
        return self.error is None and self.report.ok

    @property
    def problems(self) -> list[Problem]:
        return self.report.problems

    def to_dict(self) -> JSONObject:
        return {
            "digest": self.digest,
            "ok": self.ok,
            "manifests": self.report.manifests,
            "blobs": self.report.blobs,
            "bytes": self.report.bytes,
            "problems": [{"where": p.where, "message": p.message} for p in self.problems],
        }

    def check(self) -> None:
        """Raise the error naming the first problem (exit 1); nothing when ok."""
        if self.error is not None:
            raise self.error
        raise_for(self.report)


def verify_image(source: str | Location, options: Options | None = None, *,
                 deep: bool = True) -> Verification:
    """Check what ``source`` names; ``deep=False`` reads documents only, not layers.

    ``Options.platform`` verifies one child of an index, ``Options.platforms`` those
    children; otherwise the whole index, wherever it is (a registry's too).
    """
    options = options if options is not None else Options()
    if not options.picks_platforms:
        options = replace(options, all_platforms=True)
    location = open_source(source)
    try:
        try:
            artifact = location.read(options)
        except SelectionError:
            raise  # no tag / an unknown tag: the user must say which image (exit 2)
        except InvalidInputError as exc:
            # The location was fine; what it holds is not: that is a failed check (exit 1).
            raise ValidationError(f"{location}: {exc}") from None
    except OperationError as exc:
        problem = Problem(str(location), str(exc))
        return Verification(known_digest(location), Report([problem]), exc)
    if options.picks_platforms:
        artifact = resolve_platform(artifact, options)
    return Verification(str(artifact.digest), verify_artifact(artifact, deep=deep),
                        artifact=artifact)


def known_digest(location: Location) -> str | None:
    """The digest the location names offline (a layout's index.json entry), when the
    artifact itself cannot be read (a missing or damaged blob): the report still says
    which one failed."""
    digest = location.named_digest()
    return None if digest is None else str(digest)
