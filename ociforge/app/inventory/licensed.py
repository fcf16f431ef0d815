"""Licensed software: what makes an exported application need a license to run.

Two kinds of evidence (bring your own license):

- a package whose license says proprietary or commercial (the classifier
  ``License :: Other/Proprietary License``, a License of ``Proprietary``,
  ``Commercial``, ``EULA``, npm's ``UNLICENSED``, a ``LicenseRef-`` naming them);
- a known license-managed product (``PRODUCTS``, named data): its packages in
  any ecosystem, or an installation found by its files.  Clients that only
  drive a licensed product (saspy, docplex, pystata, amplpy) count too: the
  application needs the product's license to run.

``[licenses] allow = ["name", "glob*"]`` accepts packages by name (any case;
Python names compared in their normalised form).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .model import Inventory, Package


@dataclass(frozen=True)
class Marker:
    """An installation recognised by one of its files: ``regex`` on the path (relative,
    no leading slash); its ``version`` group, when present, is the version."""

    basenames: tuple[str, ...]      # the file names to test (exact, or a prefix with '*')
    regex: str


@dataclass(frozen=True)
class Product:
    name: str
    vendor: str
    packages: tuple[tuple[str, str], ...] = ()    # (ecosystem, name or glob)
    markers: tuple[Marker, ...] = ()
    note: str = ""


PRODUCTS: tuple[Product, ...] = (
    Product("Gurobi Optimizer", "Gurobi Optimization",
            (("python", "gurobipy"), ("conda", "gurobi"), ("r", "gurobi")),
            (Marker(("gurobi_cl",), r"gurobi(?P<version>\d+)?[^/]*/linux\w*/bin/gurobi_cl$"),)),
    Product("MATLAB Engine API for Python", "MathWorks",
            (("python", "matlabengine"), ("python", "matlabengineforpython"))),
    Product("MATLAB", "MathWorks", (),
            (Marker(("MATLAB",), r"(?:^|/)(?P<version>R20\d\d[ab])?[^/]*/?bin/glnxa64/MATLAB$"),)),
    Product("MATLAB Runtime", "MathWorks", (("python", "matlabruntimeforpython"),),
            (Marker(("libmwmclmcrrt.so*",),
                    r"(?:(?P<version>R20\d\d[ab]|v\d{2,3})/)?runtime/glnxa64/libmwmclmcrrt\.so"),),
            note="its license lets compiled MATLAB applications ship it; accept it with "
                 "[licenses] allow after checking"),
    Product("IBM ILOG CPLEX Optimization Studio", "IBM",
            (("python", "cplex"), ("python", "docplex"), ("conda", "cplex"),
             ("conda", "docplex")),
            (Marker(("cplex",), r"CPLEX_Studio(?P<version>\d+)?[^/]*/cplex/bin/[^/]+/cplex$"),)),
    Product("MOSEK", "MOSEK ApS", (("python", "mosek"), ("conda", "mosek"), ("r", "Rmosek")),
            (Marker(("mosek",), r"mosek/(?P<version>[\d.]+)/tools/platform/[^/]+/bin/mosek$"),)),
    Product("FICO Xpress", "FICO", (("python", "xpress"), ("conda", "xpress")),
            (Marker(("optimizer",), r"xpressmp/bin/optimizer$"),)),
    Product("Artelys Knitro", "Artelys", (("python", "knitro"),),
            (Marker(("libknitro*",), r"knitro-(?P<version>[\d.]+)[^/]*/lib/libknitro[^/]*\.so"),)),
    Product("Stata", "StataCorp", (("python", "pystata"), ("python", "stata-setup")),
            (Marker(("stata-mp", "stata-se", "stata-be", "xstata-mp", "xstata-se", "xstata"),
                    r"(?:^|/)stata(?P<version>\d+)?[^/]*/x?stata(?:-mp|-se|-be)?$"),)),
    Product("SAS", "SAS Institute", (("python", "saspy"), ("python", "swat")),
            (Marker(("sas",), r"SASFoundation/(?P<version>[\d.]+)/sas$"),)),
    Product("Hexaly (LocalSolver)", "Hexaly", (("python", "hexaly"), ("python", "localsolver"))),
    Product("COPT (Cardinal Optimizer)", "Cardinal Operations", (("python", "coptpy"),)),
    Product("AMPL", "AMPL Optimization", (("python", "amplpy"), ("python", "ampl-module-*"))),
    Product("NAG Library", "NAG", (("python", "naginterfaces"),)),
    Product("kdb+ (PyKX)", "KX", (("python", "pykx"),)),
    Product("Wolfram Engine", "Wolfram Research", (("python", "wolframclient"),),
            (Marker(("WolframKernel",), r"(?:Wolfram\w*|Mathematica)/(?P<version>[\d.]+)/"
                                        r"(?:.*/)?WolframKernel$"),)),
)


def normal_name(ecosystem: str, name: str) -> str:
    """A name as packages are compared: Python's normal form, else lower case."""
    lowered = name.lower()
    return re.sub(r"[-_.]+", "-", lowered) if ecosystem in ("python", "binary") else lowered


