"""Removing a tag from a registry repository (``ociforge rm REF``).

A registry removes a manifest, not a tag: ``DELETE /v2/<repo>/manifests/<digest>``
takes every tag naming that digest with it.  So before deleting, every other
image tag of the repository is looked up (HEAD, which Docker Hub does not count
as a pull), and when some name the same digest the removal is refused (exit 2,
naming them) unless ``all_tags``.  Once the manifest is gone, its signatures
(``sha256-<hex>.sig``, ``.att``, ``.sbom``), its referrers (from the referrers API or
the ``sha256-<hex>`` fallback index) and that fallback index are deleted too:
nothing could reach them any more.

Docker Hub's registry refuses DELETE; there each tag is removed through Docker
Hub's own API (remote/hubapi.py), which removes just that tag: other tags of the
same digest stay (``all_tags`` removes them too), and the attachment tags go
once no image tag names the digest.
"""

from __future__ import annotations

import logging

from ..errors import InvalidInputError, NotFoundError, RegistryError, SelectionError
from ..model.digest import Digest
from ..model.jsonutil import JSONObject
from ..model.reference import Reference
from ..options import Options
from ..remote.client import RegistryClient
from ..remote.parallel import run_parallel
from .artifactstore import RegistryStore
from .locations import TagRemoval
from .referrers import referrers_of
from .refnames import attachment_tag, is_attachment_tag

log = logging.getLogger("ociforge")

ATTACHMENT_SUFFIXES = ("sig", "att", "sbom")


def attachment_tags(digest: Digest) -> list[str]:
    """The tags that hold what is attached to ``digest``: cosign's and the referrers
    fallback (``sha256-<hex>.sig``, ``.att``, ``.sbom``, ``sha256-<hex>``)."""
    return [attachment_tag(digest, suffix) for suffix in (*ATTACHMENT_SUFFIXES, None)]


def remove_registry_tag(client: RegistryClient, reference: Reference, options: Options, *,
                        all_tags: bool = False) -> TagRemoval:
    """Remove the tag (or digest) ``reference`` names; see the module docstring."""
    if reference.is_docker_hub:
        return _remove_on_docker_hub(reference, options, all_tags)
    repo = reference.repository
    tags = client.list_tags(repo)
    images = sorted(t for t in tags if not is_attachment_tag(t))
    if reference.digest is not None:
        digest = reference.digest
        if client.head_manifest(repo, str(digest)) is None:
            raise NotFoundError(f"no manifest {digest} in {reference.name}")
    else:
        tag = reference.tag or "latest"
        if tag not in tags:
            raise SelectionError(f"no tag {tag!r} in {reference.name}; tags: "
                                 f"{_some(images)}")
        found_digest = _digest_of(client, repo, tag)
        assert found_digest is not None  # missing_ok is False: a missing tag raised
        digest = found_digest
    others = [t for t in images if t != reference.tag]
    found = run_parallel(lambda t: (t, _digest_of(client, repo, t, missing_ok=True)),
                         others, options.registry.jobs, "ociforge-rm")
    siblings = sorted(t for t, d in found if d == digest)
    removed = sorted({*([reference.tag] if reference.tag and reference.digest is None
                        else []), *siblings})
    if siblings and not all_tags:
        raise InvalidInputError(
            f"{reference}: {_some(siblings)} also name{'s' if len(siblings) == 1 else ''} "
            f"{digest}; a registry deletes the manifest with every tag naming it: add "
            "--all-tags to remove them all")
    referrers = _digests(referrers_of(RegistryStore(reference, options), digest, tags=tags))
    client.delete_manifest(repo, digest)
    log.info("deleted %s@%s", reference.name, digest)
    gone: list[str] = []
    for tag in attachment_tags(digest):
        if tag in tags:
            attached = _digest_of(client, repo, tag, missing_ok=True)
            if attached is not None and _delete(client, repo, attached):
                gone.append(tag)
    for attached in referrers:
        if _delete(client, repo, attached):
            gone.append(str(attached))
    return TagRemoval(location=str(reference), digest=str(digest), tags=tuple(removed),
                      attachments=tuple(gone), manifest_deleted=True, via="registry")


def _digest_of(client: RegistryClient, repo: str, tag: str, missing_ok: bool = False
               ) -> Digest | None:
    head = client.head_manifest(repo, tag)
    if head is None:
        if missing_ok:
            return None
        raise NotFoundError(f"no manifest for tag {tag!r} in {repo}")
    if head.digest is not None:
        return head.digest
    _, _, digest = client.get_manifest(repo, tag)  # a registry that sends no digest on HEAD
    return digest


def _digests(entries: list[JSONObject]) -> list[Digest]:
    """The digests a referrers listing names (an entry without a valid one is skipped)."""
    out = []
    for entry in entries:
        text = entry.get("digest")
        if isinstance(text, str):
            try:
                out.append(Digest.parse(text))
            except InvalidInputError:
                continue
    return out


def _delete(client: RegistryClient, repo: str, digest: Digest) -> bool:
    """Delete an attachment's manifest; False when the registry no longer has it."""
    try:
        client.delete_manifest(repo, digest)
    except RegistryError as exc:
        if exc.status == 404 or exc.code == "MANIFEST_UNKNOWN":
            return False
        raise
    return True


def _remove_on_docker_hub(reference: Reference, options: Options, all_tags: bool
                          ) -> TagRemoval:
    from ..remote.credentials import lookup
    from ..remote.hubapi import DockerHubAPI

    api = DockerHubAPI(options.registry, lookup(reference.registry, reference.repository))
    try:
        listed = api.tags(reference.repository)
        by_name = {t.name: t.digest for t in listed}
        images = sorted(n for n in by_name if not is_attachment_tag(n))
        if reference.digest is not None:
            digest_text: str | None = str(reference.digest)
            named = [n for n in images if by_name[n] == digest_text]
            if not named:
                raise NotFoundError(f"no tag of {reference.name} names {reference.digest}")
            if len(named) > 1 and not all_tags:
                raise InvalidInputError(
                    f"{reference}: tags {_some(named)} name it; add --all-tags to remove "
                    "them all")
            removed = named
        else:
            tag = reference.tag or "latest"
            if tag not in by_name or is_attachment_tag(tag):
                raise SelectionError(f"no tag {tag!r} in {reference.name}; tags: "
                                     f"{_some(images)}")
            digest_text = by_name[tag]
            siblings = [n for n in images if n != tag and digest_text
                        and by_name[n] == digest_text]
            removed = sorted({tag, *(siblings if all_tags else ())})
        for name in removed:
            api.delete_tag(reference.repository, name)
            log.info("deleted tag %s:%s", reference.name, name)
        left = [n for n in images if n not in removed and by_name[n] == digest_text]
        gone: list[str] = []
        if digest_text and not left:
            for name in attachment_tags(Digest.parse(digest_text)):
                if name in by_name:
                    api.delete_tag(reference.repository, name)
                    gone.append(name)
    finally:
        api.close()
    return TagRemoval(location=str(reference), digest=digest_text or "", tags=tuple(removed),
                      attachments=tuple(gone), manifest_deleted=False, via="docker-hub-api")


def _some(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += f" and {len(names) - limit} more"
    return shown or "none"
