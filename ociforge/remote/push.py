"""Push: an Image or Index into a repository, blobs first, manifests byte for byte.

First one HEAD of the target manifest (by tag, full Accept list): when the
registry already serves exactly this digest there, nothing is sent at all (it
validated every blob and child when that manifest was PUT) -- what crane does,
and what makes a re-push one request after the API check.  Otherwise, for an
index, each child manifest is HEADed by digest and children already present
are neither re-PUT nor have their blobs checked.

Blobs go in parallel (``options.jobs``, one pooled session): HEAD (skip when
present), then a cross-repository mount when the blob came from another
repository of the same registry, else an upload.  One token covers the whole
push (``pull,push`` on the target plus ``pull`` on every mount source).  An
index is PUT only after all its children (by digest); the digest the registry
reports must equal the local one.
"""

from __future__ import annotations

import logging
from collections.abc import Set
from dataclasses import dataclass, field

from ..errors import DigestMismatchError, InvalidReferenceError, RegistryError
from ..model import walk
from ..model.digest import Digest
from ..model.index import Artifact
from ..model.layer import Layer
from ..model.reference import Reference, normalize_registry
from ..options import Options
from ..progress.events import Progress
from .auth import pull_scope, push_scope
from .client import ManifestPut, RegistryClient
from .parallel import run_parallel

log = logging.getLogger("ociforge.remote")


@dataclass
class PushResult:
    digest: Digest
    media_type: str
    put: ManifestPut | None = None
    blobs: dict[str, str] = field(default_factory=dict)   # digest -> exists|mounted|uploaded
    unchanged: bool = False     # the registry already served this digest under the target

    def count(self, outcome: str) -> int:
        return sum(1 for v in self.blobs.values() if v == outcome)


def push(client: RegistryClient, ref: Reference, artifact: Artifact,
         options: Options) -> PushResult:
    """Push every blob and manifest of ``artifact`` to ``ref``; returns the manifest digest."""
    if ref.digest is not None and ref.digest != artifact.digest:
        raise InvalidReferenceError(
            f"{ref} pins digest {ref.digest}, but the image to push is {artifact.digest}")
    repository = ref.repository
    every_blob = _unique_blobs(artifact)
    sources = {_repo_on(client.registry, src) for _, src in every_blob.values()}
    sources.discard(repository)
    sources.discard(None)
    # one token for the whole push: HEADs, mounts, uploads and manifest PUTs
    client.widen_scopes(repository, [push_scope(repository),
                                     *(pull_scope(s) for s in sorted(s for s in sources if s))])
    result = PushResult(artifact.digest, artifact.media_type)
    target = ref.tag if ref.tag is not None else str(artifact.digest)
    if _served(client, repository, target, artifact.digest):
        result.unchanged = True
        result.blobs = {str(d): "exists" for d in every_blob}
        log.info("%s already serves %s: nothing to push", ref, artifact.digest.short)
        return result
    jobs = max(1, options.registry.jobs)
    present = _present_children(client, repository, artifact, jobs)
    blobs = _unique_blobs(artifact, skip=present)
    result.blobs = {str(d): "exists" for d in every_blob if d not in blobs}
    _push_blobs(client, repository, blobs, result, jobs, Progress.of(options))
    for child in walk.children(artifact, present):
        put = client.put_manifest(repository, str(child.digest), child.manifest_bytes,
                                  child.media_type)
        _check(put, child)
    put = client.put_manifest(repository, target, artifact.manifest_bytes, artifact.media_type)
    _check(put, artifact)
    result.put = put
    log.info("pushed %s: %d uploaded, %d mounted, %d already present", artifact.digest.short,
             result.count("uploaded"), result.count("mounted"), result.count("exists"))
    return result


def _served(client: RegistryClient, repository: str, reference: str, digest: Digest) -> bool:
    """Does the registry serve exactly ``digest`` under ``reference`` already?

    Only a Docker-Content-Digest equal to ours counts; no header, another
    digest, or any registry error (an odd answer to HEAD) means: do the full
    push, which reports real problems itself.
    """
    try:
        head = client.head_manifest(repository, reference)
    except RegistryError as exc:
        log.info("manifest check of %s:%s failed (%s); pushing in full", repository, reference,
                 exc)
        return False
    return head is not None and head.digest == digest


def _present_children(client: RegistryClient, repository: str, artifact: Artifact,
                      jobs: int) -> set[Digest]:
    """Child manifests of an index the repository already has (HEAD by digest, parallel).

    A nested index counts only with everything below it, which the registry
    checked when it was PUT.
    """
    children = list(walk.children(artifact))
    if not children:
        return set()
    found = run_parallel(lambda child: _served(client, repository, str(child.digest),
                                               child.digest),
                         children, jobs, "ociforge-check")
    present = {child.digest for child, ok in zip(children, found, strict=True) if ok}
    for child in children:
        if child.digest in present:
            present.update(c.digest for c in walk.children(child))
    return present


def _check(put: ManifestPut, artifact: Artifact) -> None:
    if put.digest != artifact.digest:
        raise DigestMismatchError(f"manifest pushed as {put.digest}, expected {artifact.digest}")


def _repo_on(registry: str, source: str | None) -> str | None:
    """``registry/repo`` -> ``repo`` when it names the same registry, else None."""
    if not source or "/" not in source:
        return None
    host, _, repository = source.partition("/")
    return repository if normalize_registry(host) == registry and repository else None


def _unique_blobs(artifact: Artifact, skip: Set[Digest] = frozenset()
                  ) -> dict[Digest, tuple[Layer, str | None]]:
    """Each blob once; of several mentions, one that names a repository to mount from."""
    blobs: dict[Digest, tuple[Layer, str | None]] = {}
    for blob in walk.blobs(artifact, skip, unique=False):
        if blob.digest in blobs and blobs[blob.digest][1]:
            continue
        blobs[blob.digest] = (blob, blob.source)
    return blobs


def _push_blobs(client: RegistryClient, repository: str,
                blobs: dict[Digest, tuple[Layer, str | None]], result: PushResult,
                jobs: int, progress: Progress) -> None:
    """Each blob on a worker, as a ``push`` task of its own (bytes as the registry takes
    them; ``exists`` and ``mounted`` blobs are done at once)."""
    if not blobs:
        return

    def one(layer: Layer, source: str | None) -> tuple[Digest, str]:
        mount_from = _repo_on(client.registry, source)
        with progress.task("push", str(layer.digest), layer.size) as task:
            outcome = client.push_blob(repository, layer, mount_from=mount_from,
                                       progress=task)
            task.set(status=outcome, done=layer.size)
        return layer.digest, outcome

    pairs = list(blobs.values())
    outcomes = run_parallel(lambda pair: one(*pair), pairs, jobs, "ociforge-push")
    for digest, outcome in outcomes:
        result.blobs[str(digest)] = outcome
