"""The names an image index gives its entries, and which index entry a location means.

``org.opencontainers.image.ref.name`` (a layout's tags), containerd's
``io.containerd.image.name``, the tag grammars for reading and writing, and
the one pattern for tags that hold attachments rather than images: cosign's
``sha256-<hex>.sig``/``.att``/``.sbom`` and the referrers fallback
``sha256-<hex>``.  Anything else, ``main-<git sha>`` included, is an image tag.
"""

from __future__ import annotations

import re

from ..errors import InvalidInputError, NotFoundError, SelectionError
from ..model.annotations import CONTAINERD_NAME, REF_NAME
from ..model.descriptor import Descriptor
from ..model.digest import Digest

# Used with fullmatch: ``$`` would also accept a trailing newline ("v1\n").
_TAG_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1,255}")
# the distribution spec's tag grammar; attachment tags (sha256-<hex>.sig) match it too
_WRITE_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
ATTACHMENT_TAG_RE = re.compile(r"(sha256-[a-f0-9]{64}|sha512-[a-f0-9]{128})(\.[a-z]+)?")


def attachment_tag(digest: Digest | str, suffix: str | None = None) -> str:
    """The tag holding what is attached to ``digest``: ``sha256:<hex>`` ->
    ``sha256-<hex>`` (the referrers fallback), or with ``suffix`` cosign's
    ``sha256-<hex>.sig`` (``.att``, ``.sbom``)."""
    d = Digest.parse(str(digest))
    base = f"{d.algorithm}-{d.hex}"
    return f"{base}.{suffix}" if suffix else base


def is_attachment_tag(name: str | None) -> bool:
    """Whether a tag names a signature, attestation, SBOM or referrers fallback index."""
    return bool(name) and bool(ATTACHMENT_TAG_RE.fullmatch(str(name)))


def is_attachment(desc: Descriptor) -> bool:
    """Whether an index.json entry is an attachment (by its ref name), not an image."""
    return is_attachment_tag((desc.annotations or {}).get(REF_NAME))


def check_ref_name(tag: str) -> str:
    """A ref name read from index.json: printable, no spaces, at most 255 characters.

    Lenient on purpose: layouts other tools wrote may use any ref name the spec allows.
    """
    if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag):
        raise InvalidInputError(f"tag {str(tag)[:80]!r} is not a valid reference name")
    return tag


def check_tag_to_write(tag: str) -> str:
    """A tag we write into index.json: the distribution tag grammar.

    ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``, so that every tag we write can also be
    pushed to a registry as it is.
    """
    if not isinstance(tag, str) or not _WRITE_TAG_RE.fullmatch(tag):
        raise InvalidInputError(
            f"tag {str(tag)[:80]!r} is not a valid tag: use letters, digits, '_', '.' and '-' "
            "(not first), at most 128 characters"
        )
    return tag


def select_descriptor(
    descs: list[Descriptor],
    tag: str | None,
    digest: Digest | str | None,
    where: str,
    hint: str,
) -> Descriptor:
    """Pick an index.json entry by digest, by tag (ref name, then containerd name), or alone."""
    tags = [d.annotations[REF_NAME] for d in descs if d.annotations and REF_NAME in d.annotations]
    if digest is not None:
        wanted = Digest.parse(digest) if isinstance(digest, str) else digest
        for desc in descs:
            if desc.digest == wanted:
                return desc
        raise NotFoundError(f"no manifest {wanted} in {where}")
    if tag is not None:
        for desc in descs:
            if (desc.annotations or {}).get(REF_NAME) == tag:
                return desc
        for desc in descs:
            name = (desc.annotations or {}).get(CONTAINERD_NAME, "")
            if name == tag or name.endswith(":" + tag):
                return desc
        raise SelectionError(f"no tag {tag!r} in {where}; tags: {', '.join(tags) or 'none'}")
    if len(descs) == 1:
        return descs[0]
    # signatures and referrers fallbacks (sha256-<hex>.sig, sha256-<hex>) are not "the image"
    images = [d for d in descs if not is_attachment(d)]
    if len(images) == 1:
        return images[0]
    if not descs:
        raise NotFoundError(f"{where} holds no image")
    raise SelectionError(
        f"{where} holds {len(descs)} manifests; name a tag: {hint} "
        f"(tags: {', '.join(tags) or 'none'})"
    )
