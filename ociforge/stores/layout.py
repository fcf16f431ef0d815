"""OCI image layouts (``oci:DIR[:TAG]``): read and write, several tags per layout.

Reading verifies every document (digest, size, 4 MiB bound) and opens layers
lazily through verifying readers.  Writing is idempotent and crash-safe: each
blob goes in under a temporary name and is renamed once its digest checked
out, children before parents, and index.json is rewritten last, atomically and
under an advisory lock, so it never names a blob that is not there and two
processes adding tags to one layout at once both succeed.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import (
    HostileInputError,
    InvalidInputError,
    NotFoundError,
    SelectionError,
    SizeMismatchError,
    ValidationError,
)
from ..fsutil import atomic_write, atomic_write_bytes, holding_lock
from ..model import mediatypes as mt
from ..model.descriptor import Descriptor
from ..model.digest import CHUNK, Digest, VerifyingReader, read_all_verified
from ..model.image import Image
from ..model.index import Artifact, Index, ReferenceBudget
from ..model.jsonutil import MAX_DOCUMENT, canonical, parse_object
from ..model.layer import Layer
from ..options import Options
from ..progress import Progress
from .locations import WriteResult

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
LAYOUT_VERSION = "1.0.0"
LOCK_NAME = ".ociforge.lock"
# artifactstore.ATTACH_LOCK_NAME: the lock signing/attaching takes in a layout
_LOCK_NAMES = (LOCK_NAME, ".ociforge-attach.lock")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
MAX_DEPTH = 8
_TAG_RE = re.compile(r"^[^\s\x00-\x1f\x7f]{1,255}$")
# the distribution spec's tag grammar; attachment tags (sha256-<hex>.sig) match it too
_WRITE_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_ATTACHED_RE = re.compile(r"^sha256-[a-f0-9]{64}(\.[a-z]+)?$")

BlobSource = Callable[[], IO[bytes]]


def _ours(name: str) -> bool:
    """Our lock file, or a temporary file of a writer that is creating this layout."""
    return name == LOCK_NAME or (name.startswith(".") and name.endswith(".tmp"))


def check_ref_name(tag: str) -> str:
    """A ref name read from index.json: printable, no spaces, at most 255 characters.

    Lenient on purpose: layouts other tools wrote may use any ref name the spec allows.
    """
    if not isinstance(tag, str) or not _TAG_RE.match(tag):
        raise InvalidInputError(f"tag {str(tag)[:80]!r} is not a valid reference name")
    return tag


def check_tag_to_write(tag: str) -> str:
    """A tag we write into index.json: the distribution tag grammar.

    ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``, so that every tag we write can also be
    pushed to a registry as it is.
    """
    if not isinstance(tag, str) or not _WRITE_TAG_RE.match(tag):
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
    images = [d for d in descs
              if not _ATTACHED_RE.match((d.annotations or {}).get(REF_NAME, ""))]
    if len(images) == 1:
        return images[0]
    if not descs:
        raise NotFoundError(f"{where} holds no image")
    raise SelectionError(
        f"{where} holds {len(descs)} manifests; name a tag: {hint} "
        f"(tags: {', '.join(tags) or 'none'})"
    )


DocumentReader = Callable[[Descriptor, str], bytes]
LayerMaker = Callable[[Descriptor], Layer]


def load_artifact(
    desc: Descriptor,
    read_document: DocumentReader,
    make_layer: LayerMaker,
    source: str | None = None,
    depth: int = 0,
    budget: ReferenceBudget | None = None,
) -> Artifact:
    """Load the Image or Index a descriptor names from any blob store.

    ``read_document`` returns verified, bounded bytes; ``make_layer`` returns a
    lazy Layer.  Shared by layouts and archives so both check the same things.
    ``budget`` bounds the manifests a nested index may name (index bombs): a
    child named again is read once but counted again, with all it names.
    """
    return _load(desc, read_document, make_layer, source, depth, budget or ReferenceBudget())[0]


def _load(desc: Descriptor, read_document: DocumentReader, make_layer: LayerMaker,
          source: str | None, depth: int, budget: ReferenceBudget) -> tuple[Artifact, int]:
    """(artifact, weight): weight = manifests in its tree, itself included, repeats counted."""
    if depth > MAX_DEPTH:
        raise ValidationError(f"index nesting deeper than {MAX_DEPTH} at {desc.digest}")
    if mt.is_index(desc.media_type):
        data = read_document(desc, "image index")
        doc = parse_object(data, f"image index {desc.digest}")
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise ValidationError(f"image index {desc.digest} has no manifests array")
        children = []
        weight = 1
        for i, entry in enumerate(entries):
            child_desc = Descriptor.from_dict(entry, f"index {desc.digest.short} entry {i}")
            key = (str(child_desc.digest), child_desc.media_type)
            known = budget.loaded.get(key)
            if known is None:  # a repeated child is read once...
                budget.take(1, f"image index {desc.digest}")
                known = _load(child_desc, read_document, make_layer, source, depth + 1, budget)
                budget.loaded[key] = known
            else:  # ...but counted again with everything it names
                budget.take(known[1], f"image index {desc.digest}")
            children.append((child_desc, known[0]))
            weight += known[1]
        return Index(data, tuple(children), source), weight
    if mt.is_image_manifest(desc.media_type):
        manifest_bytes = read_document(desc, "image manifest")
        manifest = parse_object(manifest_bytes, f"image manifest {desc.digest}")
        config_json = manifest.get("config")
        if not isinstance(config_json, dict):
            raise ValidationError(f"image manifest {desc.digest} has no config descriptor")
        if not isinstance(manifest.get("layers"), list):
            raise ValidationError(f"image manifest {desc.digest} has no layers array")
        config_desc = Descriptor.from_dict(config_json, f"config of {desc.digest.short}")
        config_bytes = read_document(config_desc, "image config")
        return Image.from_documents(manifest_bytes, config_bytes, make_layer), 1
    raise ValidationError(
        f"manifest {desc.digest} has unsupported media type {desc.media_type!r}"
    )


class Layout:
    """One OCI image layout directory: blobs by digest plus index.json."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def __str__(self) -> str:
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

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """The layout's advisory lock (see fsutil.file_lock), its file never a link."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK_NAME
        try:
            fd = self._open_control(path, os.O_RDWR | os.O_CREAT, "lock")
        except FileNotFoundError as exc:
            raise InvalidInputError(f"cannot lock {str(path)!r}: {exc.strerror}") from None
        with holding_lock(fd):
            yield

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
            self.check_contents()
            if any(not _ours(p.name) for p in self.root.iterdir()):
                raise InvalidInputError(
                    f"{str(self.root)!r} is a non-empty directory but not an OCI layout; "
                    "refusing to write into it"
                )
        # the nearest folder that exists must let us write (a read-only folder is bad
        # input, exit 2, found before anything is written, not an I/O error halfway)
        probe = Path(os.path.abspath(self.root))
        while not os.path.lexists(probe) and probe.parent != probe:
            probe = probe.parent
        if probe.is_dir() and not os.access(probe, os.W_OK | os.X_OK):
            raise InvalidInputError(
                f"cannot write OCI layout {str(self.root)!r}: {str(probe)!r} is not writable"
            )

    def init(self) -> None:
        """Create the layout skeleton if needed (idempotent, safe against a racing writer)."""
        self.check_writable()
        if self.is_layout() and (self.root / "blobs" / "sha256").is_dir():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            self.check_writable()
            if not self.is_layout():
                atomic_write_bytes(
                    self.root / "oci-layout", canonical({"imageLayoutVersion": LAYOUT_VERSION})
                )
            (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

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

    def set_tag(self, desc: Descriptor, tag: str | None) -> Descriptor:
        """Point ``tag`` (or the untagged entry) at ``desc`` in index.json, under the lock.

        Only call this after every blob ``desc`` reaches is in the layout.
        """
        annotations = dict(desc.annotations or {})
        if tag is not None:
            annotations[REF_NAME] = check_tag_to_write(tag)
        entry = desc.with_annotations(annotations or None)
        with self._lock():
            self.check_contents()
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

    def load(self, desc: Descriptor) -> Artifact:
        """The Image or Index a descriptor names, with every document verified."""
        return load_artifact(desc, self.read_document, self.layer, str(self.root))

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
                   progress: Progress | None = None, fresh: Path | None = None) -> bool:
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

    def write_artifact(self, artifact: Artifact, progress: Progress | None = None,
                       done: set[Digest] | None = None) -> None:
        """Every blob an artifact reaches, children before parents, manifest last; a child
        several indexes name is written once."""
        done = set() if done is None else done
        if isinstance(artifact, Index):
            for _, child in artifact.children:
                if child.digest not in done:
                    self.write_artifact(child, progress, done)
                    done.add(child.digest)
            self.write_bytes_blob(artifact.index_bytes, artifact.media_type)
            return
        config = artifact.config_bytes
        self.write_blob(artifact.config_descriptor, lambda: io.BytesIO(config))
        for layer in artifact.layers:
            self.write_blob(layer.descriptor, layer.opener, progress, fresh_blob(layer))
        self.write_bytes_blob(artifact.manifest_bytes, artifact.media_type)

    def put(self, artifact: Artifact, tag: str | None, progress: Progress | None = None
            ) -> Descriptor:
        """Write an artifact and point ``tag`` at it."""
        self.init()
        self.write_artifact(artifact, progress)
        return self.set_tag(artifact.descriptor(), tag)

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
        self.init()
        for desc, source in blobs:
            self.write_blob(desc, source)
        desc = self.write_bytes_blob(manifest_bytes, media_type)
        return self.set_tag(desc.with_annotations(annotations), tag)


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


def _all_layers(artifact: Artifact) -> list[Layer]:
    if isinstance(artifact, Index):
        return [layer for _, image in artifact.images() for layer in image.layers]
    return list(artifact.layers)


class LayoutLocation:
    """The ``oci:DIR[:TAG]`` location."""

    def __init__(self, path: str | os.PathLike[str], tag: str | None = None):
        self.path = os.path.expanduser(str(path))
        self.tag = tag
        self.layout = Layout(self.path)

    def __str__(self) -> str:
        return f"oci:{self.path}:{self.tag}" if self.tag else f"oci:{self.path}"

    def check_destination(self) -> None:
        if self.tag is not None:
            check_tag_to_write(self.tag)
        self.layout.check_writable()

    def with_default_name(self, name: str | None) -> LayoutLocation:
        """``--tag NAME:TAG`` tags a layout given without a tag of its own."""
        if self.tag is not None or not name:
            return self
        from ..model.reference import Reference

        return LayoutLocation(self.path, Reference.parse(name).tag)

    def read(self, options: Options) -> Artifact:
        return self.layout.read(self.tag)

    def write(self, artifact: Artifact, options: Options) -> WriteResult:
        self.check_destination()
        total = sum(layer.size for layer in _all_layers(artifact))
        with _removed_on_failure(self.layout.root), \
                Progress(f"writing {self}", total, options.progress) as progress:
            self.layout.put(artifact, self.tag, progress)
        return WriteResult(str(artifact.digest), str(self), artifact.media_type)


@contextlib.contextmanager
def _removed_on_failure(root: Path) -> Iterator[None]:
    """A write that fails leaves no folder it created: a new layout is removed again.

    Only folders this write created go (the layout and any parents it made), and
    only while no index.json names anything in them: a layout another writer has
    committed a tag to in the meantime is theirs too and stays.
    """
    created = []
    probe = Path(os.path.abspath(root))
    while not os.path.lexists(probe):
        created.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    try:
        yield
    except BaseException:
        if created and not (created[0] / "index.json").exists():
            shutil.rmtree(created[0], ignore_errors=True)
            for parent in created[1:]:
                with contextlib.suppress(OSError):
                    parent.rmdir()  # only when empty
        raise
