"""Image references as Docker writes them (distribution/reference normalisation).

``alpine`` is ``docker.io/library/alpine:latest``; a first path component is a
registry only when it contains ``.`` or ``:``, is ``localhost``, or has an
uppercase letter.  ``docker.io``, ``index.docker.io`` and ``registry-1.docker.io``
are one registry, spoken to at ``registry-1.docker.io`` and keyed in credential
stores as ``https://index.docker.io/v1/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..errors import InvalidInputError, InvalidReferenceError
from .digest import Digest

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_CREDENTIAL_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

# The one host grammar (distribution/reference's domainAndPort): a domain or a
# bracketed IPv6 address, with an optional port.  Patterns are used with
# fullmatch: ``$`` would also accept a trailing newline.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_HOST_RE = re.compile(rf"(?:{_IPV6}|{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*)(?::[0-9]+)?")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def is_docker_hub(registry: str) -> bool:
    return registry.lower() in _HUB_ALIASES


def normalize_registry(registry: str) -> str:
    """The canonical name of a registry host (all Docker Hub aliases are docker.io)."""
    return DOCKER_HUB if is_docker_hub(registry) else registry


def is_registry_host(text: str) -> bool:
    """``host[:port]`` as the registry part of a reference is written."""
    return isinstance(text, str) and _HOST_RE.fullmatch(text) is not None


def names_registry(component: str) -> bool:
    """Is a reference's first path component a registry rather than a namespace?

    Docker's rule: it contains ``.`` or ``:``, is ``localhost``, or has an
    uppercase letter (repository names are lowercase).
    """
    return ("." in component or ":" in component or component == "localhost"
            or component.lower() != component)


def host_and_port(text: str) -> tuple[str, int | None]:
    """A registry's ``host[:port]`` as (host, port); an IPv6 host loses its brackets."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    return host, int(port) if port.isascii() and port.isdigit() else None


def is_loopback_name(name: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1 (a host name without a port)."""
    import ipaddress

    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1, written as host[:port] (a registry name)."""
    return is_loopback_name(host_and_port(host)[0])


def parse_registry(text: str) -> str:
    """A registry named on its own (``login``, ``logout``), normalised.

    ``ghcr.io``, ``localhost:5000``, or a URL as Docker keys credentials
    (``https://index.docker.io/v1/``: scheme and path are dropped).
    """
    host = text.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0]
    if "@" in host:
        raise InvalidReferenceError("invalid registry: a registry name holds no user name or "
                                    "password")
    if not host:
        raise InvalidReferenceError(f"invalid registry {_show(text)}")
    if not names_registry(host):
        raise InvalidReferenceError(f"invalid registry {_show(text)}: expected host[:port]")
    if not is_registry_host(host):
        raise InvalidReferenceError(f"invalid registry {_show(text)}: bad host name")
    return normalize_registry(host)


@dataclass(frozen=True)
class Reference:
    """A fully-qualified image reference: registry, repository, tag and/or digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse and normalise; raises InvalidReferenceError (exit 2) on bad input."""
        if not isinstance(text, str):
            raise InvalidReferenceError("image reference must be a string")
        original = text
        text = text.strip()
        text = text.removeprefix("docker://")
        if not text:
            raise InvalidReferenceError("image reference is empty")
        shown = _show(original)
        name, digest = _split_digest(text, shown)
        name, tag = _split_tag(name, shown)
        registry, repository = _split_domain(name, shown)
        if not _PATH_RE.fullmatch(repository):
            if repository.lower() != repository and _PATH_RE.fullmatch(repository.lower()):
                raise InvalidReferenceError(
                    f"invalid image reference {shown}: repository name must be lowercase"
                )
            raise InvalidReferenceError(f"invalid image reference {shown}: bad repository name")
        if len(registry) + 1 + len(repository) > MAX_NAME_LENGTH:
            raise InvalidReferenceError(
                f"invalid image reference {shown}: name longer than {MAX_NAME_LENGTH} characters"
            )
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return cls(registry, repository, tag, digest)

    @property
    def api_host(self) -> str:
        """The host[:port] that serves /v2/ for this registry."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def credential_key(self) -> str:
        """The key under which docker/podman store this registry's credentials."""
        return credential_key(self.registry)

    @property
    def is_docker_hub(self) -> bool:
        return self.registry == DOCKER_HUB

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/``: the digest if pinned, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag):
            raise InvalidReferenceError(f"invalid tag {_show(tag)}")
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: Digest | str) -> Reference:
        if isinstance(digest, str):
            try:
                digest = Digest.parse(digest)
            except InvalidInputError as exc:
                raise InvalidReferenceError(str(exc)) from None
        return replace(self, digest=digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def credential_key(registry: str) -> str:
    """Docker's auths/credential-helper key for a registry host."""
    return DOCKER_HUB_CREDENTIAL_KEY if is_docker_hub(registry) else registry


def docker_reference(registry: str, repository: str) -> str:
    """The repository without tag, named as ggcr names it (Docker Hub is
    ``index.docker.io``, its ``pkg/name`` DefaultRegistry): a signature payload's identity."""
    host = "index.docker.io" if is_docker_hub(registry) else registry
    return f"{host}/{repository}"


def normalize_name(text: str) -> str:
    """``app`` -> ``docker.io/library/app:latest`` (what containerd stores as the image name)."""
    return str(Reference.parse(text))


def _show(text: str) -> str:
    return repr(text if len(text) <= 200 else text[:200] + "...")


def _split_digest(text: str, shown: str) -> tuple[str, Digest | None]:
    name, at, digest_text = text.partition("@")
    if not at:
        return text, None
    if "@" in digest_text:
        raise InvalidReferenceError(f"invalid image reference {shown}: more than one '@'")
    try:
        return name, Digest.parse(digest_text)
    except InvalidInputError as exc:
        raise InvalidReferenceError(f"invalid image reference {shown}: {exc}") from None


def _split_tag(name: str, shown: str) -> tuple[str, str | None]:
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon <= slash:
        return name, None
    tag = name[colon + 1:]
    if not _TAG_RE.fullmatch(tag):
        raise InvalidReferenceError(f"invalid image reference {shown}: bad tag {tag[:130]!r}")
    return name[:colon], tag


def _split_domain(name: str, shown: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if slash and names_registry(first):
        if not is_registry_host(first):
            raise InvalidReferenceError(f"invalid image reference {shown}: bad registry {first!r}")
        registry, repository = normalize_registry(first), rest
    else:
        registry, repository = DOCKER_HUB, name
    if not repository:
        raise InvalidReferenceError(f"invalid image reference {shown}: no repository name")
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return registry, repository
