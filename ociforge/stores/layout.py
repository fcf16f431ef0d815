"""The OCI image layout on disk (``Layout``): blobs by digest plus index.json.

Reading verifies every document (digest, size, 4 MiB bound) and opens layers
lazily through verifying readers; nothing a layout holds can make us follow a
link out of it.  Writing is idempotent and crash-safe: each blob goes in under
a temporary name and is renamed once its digest checked out, children before
parents, and index.json is rewritten last, atomically and under the layout
lock, so it never names a blob that is not there.  Many writers share one
layout safely (see ``Layout.writing``).  The ``oci:DIR[:TAG]`` location over
it is ``layoutlocation.LayoutLocation``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import (
    HostileInputError,
    InvalidInputError,
    NotFoundError,
    SizeMismatchError,
    ValidationError,
)
from ..fsutil import atomic_write, atomic_write_bytes, check_writable_folder, make_parents
from ..model import mediatypes as mt
from ..model import walk
from ..model.annotations import REF_NAME
from ..model.descriptor import Descriptor
from ..model.digest import CHUNK, Digest, VerifyingReader, read_all_verified
from ..model.image import Image
from ..model.index import Artifact
from ..model.jsonutil import MAX_DOCUMENT, canonical, parse_object
from ..model.layer import Layer
from ..progress.events import Task
from .refnames import check_tag_to_write, select_descriptor
from .store import BlobStore

LAYOUT_VERSION = "1.0.0"
# The layout lock: index.json read-modify-writes and the layout's creation.
LOCK_NAME = ".ociforge.lock"
# Held shared by every writer for its whole write; exclusive only by a failed creator
# cleaning up, so that it never removes a layout another writer is using.
WRITERS_LOCK_NAME = ".ociforge-writers.lock"
# Held across a whole read-modify-write of a signature manifest or referrers index.
ATTACH_LOCK_NAME = ".ociforge-attach.lock"
_LOCK_NAMES = (LOCK_NAME, WRITERS_LOCK_NAME, ATTACH_LOCK_NAME)
# What a layout another writer is creating may hold before its oci-layout appears.
_LAYOUT_NAMES = ("oci-layout", "index.json", "blobs")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
BlobSource = Callable[[], IO[bytes]]


def _ours(name: str) -> bool:
    """Our lock files, a temporary file of a writer creating this layout, or the probe
    file a destination check creates and removes at once."""
    return name in _LOCK_NAMES or (name.startswith(".") and name.endswith(".tmp")) or \
        name.startswith(".ociforge-probe.")


class Layout(BlobStore):
    """One OCI image layout directory: blobs by digest plus index.json."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def __str__(self) -> str:
        return str(self.root)

    @property
    def source(self) -> str:
        return str(self.root)

    # -- paths and checks ---------------------------------------------------

    def blob_path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.hex

    @property
    def index_path(self) -> Path:
        return self.root / "index.json"

    def is_layout(self) -> bool:
        return (self.root / "oci-layout").is_file()

    def _refuse_link(self, path: Path, directory: bool) -> None:
        """``path`` must be absent, or a real folder / regular file, not a symlink.

        The root itself may be reached through a link the user named; nothing inside
        it is followed, so that neither reading nor writing leaves the layout.
        """
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        except NotADirectoryError:
            raise HostileInputError(
                f"{str(path)!r} in OCI layout {str(self.root)!r}: a parent is not a directory"
            ) from None
        if stat.S_ISLNK(info.st_mode):
            raise HostileInputError(
                f"{str(path)!r} in OCI layout {str(self.root)!r} is a symlink; "
                "links inside a layout are not followed"
            )
        if directory and not stat.S_ISDIR(info.st_mode):
            raise HostileInputError(
                f"{str(path)!r} in OCI layout {str(self.root)!r} is not a directory"
            )
        if not directory and not stat.S_ISREG(info.st_mode):
            raise HostileInputError(
                f"{str(path)!r} in OCI layout {str(self.root)!r} is not a regular file"
            )

    def _check_blob_dirs(self, algorithm: str = "sha256") -> None:
        self._refuse_link(self.root / "blobs", directory=True)
        self._refuse_link(self.root / "blobs" / algorithm, directory=True)

    def check_contents(self) -> None:
        """Refuse a layout whose control files or blob folders are links or special files."""
        for name in ("oci-layout", "index.json", *_LOCK_NAMES):
            self._refuse_link(self.root / name, directory=False)
        self._check_blob_dirs()
        blobs = self.root / "blobs"
        if blobs.is_dir():
            with os.scandir(blobs) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        self._refuse_link(Path(entry.path), directory=True)

    def _open_control(self, path: Path, flags: int, verb: str) -> int:
        """Open a file of the layout itself (not a blob) without following links.

        A link planted there can neither make us touch a file elsewhere nor echo
        part of it in an error; anything but a regular file is refused too.
        FileNotFoundError passes through for the caller to decide.
        """
        try:
            fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise HostileInputError(
                    f"{str(path)!r} in OCI layout {str(self.root)!r} is a symlink; "
                    "links inside a layout are not followed"
                ) from None
            raise InvalidInputError(f"cannot {verb} {str(path)!r}: {exc.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise HostileInputError(
                f"{str(path)!r} in OCI layout {str(self.root)!r} is not a regular file"
            )
        return fd

    def _read_control(self, path: Path) -> bytes | None:
        """oci-layout or index.json: a regular file in the layout itself (None when absent)."""
        try:
            fd = self._open_control(path, os.O_RDONLY, "read")
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as handle:
            return handle.read(MAX_DOCUMENT + 1)

    def _flock(self, name: str, mode: int) -> int | None:
        """Open the lock file ``name`` of this layout (never a link) and flock it.

        None when, once locked, the file is no longer the one at that name (a
        failed creator removed the layout meanwhile): the caller starts again.
        FileNotFoundError when the layout folder is gone.
        """
        path = self.root / name
        fd = self._open_control(path, os.O_RDWR | os.O_CREAT, "lock")
        try:
            fcntl.flock(fd, mode)
            held = os.fstat(fd)
            try:
                now = os.lstat(path)
            except FileNotFoundError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        return None

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """The layout lock (exclusive): index.json changes and the layout's creation."""
        while True:
            try:
                fd = self._flock(LOCK_NAME, fcntl.LOCK_EX)
            except FileNotFoundError:
                raise NotFoundError(f"OCI layout {str(self.root)!r} does not exist") from None
            if fd is not None:
                break
        try:
            yield
        finally:
            os.close(fd)  # releases the lock

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Every lock of this layout, exclusively, in the order writers take them
        (attachments, writers, index.json): no writer, signer or attacher is inside
        while the block runs, so blobs it removes cannot be ones a writer just put
        there and has not tagged yet."""
        fds: list[int] = []
        try:
            for name in (ATTACH_LOCK_NAME, WRITERS_LOCK_NAME):
                while True:
                    try:
                        fd = self._flock(name, fcntl.LOCK_EX)
                    except FileNotFoundError:
                        raise NotFoundError(
                            f"OCI layout {str(self.root)!r} does not exist") from None
                    if fd is not None:
                        fds.append(fd)
                        break
            with self._lock():
                yield
        finally:
            for fd in reversed(fds):
                os.close(fd)

    def _make_root(self) -> list[Path]:
        """Create the layout folder and missing parents; the ones this call made, root first."""
        return make_parents(self.root)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Write into this layout as one of its writers, creating it if need be.

        Creation (and the check that a non-empty folder is a layout) runs under
        the layout lock; the writers lock is held shared throughout.  When the
        block fails, a layout this writer created is removed again, but only if
        no other writer holds it and no tag was ever committed to it.
        """
        while True:
            created = self._make_root()
            try:
                fd = self._flock(WRITERS_LOCK_NAME, fcntl.LOCK_SH)
            except FileNotFoundError:
                continue  # removed between mkdir and open: make it again
            if fd is not None:
                break
        try:
            try:
                self._create()
                yield
            except BaseException:
                if created:
                    self._remove_if_unused(fd, created)
                raise
        finally:
            os.close(fd)

    def _create(self) -> None:
        """The layout skeleton, under the lock; refuses a folder that is something else."""
        if self.is_layout() and (self.root / "blobs" / "sha256").is_dir():
            self.check_readable()
            return
        with self._lock():
            if self.is_layout():
                self.check_readable()
            else:
                self.check_contents()
                strangers = sorted(p.name for p in self.root.iterdir() if not _ours(p.name))
                if strangers:
                    raise InvalidInputError(
                        f"{str(self.root)!r} is a non-empty directory but not an OCI layout "
                        f"(it holds {strangers[0]!r}); refusing to write into it"
                    )
                atomic_write_bytes(
                    self.root / "oci-layout", canonical({"imageLayoutVersion": LAYOUT_VERSION})
                )
            self._check_blob_dirs()
            (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    def _remove_if_unused(self, writers_fd: int, created: list[Path]) -> None:
        """Undo a failed creation: only with no other writer in and no tag committed."""
        try:
            fcntl.flock(writers_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # another writer is using the layout: it stays
        try:
            with self._lock():
                if os.path.lexists(self.index_path):
                    return  # a tag was committed: the layout is someone's now
                keep_last = ("oci-layout", *_LOCK_NAMES)
                for entry in self.root.iterdir():
                    if entry.name not in keep_last:
                        _remove(entry)
                for name in keep_last:  # the marker and the locks go last
                    with contextlib.suppress(FileNotFoundError):
                        (self.root / name).unlink()
                with contextlib.suppress(OSError):
                    self.root.rmdir()
        except (OSError, NotFoundError):
            return
        for parent in created[1:]:
            with contextlib.suppress(OSError):
                parent.rmdir()  # only when empty

    def check_readable(self) -> None:
        if not self.root.exists():
            raise InvalidInputError(f"OCI layout {str(self.root)!r} does not exist")
        if not self.root.is_dir():
            raise InvalidInputError(f"OCI layout {str(self.root)!r} is not a directory")
        self.check_contents()
        marker = self.root / "oci-layout"
        data = self._read_control(marker)
        if data is None:
            raise InvalidInputError(f"{str(self.root)!r} is not an OCI layout (no oci-layout file)")
        doc = parse_object(data, f"{marker}")
        version = doc.get("imageLayoutVersion")
        if version != LAYOUT_VERSION:
            raise ValidationError(
                f"OCI layout {str(self.root)!r} has imageLayoutVersion {version!r}, "
                f"expected {LAYOUT_VERSION!r}"
            )

    def check_writable(self) -> None:
        """Refuse, before anything is written, a destination that cannot be a layout."""
        if self.root.exists() and not self.root.is_dir():
            raise InvalidInputError(f"OCI layout {str(self.root)!r} exists and is not a directory")
        if self.is_layout():
            self.check_readable()  # check_contents included
        elif self.root.is_dir():
            # Not under the lock: what a writer creating this layout right now may have
            # put there passes; the check that counts runs under the lock (_create).
            self.check_contents()
            strangers = sorted(p.name for p in self.root.iterdir()
                               if not _ours(p.name) and p.name not in _LAYOUT_NAMES)
            if strangers:
                raise InvalidInputError(
                    f"{str(self.root)!r} is a non-empty directory but not an OCI layout "
                    f"(it holds {strangers[0]!r}); refusing to write into it"
                )
        # the nearest folder that exists must let us write (a read-only folder is bad
        # input, exit 2, found before anything is written, not an I/O error halfway);
        # probed with a real file, since root passes os.access on read-only mounts
        check_writable_folder(os.path.abspath(self.root), "OCI layout")

    def init(self) -> None:
        """Create the layout skeleton if needed (idempotent, safe against a racing writer)."""
        self.check_writable()
        while True:
            self._make_root()
            try:
                self._create()
                return
            except NotFoundError:
                continue  # a failed creator removed it meanwhile

    # -- index.json ---------------------------------------------------------

    def read_index(self) -> dict[str, Any]:
        data = self._read_control(self.index_path)
        if data is None:
            return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
        doc = parse_object(data, f"{self.index_path}")
        if not isinstance(doc.get("manifests"), list):
            raise ValidationError(f"{self.index_path} has no manifests array")
        return doc

    def descriptors(self) -> list[Descriptor]:
        doc = self.read_index()
        return [
            Descriptor.from_dict(entry, f"index.json entry {i}")
            for i, entry in enumerate(doc["manifests"])
        ]

    def tags(self) -> list[str]:
        """Every ref name in index.json, in index order."""
        return [
            d.annotations[REF_NAME]
            for d in self.descriptors()
            if d.annotations and REF_NAME in d.annotations
        ]

    def find(self, tag: str | None = None, digest: Digest | str | None = None) -> Descriptor:
        """The index.json descriptor for a tag or digest (or the only one when neither)."""
        return select_descriptor(self.descriptors(), tag, digest, f"OCI layout {str(self.root)!r}",
                                 f"oci:{self.root}:TAG")

    def set_tag(self, desc: Descriptor, tag: str | None,
                needs: Iterable[Descriptor] = ()) -> Descriptor:
        """Point ``tag`` (or the untagged entry) at ``desc`` in index.json, under the lock.

        ``needs``: every blob ``desc`` reaches; each is checked to be here, under
        the lock, right before index.json is rewritten, so a tag never names a
        missing blob.
        """
        annotations = dict(desc.annotations or {})
        if tag is not None:
            annotations[REF_NAME] = check_tag_to_write(tag)
        entry = desc.with_annotations(annotations or None)
        with self._lock():
            self.check_contents()
            for blob in [*needs, desc]:
                if not self.has_blob(blob):
                    raise NotFoundError(
                        f"blob {blob.digest} is missing from OCI layout {str(self.root)!r}; "
                        f"not tagging {tag or desc.digest.short}"
                    )
            doc = self.read_index()
            kept = []
            for old in doc["manifests"]:
                name = old.get("annotations", {}).get(REF_NAME) if isinstance(
                    old.get("annotations"), dict) else None
                if name == tag:
                    continue
                kept.append(old)
            kept.append(entry.to_dict())
            doc["manifests"] = kept
            doc.setdefault("schemaVersion", 2)
            doc.setdefault("mediaType", mt.OCI_INDEX)
            atomic_write_bytes(self.index_path, canonical(doc))
        return entry

    # -- reading ------------------------------------------------------------

    def _open_raw(self, desc: Descriptor) -> IO[bytes]:
        """Open a blob file that really lives in this layout.

        A layout may come from someone else: a blob that is a symlink, a FIFO or a
        device, or a blobs/ folder linked elsewhere, would make us read (and push)
        a file outside the layout, or hang; those are refused as hostile input.
        """
        path = self.blob_path(desc.digest)
        flags = os.O_RDONLY | _NOFOLLOW | _NONBLOCK
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise NotFoundError(
                f"blob {desc.digest} is missing from OCI layout {str(self.root)!r}"
            ) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise HostileInputError(
                    f"blob {desc.digest} in OCI layout {str(self.root)!r} is a symlink; "
                    "links out of a layout are not followed"
                ) from None
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # before fdopen, which refuses folders
                raise HostileInputError(
                    f"blob {desc.digest} in OCI layout {str(self.root)!r} is not a regular file"
                )
        except BaseException:
            os.close(fd)
            raise
        handle = os.fdopen(fd, "rb")
        try:
            real_root = os.path.realpath(self.root)
            if not os.path.realpath(path.parent).startswith(real_root.rstrip(os.sep) + os.sep):
                raise HostileInputError(
                    f"the blobs folder of OCI layout {str(self.root)!r} leads outside it "
                    "(symlink); links out of a layout are not followed"
                )
        except BaseException:
            handle.close()
            raise
        return handle

    def read_document(self, desc: Descriptor, what: str = "document") -> bytes:
        """A manifest, index or config, verified and bounded to 4 MiB."""
        with self._open_raw(desc) as raw:
            return read_all_verified(raw, desc.digest, desc.size, MAX_DOCUMENT, what)

    def open_blob(self, desc: Descriptor) -> VerifyingReader:
        return VerifyingReader(self._open_raw(desc), desc.digest, desc.size, "blob")

    def layer(self, desc: Descriptor) -> Layer:
        """A lazy Layer for a blob in this layout (checked to exist with the right size)."""
        path = self.blob_path(desc.digest)
        with self._open_raw(desc) as handle:  # refuses links, FIFOs, folders linked elsewhere
            size = os.fstat(handle.fileno()).st_size
        if size != desc.size:
            raise SizeMismatchError(
                f"blob {desc.digest} in OCI layout {str(self.root)!r} has {size} bytes, "
                f"expected {desc.size}"
            )
        return Layer(desc, None, lambda: self._open_raw(desc), path)

    def read(self, tag: str | None = None) -> Artifact:
        self.check_readable()
        return self.load(self.find(tag))

    # -- writing ------------------------------------------------------------

    def has_blob(self, desc: Descriptor) -> bool:
        """True when the blob is here, a regular file of the right size (never via a link)."""
        self._check_blob_dirs(desc.digest.algorithm)
        path = self.blob_path(desc.digest)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(info.st_mode):
            self._refuse_link(path, directory=False)
        return info.st_size == desc.size

    def write_blob(self, desc: Descriptor, source: BlobSource,
                   progress: Task | None = None, fresh: Path | None = None) -> bool:
        """Copy a blob in, verifying it on the way; False when it was already there.

        ``fresh`` is a file this process just built and hashed (see fresh_blob):
        it is hardlinked in when the file systems allow, instead of copied.
        """
        if self.has_blob(desc):
            if progress is not None:
                progress.advance(desc.size)
            return False
        target = self.blob_path(desc.digest)
        if fresh is not None and self._link_in(fresh, target):
            if progress is not None:
                progress.advance(desc.size)
            return True
        with contextlib.closing(source()) as raw, atomic_write(target, 0o444) as out:
            reader = VerifyingReader(raw, desc.digest, desc.size, "blob")
            while True:
                chunk = reader.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                if progress is not None:
                    progress.advance(len(chunk))
        return True

    @staticmethod
    def _link_in(fresh: Path, target: Path) -> bool:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{os.getpid()}.{id(fresh)}.tmp"
        try:
            os.link(fresh, tmp)
            os.replace(tmp, target)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return False
        return True

    def write_bytes_blob(self, data: bytes, media_type: str) -> Descriptor:
        desc = Descriptor(media_type, Digest.of_bytes(data), len(data))
        self.write_blob(desc, lambda: io.BytesIO(data))
        return desc

    def write_artifact(self, artifact: Artifact, progress: Task | None = None) -> None:
        """Every blob an artifact reaches, children before parents, each manifest after its
        blobs; a blob or child several manifests name is written once."""
        for manifest in walk.manifests(artifact):
            if isinstance(manifest, Image):
                config, *layers = walk.image_blobs(manifest)
                self.write_blob(config.descriptor, config.opener)
                for layer in layers:
                    self.write_blob(layer.descriptor, layer.opener, progress, fresh_blob(layer))
            self.write_bytes_blob(manifest.manifest_bytes, manifest.media_type)

    def put(self, artifact: Artifact, tag: str | None, progress: Task | None = None
            ) -> Descriptor:
        """Write an artifact and point ``tag`` at it (see ``writing`` for many writers)."""
        if tag is not None:
            check_tag_to_write(tag)
        self.check_writable()
        with self.writing():
            self.write_artifact(artifact, progress)
            return self.set_tag(artifact.descriptor(), tag, walk.descriptors(artifact))

    def put_manifest(
        self,
        manifest_bytes: bytes,
        media_type: str,
        blobs: Iterable[tuple[Descriptor, BlobSource]],
        tag: str | None,
        annotations: dict[str, str] | None = None,
    ) -> Descriptor:
        """Store a raw manifest (e.g. a signature) and its blobs under a tag.

        The manifest bytes are stored as given; ``annotations`` go on the
        index.json descriptor only.
        """
        if tag is not None:
            check_tag_to_write(tag)
        self.check_writable()
        with self.writing():
            needs = []
            for desc, source in blobs:
                self.write_blob(desc, source)
                needs.append(desc)
            desc = self.write_bytes_blob(manifest_bytes, media_type)
            return self.set_tag(desc.with_annotations(annotations), tag, needs)


def fresh_blob(layer: Layer) -> Path | None:
    """The workspace file of a layer this process built (hashed while it was written).

    Such a blob needs no second hash on its way into a sink; anything else does.
    """
    if layer.path is None:
        return None
    from ..layers.workspace import blob_dir

    try:
        if layer.path.parent.resolve() == blob_dir().resolve() and layer.path.is_file():
            return layer.path
    except OSError:
        return None
    return None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
