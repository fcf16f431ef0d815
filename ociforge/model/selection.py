"""The one platform selection: which image of an index a platform means.

An entry matches when its descriptor's platform (or, when it has none, its
image config's) matches the wanted one.  Direct image entries come first, in
index order; then nested indexes, depth first, each searched once.  The same
rule picks an image out of an index already in memory (layouts, archives,
``--platform`` on an index base) and out of a registry's index without
fetching the other children (pull).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from ..errors import InvalidInputError, InvalidPlatformError, ValidationError
from . import mediatypes as mt
from .annotations import ATTESTATION_MANIFEST, DOCKER_REFERENCE_DIGEST, DOCKER_REFERENCE_TYPE
from .descriptor import Descriptor
from .image import Image
from .index import Artifact, Index, ReferenceBudget
from .jsonutil import JSONObject, canonical
from .platform import Platform

ImageOf = Callable[[Descriptor], Image]
EntriesOf = Callable[[Descriptor], Sequence[Descriptor]]


def select_platform(entries: Sequence[Descriptor], wanted: Platform, where: str, *,
                    image_of: ImageOf, entries_of: EntriesOf,
                    budget: ReferenceBudget | None = None,
                    max_depth: int | None = None) -> Image:
    """The image for ``wanted`` among an index's ``entries``; InvalidPlatformError naming
    what is there when none matches.

    ``image_of`` loads (or looks up) the image an entry names, ``entries_of`` the
    entries of a nested index; ``budget`` is charged for every entry looked at
    (an index bomb is refused, not searched); indexes nested deeper than
    ``max_depth`` are refused.
    """
    found = _search(entries, wanted, where, image_of, entries_of, budget, set(), 0, max_depth)
    if found is None:
        available: list[str] = []
        for desc in entries:
            platform = desc.platform
            if platform is not None and platform.os != "unknown" and \
                    str(platform) not in available:
                available.append(str(platform))
        raise InvalidPlatformError(
            f"no image for platform {wanted} in {where}; "
            f"available: {', '.join(available) or 'none'}")
    return found


def _search(entries: Sequence[Descriptor], wanted: Platform, where: str, image_of: ImageOf,
            entries_of: EntriesOf, budget: ReferenceBudget | None,
            searched: set[str], depth: int, max_depth: int | None) -> Image | None:
    if max_depth is not None and entries and depth + 1 > max_depth:
        raise ValidationError(f"{where}: index nesting deeper than {max_depth}")
    if budget is not None:
        budget.take(len(entries), where)
    for desc in entries:
        if mt.is_index(desc.media_type):
            continue
        if desc.platform is not None:
            if desc.platform.matches(wanted):
                return image_of(desc)
        elif mt.is_image_manifest(desc.media_type):
            image = image_of(desc)
            if image.platform is not None and image.platform.matches(wanted):
                return image
    for desc in entries:
        if mt.is_index(desc.media_type) and str(desc.digest) not in searched:
            searched.add(str(desc.digest))
            found = _search(entries_of(desc), wanted, where, image_of, entries_of, budget,
                            searched, depth + 1, max_depth)
            if found is not None:
                return found
    return None


def listed_for(entries: Sequence[Descriptor], wanted: Platform) -> int:
    """How many image entries of an index name ``wanted`` on their descriptors
    (attestation manifests are no platform): more than one are several images of one
    platform (Windows releases differing in os.version)."""
    return sum(1 for desc in entries
               if mt.is_image_manifest(desc.media_type) and desc.platform is not None
               and DOCKER_REFERENCE_TYPE not in (desc.annotations or {})
               and desc.platform.matches(wanted))


def select_image(index: Index, wanted: Platform) -> Image:
    """The image for ``wanted`` in an index already loaded (see select_platform)."""
    loaded: dict[str, Artifact] = {}

    def remember(found: Index) -> None:
        for desc, child in found.children:
            key = str(desc.digest)
            if key not in loaded:
                loaded[key] = child
                if isinstance(child, Index):
                    remember(child)

    remember(index)

    def image_of(desc: Descriptor) -> Image:
        child = loaded[str(desc.digest)]
        if not isinstance(child, Image):
            raise InvalidPlatformError(f"{desc.digest} in index {index.digest.short} is an "
                                       "index where an image was expected")
        return child

    def entries_of(desc: Descriptor) -> list[Descriptor]:
        child = loaded[str(desc.digest)]
        return [d for d, _ in child.children] if isinstance(child, Index) else []

    return select_platform([d for d, _ in index.children], wanted,
                           f"index {index.digest.short}", image_of=image_of,
                           entries_of=entries_of)


def platforms_of(index: Index) -> list[Platform]:
    """The platforms an index offers, each once, in its order, nested indexes depth first
    (attestation manifests and ``unknown/unknown`` entries are no platform)."""
    found: list[Platform] = []
    for desc, image in index.images():
        platform = _platform_of(desc, image)
        if platform is not None and not any(platform.matches(seen) for seen in found):
            found.append(platform)
    return found


def _platform_of(desc: Descriptor, image: Image) -> Platform | None:
    """The platform an index entry is for; None for an attestation manifest or an
    ``unknown/unknown`` entry (no platform)."""
    platform = desc.platform or image.platform
    if platform is None or platform.os == "unknown" or \
            DOCKER_REFERENCE_TYPE in (desc.annotations or {}):
        return None
    return platform


def images_to_change(index: Index, wanted: Sequence[Platform]) -> dict[str, Image]:
    """The images of ``index`` that an append to ``wanted`` changes, by digest: every
    direct image entry whose platform matches one of ``wanted`` (all of them, also
    entries that differ only in os.version or os.features); with no ``wanted``
    (``all``), every direct platform image.  An image reachable only through a nested
    index is InvalidInputError naming that index (replacing it would leave the nested
    index listing the old one); a platform the index lacks is InvalidPlatformError."""
    direct = _direct_images(index)
    chosen: dict[str, Image] = {}
    for platform, image in direct:
        if not wanted or any(platform.matches(one) for one in wanted):
            chosen.setdefault(str(image.digest), image)
    for one in wanted:
        if not any(platform.matches(one) for platform, _ in direct):
            found = select_image(index, one)   # InvalidPlatformError naming what is there
            _refuse_nested(index, f"the image for {one}", found)
    if not wanted:
        _refuse_nested(index, "an image", None)
    return chosen


def _refuse_nested(index: Index, what: str, image: Image | None) -> None:
    """InvalidInputError when a nested index of ``index`` holds ``image`` (None: any
    platform image)."""
    for desc, child in index.children:
        if isinstance(child, Index) and any(
                image.digest == found.digest if image is not None
                else _platform_of(d, found) is not None for d, found in child.images()):
            raise InvalidInputError(
                f"{what} of index {index.digest.short} is in nested index "
                f"{desc.digest.short}: append changes only the images an index lists "
                "directly")


def select_images(index: Index, wanted: Sequence[Platform]) -> Index:
    """The children of ``index`` for ``wanted`` (each found as select_image finds it) as a
    new index: every kept entry exactly as the source lists it (digest, platform,
    annotations), in the source's order, with the attestation manifests that name a kept
    image; the index's own fields kept.  When that is every entry of the source, the
    source itself (its digest unchanged).  A platform it lacks is InvalidPlatformError
    naming the platforms it has."""
    chosen = images_for(index, wanted)
    entries = _raw_entries(index)
    kept: list[tuple[JSONObject, Descriptor, Artifact]] = []
    listed: set[str] = set()
    for position, (desc, child) in enumerate(index.children):
        key = str(desc.digest)
        keep = (isinstance(child, Image) and key in chosen and key not in listed) or (
            attested_digest(desc) in chosen)
        if keep:
            listed.add(key)
            kept.append((entries[position], desc, child))
    for key, image in chosen.items():  # found in a nested index: named directly
        if key not in listed:
            desc = Descriptor(image.media_type, image.digest, image.size, None, image.platform)
            kept.append((desc.to_dict(), desc, image))
    if len(kept) == len(index.children) and all(
            a is b for (_, a, _), (b, _) in zip(kept, index.children, strict=True)):
        return index
    return _with_entries(index, kept)


def images_for(index: Index, wanted: Sequence[Platform]) -> dict[str, Image]:
    """The images of ``index`` for ``wanted`` by digest: every image entry the index lists
    directly for one of them (several for one platform when they differ only in
    os.version or os.features, as Windows releases do); a platform listed only in a
    nested index, the image select_image finds there (a platform it lacks is
    InvalidPlatformError naming the platforms it has)."""
    direct = _direct_images(index)
    chosen: dict[str, Image] = {}
    for platform in wanted:
        listed = [image for found, image in direct if found.matches(platform)]
        for image in listed or [select_image(index, platform)]:
            chosen.setdefault(str(image.digest), image)
    return chosen


def _direct_images(index: Index) -> list[tuple[Platform, Image]]:
    """The platform images ``index`` lists directly, each with its platform, in order."""
    return [(platform, child) for desc, child in index.children
            if isinstance(child, Image) and (platform := _platform_of(desc, child)) is not None]


def select_children(index: Index, wanted: Platform) -> Artifact:
    """What copying one platform of ``index`` keeps: the one image for ``wanted``, or,
    when the index lists several for it (Windows releases differing in os.version), an
    index of exactly those (select_images), never silently the first."""
    chosen = images_for(index, (wanted,))
    if len(chosen) == 1:
        return next(iter(chosen.values()))
    return select_images(index, (wanted,))


def same_platform_images(index: Index) -> list[tuple[Platform, Image]] | None:
    """The platform images of ``index`` (nested ones too) when there are several and all
    are for one platform, differing only in os.version or os.features; None otherwise."""
    found = [(platform, image) for desc, image in index.images()
             if (platform := _platform_of(desc, image)) is not None]
    if len(found) > 1 and all(p.matches(found[0][0]) for p, _ in found):
        return found
    return None


def attested_digest(desc: Descriptor) -> str | None:
    """The image an attestation manifest's entry attests (buildx's annotations); None for
    any other entry."""
    notes = desc.annotations or {}
    if notes.get(DOCKER_REFERENCE_TYPE) != ATTESTATION_MANIFEST:
        return None
    return notes.get(DOCKER_REFERENCE_DIGEST)


def replace_images(index: Index, changed: Mapping[str, Image], *,
                   media_type: str | None = None) -> Index:
    """``index`` with each entry naming an image of ``changed`` (old digest -> new image)
    naming the new image: that entry keeps its platform and annotations.  Every other
    entry stays exactly as the source lists it, in the source's order, and so do the
    index's own fields; the attestation manifests of a changed image are left out (they
    attest the old one).  Every image of ``changed`` is a direct entry (images_to_change).
    ``media_type`` (the images converted): the index's own, with no annotations in a
    Docker manifest list."""
    entries = _raw_entries(index)
    kept: list[tuple[JSONObject, Descriptor, Artifact]] = []
    listed: set[str] = set()
    for position, (desc, child) in enumerate(index.children):
        key = str(desc.digest)
        new = changed.get(key) if isinstance(child, Image) else None
        if new is not None:
            listed.add(key)
            entry = {k: v for k, v in entries[position].items() if k != "data"}
            entry.update(mediaType=new.media_type, digest=str(new.digest), size=new.size)
            kept.append((entry, replace(desc, media_type=new.media_type, digest=new.digest,
                                        size=new.size, data=None), new))
        elif attested_digest(desc) in changed:
            continue
        else:
            kept.append((entries[position], desc, child))
    missing = sorted(set(changed) - listed)
    if missing:
        raise ValidationError(f"index {index.digest.short} lists no image {missing[0]} "
                              "directly")
    return _with_entries(index, kept, media_type)


def _with_entries(index: Index, kept: Sequence[tuple[JSONObject, Descriptor, Artifact]],
                  media_type: str | None = None) -> Index:
    """``index`` listing ``kept`` (each entry as written, its descriptor, its child), its
    own fields kept; ``media_type``: the index's new one (a Docker manifest list has
    no annotations)."""
    doc = dict(index.manifest)
    doc["manifests"] = [entry for entry, _, _ in kept]
    if media_type is not None:
        doc["mediaType"] = media_type
        if media_type == mt.DOCKER_LIST:
            doc.pop("annotations", None)
    return Index(canonical(doc), tuple((desc, child) for _, desc, child in kept),
                 index.source)


def _raw_entries(index: Index) -> list[JSONObject]:
    """The ``manifests`` entries of ``index`` as its document writes them."""
    raw = index.manifest.get("manifests")
    return raw if isinstance(raw, list) else []