def product_of(package: Package) -> Product | None:
    if package.ecosystem == "binary":
        return next((p for p in PRODUCTS if p.name == package.name), None)
    name = normal_name(package.ecosystem, package.name)
    for product in PRODUCTS:
        for ecosystem, pattern in product.packages:
            if ecosystem == package.ecosystem and fnmatch.fnmatchcase(
                    name, normal_name(ecosystem, pattern)):
                return product
    return None


@dataclass(frozen=True)
class LicensedComponent:
    package: Package
    evidence: tuple[str, ...]
    allowed: bool               # accepted by [licenses] allow
    hidden: bool = False        # deleted by an upper layer, its files still in a lower blob

    def to_dict(self) -> dict[str, object]:
        p = self.package
        return {"name": p.name, "version": p.version, "ecosystem": p.ecosystem,
                "license": p.license.expression, "path": p.path,
                "layer": p.layer.index, "layer_digest": p.layer.digest,
                "evidence": list(self.evidence), "allowed": self.allowed,
                "hidden": self.hidden}

    def describe(self) -> str:
        """One clause for an error line: name, version, layer, evidence."""
        p = self.package
        layer = f"layer {p.layer.index + 1} ({p.layer.label + ', ' if p.layer.label else ''}" \
                f"{p.layer.digest[:19]})"
        return f"{p.name} {p.version} ({p.ecosystem}, {p.path} in {layer}: " \
               f"{'; '.join(self.evidence)})"


def find_licensed(inventory: Inventory, allow: Sequence[str] = ()) -> list[LicensedComponent]:
    """Every package that makes the application licensed, allowed ones marked."""
    out: list[LicensedComponent] = []
    hidden = {id(p) for p in inventory.hidden}
    for package in (*inventory.packages, *inventory.hidden):
        evidence: list[str] = list(package.license.proprietary)
        product = product_of(package)
        if product is not None:
            text = f"{product.name} ({product.vendor}) is license-managed software"
            if package.ecosystem == "binary":
                text += f": {'; '.join(package.evidence)}" if package.evidence else ""
            evidence.insert(0, text)
        if evidence and id(package) in hidden:
            evidence.append(f"an upper layer deletes it, but its files are still in layer "
                            f"{package.layer.index + 1}'s blob, which ships")
        if evidence:
            out.append(LicensedComponent(package, tuple(dict.fromkeys(evidence)),
                                         is_allowed(package, allow), id(package) in hidden))
    return out


def is_allowed(package: Package, allow: Sequence[str]) -> bool:
    name = normal_name(package.ecosystem, package.name)
    return any(fnmatch.fnmatchcase(name, normal_name(package.ecosystem, entry))
               for entry in allow)


def unused_allowances(components: Sequence[LicensedComponent], allow: Sequence[str]
                      ) -> list[str]:
    """[licenses] allow entries that matched no licensed package (typos, stale entries)."""
    return [entry for entry in allow
            if not any(is_allowed(c.package, [entry]) for c in components)]
