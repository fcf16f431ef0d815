"""Content descriptors: the (mediaType, digest, size, ...) triples that link documents."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import InvalidInputError
from .digest import Digest
from .jsonutil import JSONObject
from .platform import Platform

_MEDIA_TYPE_RE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] | None = field(default=None, hash=False, compare=True)
    platform: Platform | None = None
    artifact_type: str | None = None
    urls: tuple[str, ...] | None = None
    data: str | None = None

    @classmethod
    def from_dict(cls, obj: object, what: str = "descriptor") -> Descriptor:
        if not isinstance(obj, dict):
            raise InvalidInputError(f"{what} is not a JSON object")
        media_type = obj.get("mediaType")
        if not isinstance(media_type, str) or not _MEDIA_TYPE_RE.match(media_type):
            raise InvalidInputError(f"{what} has a missing or malformed mediaType")
        digest_text = obj.get("digest")
        if not isinstance(digest_text, str):
            raise InvalidInputError(f"{what} has no digest")
        digest = Digest.parse(digest_text)
        size = obj.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInputError(f"{what} {digest_text} has a missing or negative size")
        annotations = obj.get("annotations")
        if annotations is not None and (
            not isinstance(annotations, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items())
        ):
            raise InvalidInputError(f"{what} {digest_text} has non-string annotations")
        platform = Platform.from_dict(obj["platform"]) if obj.get("platform") else None
        artifact_type = obj.get("artifactType")
        urls = obj.get("urls")
        data = obj.get("data")
        return cls(
            media_type,
            digest,
            size,
            dict(annotations) if annotations else None,
            platform,
            artifact_type if isinstance(artifact_type, str) else None,
            tuple(urls) if isinstance(urls, list) else None,
            data if isinstance(data, str) else None,
        )

    def to_dict(self) -> JSONObject:
        out: JSONObject = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.urls:
            out["urls"] = list(self.urls)
        if self.data is not None:
            out["data"] = self.data
        return out

    def with_annotations(self, annotations: Mapping[str, str] | None) -> Descriptor:
        return Descriptor(
            self.media_type, self.digest, self.size,
            dict(annotations) if annotations else None,
            self.platform, self.artifact_type, self.urls, self.data,
        )

    def with_platform(self, platform: Platform | None) -> Descriptor:
        return Descriptor(
            self.media_type, self.digest, self.size, self.annotations,
            platform, self.artifact_type, self.urls, self.data,
        )
