"""License statements as SPDX expressions, with license-expression's SPDX license list.

A statement is parsed as an expression (``MIT OR Apache-2.0``, DEP-5's ``GPL-2+ or
Artistic``); each name in it becomes an SPDX id when the SPDX list knows it (any
case, deprecated ids and ``+`` forms included) or when it is a common non-SPDX
name with one meaning (``NAME_ALIASES``: DEP-5 ``GPL-2``, ``BSD-3-clause``,
``Apache 2.0``, ``Expat`` ...); anything else becomes a ``LicenseRef-`` declared
with its text (or, without one, the statement as found).  Nothing is guessed: an
empty or unknown statement is ``NOASSERTION``.

A license is proprietary when its expression cannot be satisfied without a
proprietary term: a term named proprietary, commercial, EULA, ... (``PROPRIETARY``)
is one; ``A AND B`` needs both, ``A OR B`` only one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .model import NOASSERTION, ExtractedLicense, License

# Common names for licenses on the SPDX list, keyed by _norm(name).  Each has exactly one
# reading; ambiguous names ("BSD", "Apache", "GPL" in a Python License field) are not here.
NAME_ALIASES: Mapping[str, str] = MappingProxyType({
    # DEP-5 short names (Debian's copyright-format 1.0) and their R spellings
    "gpl-1": "GPL-1.0-only", "gpl-1+": "GPL-1.0-or-later",
    "gpl-2": "GPL-2.0-only", "gpl-2+": "GPL-2.0-or-later",
    "gpl-3": "GPL-3.0-only", "gpl-3+": "GPL-3.0-or-later",
    "lgpl-2": "LGPL-2.0-only", "lgpl-2+": "LGPL-2.0-or-later",
    "lgpl-2.1": "LGPL-2.1-only", "lgpl-2.1+": "LGPL-2.1-or-later",
    "lgpl-3": "LGPL-3.0-only", "lgpl-3+": "LGPL-3.0-or-later",
    "agpl-3": "AGPL-3.0-only", "agpl-3+": "AGPL-3.0-or-later",
    "gfdl-1.2": "GFDL-1.2-only", "gfdl-1.2+": "GFDL-1.2-or-later",
    "gfdl-1.3": "GFDL-1.3-only", "gfdl-1.3+": "GFDL-1.3-or-later",
    "gfdl-niv-1.2": "GFDL-1.2-no-invariants-only",
    "gfdl-niv-1.2+": "GFDL-1.2-no-invariants-or-later",
    "gfdl-niv-1.3": "GFDL-1.3-no-invariants-only",
    "gfdl-niv-1.3+": "GFDL-1.3-no-invariants-or-later",
    "expat": "MIT", "artistic": "Artistic-1.0-Perl", "artistic-2": "Artistic-2.0",
    "psf-2": "PSF-2.0", "mpl-1.1": "MPL-1.1", "mpl-2": "MPL-2.0", "apache-2": "Apache-2.0",
    "zope-2.1": "ZPL-2.1", "cc0": "CC0-1.0", "zlib/libpng": "Zlib",
    "bsd-2": "BSD-2-Clause", "bsd-3": "BSD-3-Clause", "bsd-4": "BSD-4-Clause",
    # spellings found in Python, R, npm and conda metadata
    "gplv2": "GPL-2.0-only", "gplv2+": "GPL-2.0-or-later", "gplv3": "GPL-3.0-only",
    "gplv3+": "GPL-3.0-or-later", "gpl2": "GPL-2.0-only", "gpl2+": "GPL-2.0-or-later",
    "gpl3": "GPL-3.0-only", "gpl3+": "GPL-3.0-or-later", "lgplv2.1": "LGPL-2.1-only",
    "lgplv2+": "LGPL-2.0-or-later", "lgplv3": "LGPL-3.0-only", "lgplv3+": "LGPL-3.0-or-later",
    "agplv3": "AGPL-3.0-only", "agplv3+": "AGPL-3.0-or-later",
    "mit-license": "MIT", "the-mit-license": "MIT", "mit-license-(mit)": "MIT",
    "apache-2.0-license": "Apache-2.0", "apache-license-2.0": "Apache-2.0",
    "apache-license-version-2.0": "Apache-2.0", "apache-license,-version-2.0": "Apache-2.0",
    "apache-software-license-2.0": "Apache-2.0", "apache-software-license-version-2.0":
    "Apache-2.0", "asl-2.0": "Apache-2.0", "apache-2.0-license-(apache-2.0)": "Apache-2.0",
    "apache-license-(==-2.0)": "Apache-2.0", "apache-license-(>=-2.0)": "Apache-2.0",
    "apache-license-(==2.0)": "Apache-2.0", "apache-license-(>=2.0)": "Apache-2.0",
    "new-bsd": "BSD-3-Clause", "new-bsd-license": "BSD-3-Clause", "bsd-new": "BSD-3-Clause",
    "modified-bsd": "BSD-3-Clause", "3-clause-bsd": "BSD-3-Clause",
    "bsd-3-clause-license": "BSD-3-Clause",
    "3-clause-bsd-license": "BSD-3-Clause", "bsd-license-(3-clause)": "BSD-3-Clause",
    "simplified-bsd": "BSD-2-Clause", "2-clause-bsd": "BSD-2-Clause",
    "bsd-2-clause-license": "BSD-2-Clause",
    "freebsd": "BSD-2-Clause",
    "mozilla-public-license-2.0": "MPL-2.0", "mozilla-public-license-2.0-(mpl-2.0)": "MPL-2.0",
    "isc-license": "ISC", "isc-license-(iscl)": "ISC", "iscl": "ISC",
    "python-software-foundation-license": "PSF-2.0", "psf-license": "PSF-2.0", "psfl": "PSF-2.0",
    "the-unlicense": "Unlicense", "the-unlicense-(unlicense)": "Unlicense",
    "boost-software-license-1.0": "BSL-1.0", "eclipse-public-license-2.0": "EPL-2.0",
    "cc0-1.0-universal": "CC0-1.0", "public-domain-(cc0)": "CC0-1.0",
    "hpnd": "HPND",
})

# Trove classifiers (Python) with one reading.  Version-less ones that name a family
# ("BSD License", "GNU General Public License (GPL)") are not here: NOASSERTION.
CLASSIFIERS: Mapping[str, str] = MappingProxyType({
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: MIT No Attribution License (MIT-0)": "MIT-0",
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: ISC License (ISCL)": "ISC",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "License :: OSI Approved :: The Unlicense (Unlicense)": "Unlicense",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "License :: OSI Approved :: Mozilla Public License 1.1 (MPL 1.1)": "MPL-1.1",
    "License :: OSI Approved :: Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "License :: OSI Approved :: Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "License :: OSI Approved :: Historical Permission Notice and Disclaimer (HPND)": "HPND",
    "License :: OSI Approved :: Zope Public License": "ZPL-2.1",
    "License :: OSI Approved :: zlib/libpng License": "Zlib",
    "License :: OSI Approved :: Artistic License": "Artistic-2.0",
    "License :: OSI Approved :: GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "License :: OSI Approved :: GNU General Public License v2 or later (GPLv2+)":
        "GPL-2.0-or-later",
    "License :: OSI Approved :: GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)":
        "GPL-3.0-or-later",
    "License :: OSI Approved :: GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "License :: OSI Approved :: GNU Lesser General Public License v2 or later (LGPLv2+)":
        "LGPL-2.0-or-later",
    "License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "License :: OSI Approved :: GNU Lesser General Public License v3 or later (LGPLv3+)":
        "LGPL-3.0-or-later",
    "License :: OSI Approved :: GNU Affero General Public License v3": "AGPL-3.0-only",
    "License :: OSI Approved :: GNU Affero General Public License v3 or later (AGPLv3+)":
        "AGPL-3.0-or-later",
    "License :: OSI Approved :: European Union Public Licence 1.2 (EUPL 1.2)": "EUPL-1.2",
    "License :: OSI Approved :: Universal Permissive License (UPL)": "UPL-1.0",
    "License :: CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
    "License :: Other/Proprietary License": "LicenseRef-Proprietary",
})

# Exceptions DEP-5 names in "<license> with <name> exception", keyed by _norm(name).
EXCEPTIONS: Mapping[str, str] = MappingProxyType({
    "bison": "Bison-exception-2.2", "autoconf": "Autoconf-exception-generic",
    "classpath": "Classpath-exception-2.0", "font": "Font-exception-2.0",
    "gcc-runtime-library": "GCC-exception-3.1", "gcc": "GCC-exception-3.1",
    "libtool": "Libtool-exception", "openssl": "openvpn-openssl-exception",
    "ocaml-linking": "OCaml-LGPL-linking-exception", "llvm": "LLVM-exception",
})

# A license term naming one of these is proprietary (not "non-commercial": CC BY-NC is
# restrictive, but it is no license to buy).
PROPRIETARY = re.compile(
    r"(?i)proprietary|(?<!non)(?<!non-)(?<!non )(?<!non_)commercial|\beula\b|"
    r"end[\s_-]*user[\s_-]*licen[cs]e[\s_-]*agreement|\bunlicensed\b|closed[\s_-]*source|"
    r"all[\s_-]+rights[\s_-]+reserved")

MAX_STATEMENT = 200          # longer License fields are texts, not expressions
MAX_TEXT = 64 << 10          # a LicenseRef's declared text is cut here
_IGNORED = frozenset({"", "unknown", "none", "n/a", "na", "other", "undefined", "noassertion"})
_REF_CHARS = re.compile(r"[^A-Za-z0-9.-]+")
_WITH_EXCEPTION = re.compile(r"(?i)^(.+?)\s+with\s+(.+?)\s+exception$")


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def ref_id(name: str, text: str | None = None) -> str:
    """A LicenseRef id for a name; a text other than the name makes it unique."""
    base = _REF_CHARS.sub("-", name).strip("-.")[:60] or "unnamed"
    if text and text.strip() != name.strip():
        base += "-" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:8]
    return "LicenseRef-" + base


@dataclass
class _Term:
    spdx: str                   # an SPDX id, "<id> WITH <exception>", or a LicenseRef id
    proprietary: bool


class Licensing:
    """Turns license statements into License values (one instance per inventory run)."""

    def __init__(self) -> None:
        from license_expression import get_spdx_licensing

        self._licensing = get_spdx_licensing()
        known: dict[str, str] = {}
        exceptions: dict[str, str] = {}
        for key, symbol in self._licensing.known_symbols.items():
            if key.startswith("LicenseRef-"):
                continue
            target = exceptions if symbol.is_exception else known
            target[key.lower()] = key
            for alias in getattr(symbol, "aliases", ()) or ():
                if not alias.startswith("LicenseRef-"):
                    target.setdefault(alias.lower(), key)
        self._known = known
        self._exceptions = exceptions

    # -- public --------------------------------------------------------------------------
    def statement(self, text: str | None, source: str, texts: Mapping[str, str] | None = None
                  ) -> License:
        """A license statement (``MIT``, ``GPL-2+ or Artistic``, ``Apache 2.0``).

        ``source`` says where it was found (for the evidence); ``texts`` maps names to
        license texts (DEP-5 stand-alone License paragraphs) for LicenseRefs.
        """
        shown = " ".join((text or "").split())
        if _norm(shown) in _IGNORED:
            return NOASSERTION
        if len(shown) > MAX_STATEMENT or "\n" in (text or "").strip():
            return self.text(text or "", source)
        refs: list[ExtractedLicense] = []
        parsed = self._parse(shown, texts or {}, refs)
        if parsed is None:
            return self.text(text or "", source, name=shown)
        expression, proprietary = parsed
        evidence = f"{source}: {shown}"
        return License(expression, tuple(refs), (evidence,),
                       (evidence,) if proprietary else ())

    def text(self, text: str, source: str, name: str | None = None) -> License:
        """A whole license text where a name was expected: a LicenseRef with that text."""
        body = text.strip()[:MAX_TEXT]
        title = name or f"license text in {source}"
        ref = ExtractedLicense(ref_id(name or "text", body), title, body)
        evidence = f"{source}: {name}" if name else f"{source}: (a license text)"
        proprietary = name is not None and bool(PROPRIETARY.search(name))
        return License(ref.license_id, (ref,), (evidence,), (evidence,) if proprietary else ())

    def known(self, name: str) -> str | None:
        """The SPDX id of a name, or None."""
        lowered = name.strip().lower()
        return (self._known.get(lowered) or NAME_ALIASES.get(_norm(name))
                or self._known.get(_norm(name)))

    def combine(self, licenses: list[License], operator: str = "AND") -> License:
        """Several licenses that all apply (AND) or of which one may be chosen (OR)."""
        real = [lic for lic in licenses if lic.expression != NOASSERTION.expression]
        if not real:
            return NOASSERTION
        parts: list[str] = []
        for lic in real:
            part = lic.expression if " " not in lic.expression else f"({lic.expression})"
            if part not in parts:
                parts.append(part)
        refs = _unique(ref for lic in real for ref in lic.refs)
        evidence = tuple(dict.fromkeys(e for lic in licenses for e in lic.evidence))
        flagged = [lic for lic in real if lic.proprietary]
        proprietary_all = bool(flagged) and (operator == "AND" or len(flagged) == len(real))
        proprietary = tuple(dict.fromkeys(e for lic in flagged for e in lic.proprietary))
        expression = parts[0] if len(parts) == 1 else f" {operator} ".join(parts)
        return License(expression, refs, evidence, proprietary if proprietary_all else ())

    # -- parsing -------------------------------------------------------------------------
    def _parse(self, shown: str, texts: Mapping[str, str], refs: list[ExtractedLicense]
               ) -> tuple[str, bool] | None:
        from license_expression import ExpressionError

        held: dict[str, str] = {}

        def hold(match: re.Match[str]) -> str:
            key = f"HeldTerm{len(held)}"
            held[key] = match.group(0)
            return key

        # "X with Y exception" is DEP-5's form; the parser wants "X WITH Y".
        prepared = re.sub(r"(?i)[^\s(),]+\s+with\s+[^,()]+?\s+exception", hold, shown)
        prepared = re.sub(r"(?i),\s*(and|or)\s+", r" \1 ", prepared)
        try:
            tree = self._licensing.parse(prepared, validate=False, strict=False)
        except (ExpressionError, ValueError, TypeError):
            return None
        if tree is None:
            return None
        term = self._walk(tree, held, texts, refs)
        return term.spdx, term.proprietary

    def _walk(self, node: Any, held: Mapping[str, str], texts: Mapping[str, str],
              refs: list[ExtractedLicense]) -> _Term:
        from license_expression import LicenseSymbol, LicenseWithExceptionSymbol

        if isinstance(node, LicenseWithExceptionSymbol):
            return self._with(node.license_symbol.key, node.exception_symbol.key, texts, refs)
        if isinstance(node, LicenseSymbol):
            name = node.key
            if name in held:
                match = _WITH_EXCEPTION.match(held[name])
                if match is None:
                    return self._symbol(held[name], texts, refs)
                return self._with(match.group(1), match.group(2), texts, refs,
                                  whole=held[name])
            return self._symbol(name, texts, refs)
        operator = "AND" if type(node).__name__ == "AND" else "OR"
        terms = [self._walk(arg, held, texts, refs) for arg in node.args]
        parts: list[str] = []
        for term in terms:
            part = f"({term.spdx})" if " AND " in term.spdx or " OR " in term.spdx else term.spdx
            if part not in parts:
                parts.append(part)
        flagged = [t.proprietary for t in terms]
        proprietary = any(flagged) if operator == "AND" else all(flagged)
        return _Term(f" {operator} ".join(parts) if len(parts) > 1 else parts[0], proprietary)

    def _symbol(self, name: str, texts: Mapping[str, str], refs: list[ExtractedLicense]
                ) -> _Term:
        if name.startswith("LicenseRef-"):
            clean = "LicenseRef-" + (_REF_CHARS.sub("-", name[11:]).strip("-.") or "unnamed")
            text = texts.get(name) or f"The license {name}, as declared by the package"
            refs.append(ExtractedLicense(clean, name, text[:MAX_TEXT]))
            return _Term(clean, bool(PROPRIETARY.search(name)))
        spdx = self.known(name)
        if spdx is not None:
            return _Term(spdx, spdx.startswith("LicenseRef-") and bool(PROPRIETARY.search(spdx)))
        found_text = texts.get(name) or texts.get(name.lower())
        ref = ExtractedLicense(ref_id(name, found_text), name, (found_text or name)[:MAX_TEXT])
        refs.append(ref)
        return _Term(ref.license_id, bool(PROPRIETARY.search(name)))

    def _with(self, license_name: str, exception: str, texts: Mapping[str, str],
              refs: list[ExtractedLicense], whole: str | None = None) -> _Term:
        spdx = self.known(license_name)
        exception_name = exception if exception.lower().endswith("exception") \
            else f"{exception} exception"
        spdx_exception = (self._exceptions.get(exception.lower())
                          or self._exceptions.get(exception_name.lower().replace(" ", "-"))
                          or EXCEPTIONS.get(_norm(exception.removesuffix(" exception"))))
        if spdx is not None and spdx_exception is not None:
            return _Term(f"{spdx} WITH {spdx_exception}", False)
        name = whole or f"{license_name} with {exception_name}"
        return self._symbol(name, texts, refs)

    # -- classifiers ---------------------------------------------------------------------
    def classifiers(self, classifiers: list[str]) -> License:
        """Trove license classifiers: the ones with one reading, all of them applying."""
        found: list[License] = []
        for classifier in classifiers:
            spdx = CLASSIFIERS.get(classifier.strip())
            if spdx is None:
                continue
            evidence = f"classifier: {classifier.strip()}"
            if spdx.startswith("LicenseRef-"):
                ref = ExtractedLicense(spdx, "Other/Proprietary License",
                                       "Declared with the trove classifier "
                                       "'License :: Other/Proprietary License'")
                found.append(License(spdx, (ref,), (evidence,), (evidence,)))
            else:
                found.append(License(spdx, (), (evidence,)))
        return self.combine(found)


def _unique(refs: Any) -> tuple[ExtractedLicense, ...]:
    out: dict[str, ExtractedLicense] = {}
    for ref in refs:
        out.setdefault(ref.license_id, ref)
    return tuple(out.values())
