"""OCI and Docker media types, and the predicates that group them."""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"

IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFESTS = IMAGE_MANIFESTS | INDEXES
# The Accept list for every manifest GET/HEAD: registries 404 OCI documents without it.
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])

GZIP_LAYERS = frozenset(
    {
        OCI_LAYER_GZIP,
        DOCKER_LAYER_GZIP,
        DOCKER_FOREIGN_LAYER_GZIP,
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    }
)
ZSTD_LAYERS = frozenset(
    {OCI_LAYER_ZSTD, "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"}
)
PLAIN_LAYERS = frozenset(
    {OCI_LAYER, DOCKER_LAYER, "application/vnd.oci.image.layer.nondistributable.v1.tar"}
)
LAYERS = GZIP_LAYERS | ZSTD_LAYERS | PLAIN_LAYERS


def is_index(media_type: str | None) -> bool:
    return media_type in INDEXES


def is_image_manifest(media_type: str | None) -> bool:
    return media_type in IMAGE_MANIFESTS


def is_docker(media_type: str | None) -> bool:
    return bool(media_type) and str(media_type).startswith("application/vnd.docker.")


def compression_of(layer_media_type: str) -> str:
    """'gzip', 'zstd' or 'none' for a layer media type ('none' for unknown types)."""
    if layer_media_type in GZIP_LAYERS:
        return "gzip"
    if layer_media_type in ZSTD_LAYERS:
        return "zstd"
    return "none"


def layer_type(compression: str, docker: bool = False) -> str:
    """The layer media type for a compression in the OCI or Docker family."""
    if docker:
        if compression == "gzip":
            return DOCKER_LAYER_GZIP
        if compression == "none":
            return DOCKER_LAYER
        # Docker has no zstd layer type; OCI's is what buildx pushes too.
        return OCI_LAYER_ZSTD
    return {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD, "none": OCI_LAYER}[compression]


def to_docker(media_type: str) -> str:
    return {
        OCI_MANIFEST: DOCKER_MANIFEST,
        OCI_INDEX: DOCKER_LIST,
        OCI_CONFIG: DOCKER_CONFIG,
        OCI_LAYER: DOCKER_LAYER,
        OCI_LAYER_GZIP: DOCKER_LAYER_GZIP,
    }.get(media_type, media_type)


def to_oci(media_type: str) -> str:
    return {
        DOCKER_MANIFEST: OCI_MANIFEST,
        DOCKER_LIST: OCI_INDEX,
        DOCKER_CONFIG: OCI_CONFIG,
        DOCKER_LAYER: OCI_LAYER,
        DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
    }.get(media_type, media_type)
