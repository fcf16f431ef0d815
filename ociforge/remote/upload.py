"""Blob uploads: cross-repository mount, POST + one streamed PUT, or chunked PATCHes.

The default is POST then one PUT carrying the whole blob with Content-Length,
streamed from the layer's opener in 1 MiB pieces (what ggcr and the Docker
daemon do, and what every registry accepts).  Chunked mode (``--chunk-size``,
for registries with per-request body limits) honours OCI-Chunk-Min-Length,
always follows the newest Location exactly as returned, tracks the offset
itself, and accepts 202 or 201 for a PATCH (ECR answers 201).  An upload that
breaks mid-way is restarted from a new POST (bounded), since a registry may
drop the session.

When the registry refuses an upload session or its commit (BLOB_UPLOAD_UNKNOWN,
BLOB_UPLOAD_INVALID, DIGEST_INVALID, ...), the blob is HEADed before anything
else: if the repository now has it with our digest and size, the work is done.
That is the case when the commit's answer was lost and the resent PUT found
the session closed, and when another writer committed the same blob while ours
was under way.  Otherwise the upload restarts (DIGEST_INVALID only once: our
bytes will not hash differently the third time) and the last refusal, with the
registry's code, is what the caller sees.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import requests

from ..errors import DigestMismatchError, RegistryError, TransportError
from ..model.digest import Digest
from ..model.layer import Layer
from ..progress.events import NULL_TASK, Task, retry_pause
from .transport import FileBody, Refused, TimedOut, Transport

log = logging.getLogger("ociforge.remote")

UPLOAD_RESTARTS = 3
_RESTARTABLE_CODES = frozenset({"BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "RANGE_INVALID",
                                "SIZE_INVALID", "DIGEST_INVALID", None})


def upload_blob(transport: Transport, repository: str, layer: Layer, scopes: list[str],
                mount_from: str | None, chunk_size: int | None,
                progress: Task = NULL_TASK) -> str:
    """Mount or upload one blob; returns 'mounted' or 'uploaded'.  ``progress`` hears the
    bytes the registry took (a restarted upload counts on from where it got before)."""
    location = None
    if mount_from and mount_from != repository:
        location = _try_mount(transport, repository, layer.digest, mount_from, scopes)
        if location == "mounted":
            return "mounted"
    digest_refusals = 0
    for attempt in range(UPLOAD_RESTARTS):
        try:
            if location is None:
                location = _start(transport, repository, scopes, layer.digest)
            url, min_chunk = location if isinstance(location, tuple) else (location, 0)
            if chunk_size:
                _chunked(transport, url, layer, scopes, max(chunk_size, min_chunk), progress)
            else:
                _monolithic(transport, url, layer, scopes, progress)
            return "uploaded"
        except (TransportError, RegistryError) as exc:
            if isinstance(exc, TransportError):
                # a cut connection gets a fresh session; a refused URL, an answer that
                # overran --timeout or a stalled transfer would only repeat
                restartable = not isinstance(exc, Refused | TimedOut)
            else:
                restartable = (exc.code in _RESTARTABLE_CODES and exc.status not in (401, 403)
                               and not isinstance(exc, DigestMismatchError))
                if restartable and _stored_anyway(transport, repository, layer, scopes, exc):
                    return "uploaded"
                if exc.code == "DIGEST_INVALID":
                    digest_refusals += 1
            if attempt + 1 >= UPLOAD_RESTARTS or not restartable or digest_refusals > 1:
                raise
            log.info("restarting upload of %s after: %s", layer.digest.short, exc)
            retry_pause(attempt + 2, UPLOAD_RESTARTS, 0.0, f"upload restarted: {exc}")
            location = None
    raise AssertionError("unreachable")


def blob_present(transport: Transport, repository: str, digest: Digest, scopes: list[str],
                 size: int | None = None) -> bool:
    """HEAD a blob in ``repository``: True on 200, unless the answer names another
    digest (same algorithm) or, when ``size`` is given, another length."""
    resp = transport.request("HEAD", f"/v2/{repository}/blobs/{digest}", scopes=scopes,
                             ok=(200, 404), what=f"blob {digest}")
    resp.close()
    if resp.status_code != 200:
        return False
    named = resp.headers.get("Docker-Content-Digest", "").strip()
    if named.startswith(digest.algorithm + ":") and named != str(digest):
        return False
    length = resp.headers.get("Content-Length", "")
    return size is None or not length.isdigit() or int(length) == size


def _stored_anyway(transport: Transport, repository: str, layer: Layer, scopes: list[str],
                   refusal: RegistryError) -> bool:
    """After ``refusal``: does the repository have the blob all the same?  A failing
    HEAD is no answer: the refusal stands."""
    try:
        present = blob_present(transport, repository, layer.digest, scopes, layer.size)
    except (TransportError, RegistryError) as exc:
        log.info("could not check %s after %s: %s", layer.digest.short, refusal.code, exc)
        return False
    if present:
        log.info("%s refused the upload of %s (%s), but has the blob: done",
                 transport.registry, layer.digest.short, refusal.code or refusal.status)
    return present


def _try_mount(transport: Transport, repository: str, digest: Digest, source: str,
               scopes: list[str]) -> str | tuple[str, int] | None:
    """POST ?mount=&from=: 'mounted' on 201, the upload Location on 202, None otherwise."""
    path = f"/v2/{repository}/blobs/uploads/?mount={digest}&from={source}"
    try:
        resp = transport.request("POST", path, scopes=scopes, body=b"", ok=(201, 202),
                                 what=f"mount {digest.short} from {source}")
    except RegistryError as exc:
        log.info("mount of %s from %s refused (%s); uploading instead", digest.short, source,
                 exc.code or exc.status)
        return None
    resp.close()
    if resp.status_code == 201:
        _check_digest(resp, digest)
        return "mounted"
    location = resp.headers.get("Location")
    if not location:
        return None
    return transport.resolve(location, resp.url, "upload Location"), _min_chunk(resp)


def _start(transport: Transport, repository: str, scopes: list[str],
           digest: Digest) -> tuple[str, int]:
    resp = transport.request("POST", f"/v2/{repository}/blobs/uploads/", scopes=scopes,
                             body=b"", ok=(202,), what=f"upload of {digest.short}")
    resp.close()
    location = resp.headers.get("Location")
    if not location:
        raise RegistryError(f"{transport.registry}: upload of {digest.short}: no Location in "
                            "the 202 answer")
    return transport.resolve(location, resp.url, "upload Location"), _min_chunk(resp)


def _min_chunk(resp: requests.Response) -> int:
    value = resp.headers.get("OCI-Chunk-Min-Length", "")
    return int(value) if value.isdigit() else 0


def _with_digest(url: str, digest: Digest) -> str:
    return url + ("&" if urlsplit(url).query else "?") + f"digest={digest}"


def _monolithic(transport: Transport, url: str, layer: Layer, scopes: list[str],
                progress: Task) -> None:
    body: bytes | FileBody = (FileBody(layer.opener, layer.size, on_sent=progress.reach)
                              if layer.size else b"")
    resp = transport.request(
        "PUT", _with_digest(url, layer.digest), scopes=scopes, body=body,
        headers={"Content-Type": "application/octet-stream"}, ok=(201, 204),
        what=f"upload of {layer.digest.short}")
    resp.close()
    _check_digest(resp, layer.digest)


def _chunked(transport: Transport, url: str, layer: Layer, scopes: list[str],
             chunk: int, progress: Task) -> None:
    offset = 0
    with layer.opener() as source:
        pending = b""
        while offset < layer.size:
            data = pending or _read_exact(source, min(chunk, layer.size - offset))
            pending = b""
            end = offset + len(data) - 1
            resp = transport.request(
                "PATCH", url, scopes=scopes, body=data,
                headers={"Content-Type": "application/octet-stream",
                         "Content-Range": f"{offset}-{end}"},
                ok=(202, 201, 204, 416), what=f"chunk {offset}-{end} of {layer.digest.short}")
            resp.close()
            if resp.status_code == 416:
                url, stored = _upload_status(transport, url, scopes, layer.digest)
                if stored == offset:
                    pending = data          # the registry lost this chunk: send it again
                    continue
                raise RegistryError(f"{transport.registry}: upload of {layer.digest.short} "
                                    "lost its place", code="RANGE_INVALID")
            location = resp.headers.get("Location")
            if location:
                url = transport.resolve(location, resp.url, "upload Location")
            offset = end + 1
            progress.reach(offset)
    resp = transport.request(
        "PUT", _with_digest(url, layer.digest), scopes=scopes, body=b"",
        headers={"Content-Type": "application/octet-stream"}, ok=(201, 204),
        what=f"upload of {layer.digest.short}")
    resp.close()
    _check_digest(resp, layer.digest)


def _upload_status(transport: Transport, url: str, scopes: list[str],
                   digest: Digest) -> tuple[str, int]:
    """GET the upload session: (newest Location, bytes stored)."""
    resp = transport.request("GET", url, scopes=scopes, ok=(204, 200),
                             what=f"upload status of {digest.short}")
    resp.close()
    location = resp.headers.get("Location")
    if location:
        url = transport.resolve(location, resp.url, "upload Location")
    rng = resp.headers.get("Range", "").removeprefix("bytes=")
    start, _, end = rng.partition("-")
    stored = int(end) + 1 if end.isdigit() and start == "0" else 0
    return url, stored


def _read_exact(source: object, n: int) -> bytes:
    parts: list[bytes] = []
    left = n
    while left > 0:
        data = source.read(left)  # type: ignore[attr-defined]
        if not data:
            raise TransportError("blob source ended before its declared size")
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def _check_digest(resp: requests.Response, digest: Digest) -> None:
    returned = resp.headers.get("Docker-Content-Digest")
    if returned and returned.strip() != str(digest) and returned.startswith(digest.algorithm):
        raise DigestMismatchError(f"blob {digest} was stored as {returned}")
