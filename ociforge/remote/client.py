"""The distribution API v2 for one registry: manifests, blobs, uploads, tags, referrers.

Every method takes the repository path (``library/alpine``) and asks for the
token scope it needs.  Manifests are read bounded (4 MiB) and verified; blobs
are streamed and verified at EOF; uploads stream from the blob's opener.  The
signing code builds on ``get_manifest``/``put_manifest``/``push_blob``/
``list_tags``/``get_referrers`` (cosign ``.sig`` tags and the referrers tag
fallback).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any, cast
from urllib.parse import quote

import requests

from ..errors import (
    AuthError,
    DigestMismatchError,
    InvalidInputError,
    RegistryError,
    TransportError,
)
from ..model import mediatypes as mt
from ..model.descriptor import Descriptor
from ..model.digest import Digest, VerifyingReader
from ..model.jsonutil import MAX_DOCUMENT, loads, parse_object
from ..model.layer import Layer
from ..model.reference import DOCKER_HUB_API, normalize_registry
from ..options import RegistryOptions
from ..progress.events import NULL_TASK, Task, retry_pause
from .auth import Credentials, merge_scopes, pull_scope, push_scope
from .transport import FileBody, TimedOut, Transport, mask_url
from .upload import blob_present, upload_blob
from .watchdog import Guard

log = logging.getLogger("ociforge.remote")

MAX_TAG_LIST = 16 << 20
MAX_TAG_PAGES = 10_000   # pages of a tag list; a registry that never ends one is refused
MANIFEST_PUT_ATTEMPTS = 3


@dataclass(frozen=True)
class ManifestPut:
    """What a manifest PUT returned: the digest and the response headers."""

    digest: Digest
    headers: dict[str, str]
    location: str = ""

    @property
    def oci_subject(self) -> str | None:
        """The ``OCI-Subject`` header: present only when the registry has a referrers API."""
        for key, value in self.headers.items():
            if key.lower() == "oci-subject":
                return value
        return None


@dataclass(frozen=True)
class ManifestHead:
    media_type: str
    digest: Digest | None
    size: int | None


class RegistryClient:
    """One registry's v2 API, shared by every pull and push to it in a run (a location
    gets it from ``stores.registry.client_for``, which keeps it in ``Options.session``).

    ``scopes`` lets a caller widen the token it will use (a push asks for
    ``pull,push`` on the target plus ``pull`` on mount sources, all in one
    token); without it each call asks for the least it needs.
    """

    def __init__(self, registry: str, options: RegistryOptions | None = None,
                 credentials: Credentials | Callable[[], Credentials | None] | None = None,
                 api_host: str | None = None):
        self.registry = normalize_registry(registry)
        self.options = options or RegistryOptions()
        if callable(credentials):
            source = credentials
        elif credentials is not None:
            fixed = credentials

            def source() -> Credentials | None:
                return fixed
        else:
            def source() -> Credentials | None:
                from .credentials import lookup

                return lookup(self.registry)
        host = api_host or (DOCKER_HUB_API if self.registry == "docker.io" else self.registry)
        self.transport = Transport(self.registry, host, self.options, source)
        self._extra_scopes: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    # -- scopes ----------------------------------------------------------------

    def _scopes(self, base: str, repository: str) -> list[str]:
        with self._lock:
            extra = self._extra_scopes.get(repository, set())
        return merge_scopes([base, *extra])

    def widen_scopes(self, repository: str, scopes: Iterable[str]) -> None:
        """Ask for these scopes too in every token used for ``repository`` (mount sources)."""
        with self._lock:
            self._extra_scopes.setdefault(repository, set()).update(scopes)

    def ping(self) -> requests.Response:
        """GET /v2/ (scheme detection and auth challenge)."""
        return self.transport.ping()

    def check_login(self) -> None:
        """Raise AuthError unless the configured credentials are accepted (for ``login``)."""
        from .auth import Challenge

        self.transport.ping()
        challenge: Challenge | None = self.transport.auth.challenge
        if challenge is None:
            return
        self.transport.request("GET", "/v2/", scopes=[], what="login check").close()

    def check_push_access(self, repository: str) -> None:
        """Raise AuthError unless this client may push to ``repository``; writes nothing.

        A Bearer registry's token for ``pull,push`` says what it grants: when it is
        a JWT with an ``access`` claim (Docker Hub, distribution's token servers),
        push must be among the granted actions for this repository.  Otherwise
        (Basic auth, anonymous registries, opaque tokens) the registry is asked to
        start an upload, which must be answered 202, and the upload session is
        deleted again at once.
        """
        scopes = self._scopes(push_scope(repository), repository)
        self.transport.base_url  # noqa: B018 - the /v2/ ping, once per client: the challenge
        challenge = self.transport.auth.challenge
        if challenge is not None and challenge.scheme == "bearer":
            header = self.transport.auth.header(self.transport, scopes) or ""
            granted = _granted_actions(header.removeprefix("Bearer "), repository)
            if granted is not None:
                if "push" in granted or "*" in granted:
                    return
                creds = self.transport.auth.credentials
                who = f"user {creds.username!r}" if creds and creds.username else "anonymous"
                allowed = ", ".join(sorted(granted)) or "nothing"
                raise AuthError(
                    f"{self.registry}: no push access to {repository} for {who}: the token "
                    f"service granted {allowed}" + ("" if creds else
                                                    " (run `ociforge login`)"),
                    status=403, code="DENIED")
        resp = self.transport.request(
            "POST", f"/v2/{repository}/blobs/uploads/", scopes=scopes, body=b"", ok=(202,),
            what=f"push access check for {repository}")
        resp.close()
        location = resp.headers.get("Location")
        if not location:
            return
        try:
            session = self.transport.resolve(location, resp.url, "upload Location")
            self.transport.request(
                "DELETE", session, scopes=scopes, ok=(200, 202, 204, 404),
                what=f"push access check for {repository}").close()
        except (RegistryError, TransportError) as exc:  # an abandoned session expires by itself
            log.debug("could not delete the probe upload in %s: %s", repository, exc)

    # -- manifests -------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str,
                     accept: str = mt.MANIFEST_ACCEPT) -> tuple[bytes, str, Digest]:
        """GET a manifest: (exact bytes, media type, digest), verified and bounded to 4 MiB.

        By digest the bytes must hash to it; by tag they must match the
        registry's Docker-Content-Digest when it sends one.
        """
        resp = self.transport.request(
            "GET", f"/v2/{repository}/manifests/{reference}", scopes=self._scopes(
                pull_scope(repository), repository), headers={"Accept": accept},
            stream=True, what=f"manifest {_ref_text(repository, reference)}")
        with resp:
            data = self.transport.read_body(resp, MAX_DOCUMENT,
                                            f"manifest {_ref_text(repository, reference)}")
        expected = _digest_or_none(reference) or _digest_or_none(
            resp.headers.get("Docker-Content-Digest"))
        if expected is None:
            digest = Digest.of_bytes(data)
        else:  # hashed once, with the algorithm the registry named
            hasher = expected.new_hasher()
            hasher.update(data)
            got = Digest.from_hasher(hasher)
            if got != expected:
                raise DigestMismatchError(
                    f"{self.registry}: manifest {_ref_text(repository, reference)} "
                    f"has digest {got}, "
                    f"expected {expected}")
            digest = expected
        doc = loads(data, f"{self.registry}: manifest {_ref_text(repository, reference)}")
        return data, _media_type(resp.headers.get("Content-Type"), doc), digest

    def head_manifest(self, repository: str, reference: str) -> ManifestHead | None:
        """HEAD a manifest: its media type, digest and size, or None when absent."""
        resp = self.transport.request(
            "HEAD", f"/v2/{repository}/manifests/{reference}",
            scopes=self._scopes(pull_scope(repository), repository),
            headers={"Accept": mt.MANIFEST_ACCEPT}, ok=(200, 404),
            what=f"manifest {_ref_text(repository, reference)}")
        resp.close()
        if resp.status_code == 404:
            return None
        length = resp.headers.get("Content-Length")
        return ManifestHead(
            (resp.headers.get("Content-Type") or "").split(";")[0].strip(),
            _digest_or_none(resp.headers.get("Docker-Content-Digest")),
            int(length) if length and length.isdigit() else None,
        )

    def put_manifest(self, repository: str, reference: str, data: bytes,
                     media_type: str) -> ManifestPut:
        """PUT exact manifest bytes under a tag or digest, Content-Type = ``media_type``.

        Checks the registry's Docker-Content-Digest against the local digest.
        A refusal naming MANIFEST_BLOB_UNKNOWN is checked: when the repository does
        have every blob and child the manifest names, the PUT is sent again (bounded).
        Registry 2.8 gives that refusal (with DIGEST_INVALID) when it reads a blob's
        link file while another writer's commit of the same blob rewrites it in place.
        ``.oci_subject`` of the result tells whether the registry handled a
        ``subject`` (referrers API) or the client must update the fallback tag.
        """
        if len(data) > MAX_DOCUMENT:
            raise InvalidInputError(f"manifest is {len(data)} bytes; registries refuse more than "
                                    f"{MAX_DOCUMENT}")
        digest = Digest.of_bytes(data)
        for attempt in range(MANIFEST_PUT_ATTEMPTS):
            try:
                resp = self.transport.request(
                    "PUT", f"/v2/{repository}/manifests/{reference}",
                    scopes=self._scopes(push_scope(repository), repository),
                    headers={"Content-Type": media_type}, body=data, ok=(200, 201, 202),
                    what=f"manifest {_ref_text(repository, reference)}")
                break
            except RegistryError as exc:
                if (attempt + 1 >= MANIFEST_PUT_ATTEMPTS or isinstance(exc, AuthError)
                        or "MANIFEST_BLOB_UNKNOWN" not in exc.codes
                        or not self._references_present(repository, data)):
                    raise
                log.info("%s refused manifest %s (%s) but has everything it names: "
                         "putting it again", self.registry, _ref_text(repository, reference),
                         ", ".join(exc.codes))
        resp.close()
        returned = _digest_or_none(resp.headers.get("Docker-Content-Digest"))
        if returned is not None and returned.algorithm == digest.algorithm and returned != digest:
            raise DigestMismatchError(f"{self.registry}: manifest pushed as {digest} but the "
                                      f"registry stored {returned}")
        return ManifestPut(digest, dict(resp.headers), resp.headers.get("Location", ""))

    def _references_present(self, repository: str, data: bytes) -> bool:
        """Does ``repository`` have every blob and child manifest the manifest ``data``
        names (by digest and size)?  Blobs with ``urls`` are not the registry's to hold."""
        try:
            doc = parse_object(data, "manifest")
            config = [doc["config"]] if isinstance(doc.get("config"), dict) else []
            blobs = [Descriptor.from_dict(d) for d in [*config, *_list(doc, "layers")]]
            children = [Descriptor.from_dict(d) for d in _list(doc, "manifests")]
        except InvalidInputError:
            return False
        try:
            for child in children:
                head = self.head_manifest(repository, str(child.digest))
                if head is None or head.digest not in (None, child.digest):
                    return False
            return all(self.blob_exists(repository, blob.digest, blob.size)
                       for blob in blobs if not blob.urls)
        except (RegistryError, TransportError) as exc:   # no answer: the refusal stands
            log.info("could not check what the manifest names: %s", exc)
            return False

    def delete_manifest(self, repository: str, digest: Digest | str) -> None:
        resp = self.transport.request(
            "DELETE", f"/v2/{repository}/manifests/{digest}",
            scopes=[f"repository:{repository}:delete"], ok=(200, 202),
            what=f"delete {repository}@{digest}")
        resp.close()

    # -- blobs -----------------------------------------------------------------

    def blob_exists(self, repository: str, digest: Digest | str,
                    size: int | None = None) -> bool:
        """HEAD a blob in this repository (blobs are repository-scoped); with ``size``,
        a blob of another length does not count."""
        parsed = digest if isinstance(digest, Digest) else Digest.parse(digest)
        return blob_present(self.transport, repository, parsed,
                            self._scopes(pull_scope(repository), repository), size)

    def open_blob(self, repository: str, digest: Digest | str) -> IO[bytes]:
        """The raw blob body as a stream (unverified; ``get_blob`` verifies).

        Redirects are followed here: Authorization is never sent to another host.
        A connection that breaks mid-body is resumed with a Range request (bounded).
        """
        stream = _BlobStream(self, repository, str(digest))
        stream.reopen()
        return cast(IO[bytes], stream)

    def _blob_response(self, repository: str, digest_text: str,
                       offset: int = 0) -> requests.Response:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        # transport.request follows redirects hop by hop: Authorization only to the
        # registry's own origin, never to a storage host it sends us to.
        return self.transport.request(
            "GET", f"/v2/{repository}/blobs/{digest_text}", headers=headers,
            scopes=self._scopes(pull_scope(repository), repository), stream=True,
            ok=(200, 206), what=f"blob {digest_text}")

    def get_blob(self, repository: str, digest: Digest | str,
                 size: int | None = None) -> VerifyingReader:
        """A streaming reader of a blob that verifies digest (and size) at EOF."""
        parsed = digest if isinstance(digest, Digest) else Digest.parse(digest)
        return VerifyingReader(self.open_blob(repository, parsed), parsed, size, "blob")

    def push_blob(self, repository: str, layer: Layer, mount_from: str | None = None,
                  progress: Task = NULL_TASK) -> str:
        """Make sure a blob is in ``repository``: 'exists', 'mounted' or 'uploaded'.

        HEAD first; then a cross-repository mount from ``mount_from`` (a
        repository on this registry); else POST + one PUT streamed from the
        layer's opener, or chunked PATCHes when a chunk size is set for this registry.
        ``progress`` counts the bytes uploaded.
        """
        if self.blob_exists(repository, layer.digest):
            return "exists"
        scopes = self._scopes(push_scope(repository), repository)
        if mount_from and mount_from != repository:
            scopes = merge_scopes([*scopes, pull_scope(mount_from)])
        return upload_blob(self.transport, repository, layer, scopes, mount_from,
                           self.options.chunk_size_for(self.registry), progress)

    def put_blob_bytes(self, repository: str, data: bytes, media_type: str = "application/"
                       "octet-stream") -> Digest:
        """Upload a small in-memory blob (configs, signatures); returns its digest."""
        import io

        digest = Digest.of_bytes(data)
        layer = Layer(Descriptor(media_type, digest, len(data)), None, lambda: io.BytesIO(data))
        self.push_blob(repository, layer)
        return digest

    # -- tags and referrers ------------------------------------------------------

    def list_tags(self, repository: str) -> list[str]:
        """Every tag of a repository, following ``Link: <...>; rel="next"`` pages; [] when
        the repository is unknown.

        A next page must be on the registry's own origin: a Link to another host is
        refused (it would make us ask a stranger, and with a same-origin rule only
        there, never send it our token).  A page naming itself again is refused too.
        """
        tags: list[str] = []
        url = f"/v2/{repository}/tags/list"
        visited: set[str] = set()
        for _ in range(MAX_TAG_PAGES):
            resp = self.transport.request(
                "GET", url, scopes=self._scopes(pull_scope(repository), repository),
                ok=(200, 404), stream=True, what=f"tags of {repository}")
            with resp:
                if resp.status_code == 404:
                    return tags
                what = f"tag list of {repository}"
                body = parse_object(self.transport.read_body(resp, MAX_TAG_LIST, what),
                                    f"{self.registry}: {what}", MAX_TAG_LIST)
                page = body.get("tags")
                if isinstance(page, list):
                    tags.extend(t for t in page if isinstance(t, str))
                visited.add(resp.url)
                target = self.transport.next_link(resp)  # refuses another origin
            if target is None:
                return tags
            if target in visited:
                raise RegistryError(f"{self.registry}: tags of {repository}: the next page "
                                    f"{mask_url(target)} was already read (a pagination loop)")
            url = target
        raise RegistryError(f"{self.registry}: tags of {repository}: more than "
                            f"{MAX_TAG_PAGES} pages")

    def get_referrers(self, repository: str, digest: Digest | str,
                      artifact_type: str | None = None) -> dict[str, Any] | None:
        """GET /v2/<repo>/referrers/<digest>: the index as a dict, or None when unsupported.

        None (404, 400, 405, 501 or a non-index answer) means: use the
        ``sha256-<hex>`` referrers tag fallback.
        """
        path = f"/v2/{repository}/referrers/{digest}"
        if artifact_type:
            path += f"?artifactType={quote(artifact_type, safe='')}"
        resp = self.transport.request(
            "GET", path, scopes=self._scopes(pull_scope(repository), repository),
            headers={"Accept": mt.OCI_INDEX}, ok=(200, 400, 404, 405, 501), stream=True,
            what=f"referrers of {digest}")
        with resp:
            if resp.status_code != 200:
                return None
            ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
            data = self.transport.read_body(resp, MAX_DOCUMENT, f"referrers of {digest}")
        if ctype and ctype != mt.OCI_INDEX:
            return None
        try:
            doc = parse_object(data, "referrers index")
        except InvalidInputError:
            return None
        return doc if isinstance(doc.get("manifests"), list) else None

    def close(self) -> None:
        self.transport.close()


class _Broken(Exception):
    """A blob body that broke off or stalled: resumed with Range (bounded)."""

    def __init__(self, cause: str, stalled: bool):
        super().__init__(cause)
        self.stalled = stalled


class _BlobStream:
    """A file-like blob body: large reads, resumed with Range after a broken connection."""

    RESUMES = 3

    def __init__(self, client: RegistryClient, repository: str, digest_text: str):
        self._client = client
        self._repository = repository
        self._digest = digest_text
        self._resp: requests.Response | None = None
        self._guard: Guard | None = None
        self._offset = 0
        self._resumes = 0

    def reopen(self) -> None:
        self.close()
        resp = self._client._blob_response(self._repository, self._digest, self._offset)
        self._resp = resp
        self._guard = self._client.transport.watch_transfer(resp)
        if self._offset and resp.status_code == 200:
            # the server ignored Range: skip what we already have
            self._discard(self._offset)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts: list[bytes] = []
            while True:
                data = self.read(1 << 20)
                if not data:
                    return b"".join(parts)
                parts.append(data)
        first = self._read_some(n)
        if len(first) >= n or not first:
            return first
        # a file's read(n): n bytes unless the blob ends (tarfile relies on it)
        parts = [first]
        got = len(first)
        while got < n:
            data = self._read_some(n - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def _read_some(self, n: int) -> bytes:
        """What one network read gives (resumed after a break or a stall, bounded)."""
        while True:
            try:
                if self._resp is None:
                    self.reopen()
                data = self._read1(n)
            except _Broken as exc:
                self.close()
                what = f"download of blob {self._digest[:19]}"
                if self._resumes >= self.RESUMES:
                    if exc.stalled:
                        raise TimedOut(self._client.transport.stall_message(what)) from None
                    raise TransportError(f"{self._client.registry}: {what} interrupted: "
                                         f"{exc}") from None
                self._resumes += 1
                log.info("resuming blob %s at byte %d (%s)", self._digest[:19], self._offset,
                         exc)
                retry_pause(self._resumes + 1, self.RESUMES + 1, 0.0,
                            f"resuming at byte {self._offset}: {exc}")
                continue
            self._offset += len(data)
            return data

    def _read1(self, n: int) -> bytes:
        """One network read (what arrived, up to ``n`` bytes); a stall or a broken
        connection is _Broken (a stall never looks like the end of the blob)."""
        assert self._resp is not None and self._guard is not None
        guard = self._guard
        guard.arm()
        try:
            data = bytes(self._resp.raw.read1(n, decode_content=False))
        except Exception as exc:  # urllib3 raises several unrelated types here
            guard.moved(0)
            raise _Broken("stalled" if guard.fired else type(exc).__name__,
                          guard.fired) from None
        guard.moved(len(data))
        if guard.fired:
            raise _Broken("stalled", True)
        return data

    def _discard(self, count: int) -> None:
        left = count
        while left > 0:
            data = self._read1(min(left, 1 << 20))
            if not data:
                raise _Broken("the body ended before the resume offset", False)
            left -= len(data)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self._guard is not None:
            self._guard.close()
            self._guard = None
        if self._resp is not None:
            self._resp.close()
            self._resp = None

    def __enter__(self) -> _BlobStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _granted_actions(token: str, repository: str) -> set[str] | None:
    """The actions a JWT bearer token grants on ``repository``; None when the token is
    not a JWT with an ``access`` claim (then only the registry can tell)."""
    import base64
    import binascii

    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > 65536:
        return None
    try:
        claims = loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)),
                       "bearer token claims")
    except (binascii.Error, ValueError, InvalidInputError):
        return None
    access = claims.get("access") if isinstance(claims, dict) else None
    if not isinstance(access, list):
        return None
    granted: set[str] = set()
    for entry in access:
        if (isinstance(entry, dict) and entry.get("type") == "repository"
                and entry.get("name") == repository and isinstance(entry.get("actions"), list)):
            granted.update(a for a in entry["actions"] if isinstance(a, str))
    return granted


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    return value if isinstance(value, list) else []


def _digest_or_none(text: str | None) -> Digest | None:
    if not text or ":" not in text:
        return None
    try:
        return Digest.parse(text.strip())
    except InvalidInputError:
        return None


def _media_type(content_type: str | None, doc: object) -> str:
    """The manifest's own mediaType wins; else the Content-Type without parameters."""
    declared = (content_type or "").split(";")[0].strip()
    if isinstance(doc, dict) and isinstance(doc.get("mediaType"), str):
        return str(doc["mediaType"])
    if isinstance(doc, dict) and "manifests" in doc:
        return declared if declared in mt.INDEXES else mt.OCI_INDEX
    return declared or mt.OCI_MANIFEST


__all__ = ["FileBody", "ManifestHead", "ManifestPut", "RegistryClient"]


def _ref_text(repository: str, reference: str) -> str:
    """``repo:tag`` or ``repo@sha256:...``: how a person writes either reference."""
    return f"{repository}@{reference}" if ":" in reference else f"{repository}:{reference}"
