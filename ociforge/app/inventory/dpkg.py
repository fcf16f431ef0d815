"""Debian packages: ``var/lib/dpkg/status`` (and distroless ``status.d/``), with licenses
from DEP-5 ``usr/share/doc/<package>/copyright`` files, read with python-debian.

A copyright file that is not machine-readable (DEP-5) gives NOASSERTION: its
prose is not read for license names.  A package whose doc folder is a symlink to
another package's (``libfoo1 -> libfoo-common``) gets that folder's copyright.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from .licenses import Licensing
from .model import NOASSERTION, Found, FoundList, License, Link, Record
from .reader import MetadataError, Reader

STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d/"
DOC = "usr/share/doc/"


def is_copyright(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 5 and path.startswith(DOC) and parts[4] == "copyright"


def copyright_path(package: str) -> str:
    return f"{DOC}{package}/copyright"


def _wants(path: str) -> bool:
    if path == STATUS or is_copyright(path):
        return True
    return (path.startswith(STATUS_D) and path.count("/") == 4
            and not path.endswith((".md5sums", ".list", ".conffiles")))


def _is_doc_folder(path: str) -> bool:
    return path.startswith(DOC) and path.count("/") == 3


def _parse(path: str, data: bytes, licensing: Licensing) -> Record | None:
    if is_copyright(path):
        return copyright_license(data, licensing)
    return status(data)


def status(data: bytes) -> FoundList:
    """The installed packages of a dpkg status file (or one status.d entry)."""
    from debian.deb822 import Deb822

    found: list[Found] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    for para in Deb822.iter_paragraphs(text.splitlines(keepends=True)):
        name, version = para.get("Package"), para.get("Version")
        state = para.get("Status", "install ok installed").split()
        if not name or not version or (state and state[-1] not in ("installed",)):
            continue
        qualifiers = [("arch", para.get("Architecture", ""))]
        source = para.get("Source", "")
        if source:
            qualifiers.append(("upstream", source.split()[0]))
        found.append(Found("deb", name.strip(), version.strip(), None,
                           tuple((k, v) for k, v in qualifiers if v)))
    if not found and data.strip():
        raise MetadataError("no installed package in it")
    return FoundList(tuple(found))


def copyright_license(data: bytes, licensing: Licensing) -> License:
    """The license of a DEP-5 copyright file: every Files paragraph's license, all applying."""
    from debian import copyright as dep5

    text = data.decode("utf-8", "replace")
    if not text.lstrip().lower().startswith("format:"):
        return NOASSERTION  # free-form: read by people, not by us
    _quiet(dep5.logger)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = dep5.Copyright(text.splitlines(keepends=True), strict=False)
            texts: dict[str, str] = {}
            for para in parsed.all_license_paragraphs():
                lic: Any = para.license
                if lic is not None and lic.synopsis and lic.text:
                    texts.setdefault(lic.synopsis.strip(), lic.text)
            statements: list[str] = []
            for files in parsed.all_files_paragraphs():
                lic = files.license
                if lic is None or not lic.synopsis:
                    continue
                synopsis = " ".join(lic.synopsis.split())
                if lic.text:
                    texts.setdefault(synopsis, lic.text)
                if synopsis not in statements:
                    statements.append(synopsis)
    except (dep5.Error, ValueError, TypeError, AttributeError, KeyError, IndexError):
        return NOASSERTION
    return licensing.combine([licensing.statement(s, "copyright License", texts)
                              for s in statements])


def _quiet(logger: logging.Logger) -> None:
    """python-debian logs remarks about the files it reads ("Fixing Format URL") with no
    handler of its own, so Python would print them on stderr: give it one that drops
    them (an application that configures the root logger still sees them)."""
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


READERS = (
    Reader("deb", _wants, _parse, basenames=frozenset({"status", "copyright"}),
           prefixes=(STATUS_D,), limit=64 << 20, links=_is_doc_folder),
)


def license_of(package: str, find: dict[str, Record]) -> License:
    """A package's license from the merged view: its copyright file, following a
    symlinked doc folder (one or two hops, inside usr/share/doc)."""
    folder = package
    for _ in range(3):
        record = find.get(copyright_path(folder))
        if isinstance(record, License):
            return record
        link = find.get(DOC + folder)
        if not isinstance(link, Link):
            break
        target = link.target.rstrip("/")
        if target.startswith("/" + DOC):
            target = target[len(DOC) + 1:]
        if "/" in target or target in ("", ".", ".."):
            break
        folder = target
    return NOASSERTION
