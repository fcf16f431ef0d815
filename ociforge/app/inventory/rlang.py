"""R packages: the ``DESCRIPTION`` of an installed package (its folder is named after
it and R wrote a ``Built:`` field when it installed it), in any library folder."""

from __future__ import annotations

import re

from .licenses import Licensing
from .model import NOASSERTION, Found, License, Record
from .reader import Reader

# R's license syntax (Writing R Extensions 1.1.2): "GPL (>= 2)", "GPL-2 | GPL-3",
# "MIT + file LICENSE", "file LICENSE", "Part of R 4.3.1".
_AT_LEAST = re.compile(r"\b([A-Za-z][A-Za-z ]*?)\s*\(\s*>=\s*([0-9.]+)\s*\)")
_EXACTLY = re.compile(r"\b([A-Za-z][A-Za-z ]*?)\s*\(\s*==\s*([0-9.]+)\s*\)")
_FILE = re.compile(r"\s*\+\s*file\s+LICEN[CS]E\b", re.IGNORECASE)


def _wants(path: str) -> bool:
    return path.endswith("/DESCRIPTION") and path.count("/") >= 1


def r_statement(text: str | None, licensing: Licensing, source: str) -> License:
    if not text:
        return NOASSERTION
    text = " ".join(text.split())
    if text.lower().startswith("part of r"):
        # R's base and recommended packages: R is "GPL-2 | GPL-3" (R's COPYING)
        text = "GPL-2.0-only | GPL-3.0-only"
    if re.fullmatch(r"(?i)file\s+LICEN[CS]E", text):
        return NOASSERTION  # the terms are in a file of the package, whatever they are
    text = _FILE.sub("", text)  # "MIT + file LICENSE": the file names the holder
    text = _AT_LEAST.sub(lambda m: f"{m.group(1).strip()}-{m.group(2)}+", text)
    text = _EXACTLY.sub(lambda m: f"{m.group(1).strip()}-{m.group(2)}", text)
    text = re.sub(r"\s*\|\s*", " OR ", text)
    return licensing.statement(text, source)


def _parse(path: str, data: bytes, licensing: Licensing) -> Record | None:
    from debian.deb822 import Deb822

    text = data.decode("utf-8", "replace")
    para = Deb822(text.splitlines(keepends=True))
    name, version = para.get("Package"), para.get("Version")
    folder = path.split("/")[-2]
    if not name or not version or name.strip() != folder or "Built" not in para:
        return None  # a source package or some other DESCRIPTION: not an installed one
    return Found("r", name.strip(), version.strip(),
                 r_statement(para.get("License"), licensing, "License"))


READERS = (
    Reader("r", _wants, _parse, basenames=frozenset({"DESCRIPTION"}), limit=1 << 20,
           whole=False),
)
