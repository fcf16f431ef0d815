"""Several platforms: a two-platform export of the benchmark application against a
one-platform export of it.

The application is the export group's (its environment layer and code layer,
hard-linked, so the same files and the same warm page cache) plus a small
folder per architecture (``src = "runtime/{arch}"``, 40 small files each); its
base is an index of two platforms that share one layer (the export group's base
tree).  So only the small per-platform layer differs between the two images:
everything else must be built, scanned, inventoried and written once.  Each
round exports with an empty cache to a fresh OCI layout; the two-platform
export must give one index with two images whose shared layers are one blob,
the same index every round.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from .cachecases import ExportBench, app_toml
from .measure import Sample
from .trees import TreeSpec, make_tree

if TYPE_CHECKING:
    from .cases import Group, Suite

TAG = "bench"
TWO = "linux/amd64,linux/arm64"


class PlatformsBench:
    def __init__(self, suite: Suite):
        self.suite = suite
        self.root = suite.s.work / "trees" / "benchapp-platforms"
        self.app = self.root / "app"
        self.cache = suite.s.work / "cache-platforms"
        self.digests: dict[str, set[str]] = {"one": set(), "two": set()}

    def prepare(self) -> int:
        """The app and its two-platform base; returns the environment's bytes."""
        s = self.suite.s
        single = ExportBench(self.suite)
        single.prepare()  # the export group's trees (reused when already made)
        self.app.mkdir(parents=True, exist_ok=True)
        for name in ("env", "code"):
            if not (self.app / name).exists():
                subprocess.run(["cp", "-al", str(single.app / name), str(self.app / name)],
                               check=True)
        for i, arch in enumerate(("amd64", "arm64")):
            make_tree(self.app / "runtime" / arch, TreeSpec("small", 40, 0, s.seed + 310 + i))
        (self.app / "ociforge.toml").write_text(app_toml(
            "base-multi", None, '[[layers]]\nsrc = "runtime/{arch}"\ndest = "/opt/runtime"\n'))
        base = self.root / "base-multi"
        if not (base / "index.json").exists():
            self.suite.quiet(self.suite.ociforge(
                "append", "scratch", "--layer", f"{single.root / 'base-tree'}:/usr/lib/base",
                "-o", f"oci:{base}:1", "--platform", TWO, "--no-cache"), cwd=s.work)
        if single.env is None:
            return 0
        self.suite.warm(single.env)
        return single.env.bytes

    def export(self, kind: str, platforms: str, i: int) -> Sample:
        shutil.rmtree(self.cache, ignore_errors=True)
        dest = self.suite.fresh(f"platforms-{kind}-{i}")
        env = dict(self.suite.env, OCIFORGE_CACHE_DIR=str(self.cache))
        try:
            sample = self.suite.measure(self.suite.ociforge(
                "export", str(self.app), "--platform", platforms, "-o", f"oci:{dest}:{TAG}"),
                cwd=self.suite.s.work, env=env)
            sample.extra.update(self._check(dest, kind))
        finally:
            shutil.rmtree(dest, ignore_errors=True)
        sample.stderr = ""
        if sample.extra.get("problem"):
            sample.ok, sample.error = False, str(sample.extra["problem"])
        return sample

    def _check(self, layout: Path, kind: str) -> dict[str, object]:
        """The written index (or image): the digest, and for two platforms one blob for
        every layer the images share."""
        index = json.loads((layout / "index.json").read_text())
        top = index["manifests"][0]
        self.digests[kind].add(top["digest"])
        found: dict[str, object] = {"digest": top["digest"]}
        if len(self.digests[kind]) > 1:
            found["problem"] = f"{kind}: digests differ between rounds"
        if kind == "two":
            doc = _blob(layout, top["digest"])
            manifests = [_blob(layout, m["digest"]) for m in doc.get("manifests", [])]
            layers = [[layer["digest"] for layer in m["layers"]] for m in manifests]
            if len(layers) != 2 or layers[0][:-1] != layers[1][:-1] or \
                    layers[0][-1] == layers[1][-1]:
                found["problem"] = f"expected two images differing in the last layer: {layers}"
        return found


def _blob(layout: Path, digest: str) -> dict[str, object]:
    algorithm, hex_digest = digest.split(":")
    return json.loads((layout / "blobs" / algorithm / hex_digest).read_text())


def platforms_group(suite: Suite) -> Group:
    from .cases import Case, Group

    bench = PlatformsBench(suite)

    def prepare() -> None:
        size = bench.prepare()
        for case in cases:
            case.input_bytes = size

    def finish() -> None:
        shutil.rmtree(bench.cache, ignore_errors=True)

    cases = [
        Case("export-one-platform", "export, one platform (empty cache) -> OCI layout",
             "ociforge", lambda i: bench.export("one", "linux/amd64", i)),
        Case("export-two-platforms", "export, two platforms sharing all but a small layer "
             "(empty cache) -> OCI layout", "ociforge", lambda i: bench.export("two", TWO, i)),
    ]
    return Group("platforms", "Export for two platforms against one (issue 12)", cases,
                 suite.s.runs, prepare, finish)
