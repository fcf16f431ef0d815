"""The destinations of one run: checked before anything is read, written in order.

``Outputs.parse`` turns destination strings into locations and checks them all
up front (scheme, tag, name, 'a directory where a file is needed', writable
folders, two outputs landing on one file), so bad input exits 2 with nothing
written.  ``check_push_access`` then asks every registry destination whether
this run may push, before the first byte goes anywhere.  ``write`` writes the
artifact to each destination in turn and remembers which are done, so a run
that stops part-way (a network failure, Ctrl-C, SIGTERM) can say which
destinations were completed and which not.  ``running`` wraps the run: its
last progress event says how it ended, and a cancelled run's ``Cancelled``
names the destinations completed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..errors import Cancelled, InvalidInputError, OciforgeError, Terminated
from ..fsutil import names_our_stdout, resolve_output
from ..model.index import Artifact
from ..model.reference import Reference
from ..options import Compression, Options
from ..progress.events import Progress
from ..stores.locations import Location, WriteResult, parse_destination

log = logging.getLogger("ociforge")


@dataclass
class Outputs:
    """Where one run writes, and how far it got.

    ``results`` holds one :class:`WriteResult` per destination written so far,
    in the order of ``locations``; ``started`` is True once the first write
    began.  ``to_stdout``: a file this run writes is the process's own stdout
    (``-o /dev/stdout``), so a command line prints its result to stderr.
    """

    locations: tuple[Location, ...]
    results: list[WriteResult] = field(default_factory=list)
    started: bool = False
    to_stdout: bool = False
    # registry destinations whose push-access check waits for the artifact (see
    # check_push_access); settled before the first write
    deferred: list[Reference] = field(default_factory=list)

    @classmethod
    def parse(cls, destinations: Sequence[str | Location], *, default_name: str | None = None,
              report: str | None = None, others: Sequence[tuple[str, str]] = ()) -> Outputs:
        """Parse and check every destination; ``default_name`` (``NAME:TAG``) names
        archives and tags layouts given without a name of their own, and ``report``
        and ``others`` ((option, path), e.g. ``("--sbom", FILE)``) are further files
        this run writes (none may be one of the outputs)."""
        locations = tuple(_destination(item, default_name) for item in destinations)
        check_distinct_outputs(locations, report, others)
        files = [location.path for location in locations
                 if location.path is not None and location.kind != "oci"]
        files += [report] if report else []
        files += [path for _, path in others]
        return cls(locations, to_stdout=any(names_our_stdout(path) for path in files))

    def __iter__(self) -> Iterator[Location]:
        return iter(self.locations)

    def __len__(self) -> int:
        return len(self.locations)

    @property
    def completed(self) -> list[Location]:
        """The destinations written in full."""
        return list(self.locations[:len(self.results)])

    @property
    def not_completed(self) -> list[Location]:
        """The destinations not (or not fully) written."""
        return list(self.locations[len(self.results):])

    def check_compression(self, compression: Compression) -> None:
        """docker load cannot read zstd layers: refuse them for docker-archive outputs."""
        for location in self.locations:
            location.check_compression(compression)

    def check_offline(self, options: Options) -> None:
        """--offline reads from the cache only: a registry destination cannot be written."""
        if not options.cache.offline:
            return
        for location in self.locations:
            if location.reference is not None:
                raise InvalidInputError(f"--offline: cannot push to {location} (the registry "
                                        "would be contacted)")

    def check_push_access(self, options: Options) -> None:
        """Ask every registry destination whether this run may push (AuthError if not).

        Nothing is written: a token's granted actions, or an upload session that
        is opened and deleted again.  Each repository is asked once.  A destination
        the cache may show to serve the image already (a tag it remembers on a
        registry that asks for no credentials, for Basic credentials that there
        are, or for a token) is asked once the image is known, still before the first
        write, and only when a push is needed after all: a tag already serving it needs
        no push rights.
        """
        from ..cache.transfer import may_be_served

        asked: set[tuple[str, str]] = set()
        for reference in self.registry_references():
            if may_be_served(reference, options):
                self.deferred.append(reference)
                continue
            key = (reference.registry, reference.repository)
            if key not in asked:
                asked.add(key)
                with Progress.of(options).task("check", f"{key[0]}/{key[1]}",
                                               label=f"push access to {key[0]}/{key[1]}"):
                    _ask_push_access(reference, options)

    def _settle_deferred(self, artifact: Artifact, options: Options) -> set[Reference]:
        """The deferred destinations that already serve ``artifact`` (nothing to push);
        every other one is asked for push access now, before anything is written."""
        from ..cache.transfer import served_already

        served: set[Reference] = set()
        for reference in self.deferred:
            if served_already(reference, artifact, options):
                served.add(reference)
            else:
                _ask_push_access(reference, options)
        self.deferred = []
        return served

    def registry_references(self) -> list[Reference]:
        """The references of the registry destinations, in order."""
        return [location.reference for location in self.locations
                if location.reference is not None]

    def hold_indexes(self) -> bool:
        """Whether every destination can hold an index (a docker archive holds one image)."""
        return all(location.kind != "docker-archive" for location in self.locations)

    def check_artifact(self, artifact: Artifact) -> None:
        """Every destination says it can take ``artifact`` (an index where one image fits
        is refused) before anything is built or written."""
        for location in self.locations:
            location.check_artifact(artifact)

    def write(self, artifact: Artifact, options: Options) -> list[WriteResult]:
        """Write ``artifact`` to every destination not written yet, in order."""
        self.check_artifact(artifact)
        served = self._settle_deferred(artifact, options)
        self.started = True
        for location in self.not_completed:
            log.info("writing %s to %s", artifact.digest.short, location)
            if location.reference is not None and location.reference in served:
                log.info("%s already serves %s", location, artifact.digest.short)
                with Progress.of(options).task("write", str(location)) as task:
                    task.set(status="exists")
                self.results.append(WriteResult(str(artifact.digest), str(location),
                                                artifact.media_type))
                continue
            self.results.append(location.write(artifact, options))
        return list(self.results)

    @contextlib.contextmanager
    def running(self, options: Options) -> Iterator[None]:
        """The writing run of a pipeline: its last progress event (``finish``) says how
        it ended and which destinations were completed; a cancelled run's
        ``Cancelled`` names them too."""
        progress = Progress.of(options)
        try:
            yield
        except Cancelled as exc:
            exc.completed = [str(location) for location in self.completed]
            exc.not_completed = [str(location) for location in self.not_completed]
            progress.finish("cancelled", exit_code=exc.exit_code, error="cancelled",
                            **self._how_far())
            raise
        except BaseException as exc:
            code = exc.exit_code if isinstance(exc, OciforgeError) else (
                143 if isinstance(exc, Terminated) else
                130 if isinstance(exc, KeyboardInterrupt) else 1)
            status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
            progress.finish(status, exit_code=code,
                            error=" ".join(str(exc).split()) or type(exc).__name__,
                            **self._how_far())
            raise
        progress.finish("ok", exit_code=0, **self._how_far())

    def _how_far(self) -> dict[str, list[str]]:
        return {"completed": [str(location) for location in self.completed],
                "not_completed": [str(location) for location in self.not_completed]}


def _ask_push_access(reference: Reference, options: Options) -> None:
    from ..stores.registry import client_for

    log.info("checking push access to %s/%s", reference.registry, reference.repository)
    client_for(reference.registry, options).check_push_access(reference.repository)


def result_entry(result: WriteResult) -> dict[str, str]:
    """One written destination, machine-readable: the location as ociforge reads it
    back, the digest, the media type and (docker-archive) the image name."""
    entry = {"location": result.location, "digest": result.digest,
             "mediaType": result.media_type}
    if result.name:
        entry["name"] = result.name
    return entry


def check_tag(text: str | None) -> str | None:
    """``NAME[:TAG]`` that names archives and tags layouts: a valid image name."""
    if not text:
        return None
    from ..stores.archive import ImageName

    ImageName.parse(text)
    return text


def _destination(item: str | Location, default_name: str | None) -> Location:
    """A parsed destination (or a given one), named and checked like parse_destination."""
    if isinstance(item, str):
        return parse_destination(item, default_name)
    location = item.with_default_name(default_name)
    location.check_destination()
    return location


def check_distinct_outputs(locations: Sequence[Location], report: str | None = None,
                           others: Sequence[tuple[str, str]] = ()) -> None:
    """Refuse (exit 2) two outputs of one run that land on the same file.

    The later write would silently destroy the earlier one: ``-o x.tar -o
    oci-archive:x.tar``, ``-o same.tar --report same.tar``, or a file inside an
    ``oci:`` layout folder (``--report lay/index.json``).  Paths are compared
    after symlinks are resolved (and by inode for existing files); several
    ``oci:`` outputs into one layout (two tags) are fine, and so are two writes
    to a character device such as /dev/null.  ``others`` are further files
    as (option, path), e.g. ``("--sbom", "out.spdx.json")``.
    """
    files: list[tuple[str, str, tuple[int, int] | None]] = []
    folders: list[tuple[str, str]] = []
    for location in locations:
        if location.path is None:
            continue
        if location.kind == "oci":
            folders.append((str(location), os.path.realpath(location.path)))
        else:
            files.append(_file_key(str(location), location.path))
    if report:
        files.append(_file_key(f"--report {report}", report))
    files += [_file_key(f"{option} {path}", path) for option, path in others]
    seen: dict[object, str] = {}
    for shown, real, inode in files:
        if real == "":
            continue  # a character device: writes to it do not clobber each other
        for key in (real, inode):
            if key is not None and key in seen:
                raise InvalidInputError(f"outputs {seen[key]!r} and {shown!r} are the same file")
        seen[real] = shown
        if inode is not None:
            seen[inode] = shown
        for folder_shown, folder in folders:
            if real == folder or real.startswith(folder.rstrip(os.sep) + os.sep):
                raise InvalidInputError(
                    f"output {shown!r} is inside the OCI layout of {folder_shown!r}")


def _file_key(shown: str, path: str) -> tuple[str, str, tuple[int, int] | None]:
    """(shown, resolved path or "" for a character device, (dev, inode) when it exists)."""
    target = resolve_output(path)
    try:
        info = os.stat(target.path) if target.fd is None else os.fstat(target.fd)
    except OSError:
        return shown, str(target.path), None
    if stat.S_ISCHR(info.st_mode):
        return shown, "", None
    return shown, str(target.path), (info.st_dev, info.st_ino)
