"""The cache's measurements: re-exports, the no-op re-push, pulls.

* **export**: the benchmark application (a small base layout, a Python-like
  environment layer of many files, an application layer) exported first
  with an empty cache, then unchanged to the same layout and to a new
  tarball, then after one file of the environment changed (only that layer
  may be built again), and for reference with ``--no-cache``.  Every export
  must give the same image digest (the changed one aside).
* **pull**: a registry image into a fresh OCI layout, ociforge (with an empty
  cache each round) against ``skopeo copy``.

The no-op re-push itself is the registry group's re-push case (its first push
leaves the cache that the re-push consults).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from . import layouts
from .measure import CommandFailed, Sample
from .registry import Registry
from .trees import Tree, TreeSpec, make_tree

if TYPE_CHECKING:
    from .cases import Group, Suite

TAG = "bench"


def app_toml(base: str = "base-image", platform: str | None = "linux/amd64",
             layers: str = "") -> str:
    """The benchmark application's ociforge.toml on oci:../BASE:1; ``layers`` adds
    [[layers]] tables; no ``platform``: the export decides (every platform of the base)."""
    platform_line = f'platform = "{platform}"\n' if platform else ""
    return (
        f'[app]\nname = "bench/app"\nbase = "oci:../{base}:1"\n{platform_line}'
        '[config]\ncmd = ["/opt/venv/bin/python", "/app/main.py"]\n'
        '[config.env]\nPATH = "/opt/venv/bin:/usr/bin:/bin"\n'
        '[[layers]]\nsrc = "env"\ndest = "/opt/venv"\n'
        '[[layers]]\nsrc = "code"\ndest = "/app"\n' + layers)


class ExportBench:
    """The benchmark application and its export cases (state shared across rounds)."""

    def __init__(self, suite: Suite):
        self.suite = suite
        self.root = suite.s.work / "trees" / "benchapp"
        self.app = self.root / "app"
        self.cache = suite.s.work / "cache-export"
        self.out = suite.out / "export-layout"
        self.env: Tree | None = None
        self.first_digest = ""
        self.changed: Path | None = None

    def prepare(self) -> None:
        s = self.suite.s
        self.app.mkdir(parents=True, exist_ok=True)
        self.env = make_tree(self.app / "env", TreeSpec("mixed", s.app_files, s.app_bytes,
                                                        s.seed + 300))
        make_tree(self.app / "code", TreeSpec("small", 300, 0, s.seed + 301))
        base_tree = make_tree(self.root / "base-tree", TreeSpec("mixed", 40, s.app_bytes // 40,
                                                               s.seed + 302))
        (self.app / "ociforge.toml").write_text(app_toml())
        base = self.app.parent / "base-image"
        if not (base / "index.json").exists():
            self.suite.quiet(self.suite.ociforge(
                "append", "scratch", "--layer", f"{base_tree.path}:/usr/lib/base",
                "-o", f"oci:{base}:1", "--platform", "linux/amd64", "--no-cache"),
                cwd=s.work)
        self.suite.warm(self.env)
        self.changed = sorted(self.env.path.rglob("*.txt"))[0]

    def _export(self, dest: str, *extra: str) -> Sample:
        env = dict(self.suite.env, OCIFORGE_CACHE_DIR=str(self.cache))
        sample = self.suite.measure(self.suite.ociforge("-v", "export", str(self.app), "-o",
                                                        dest, *extra),
                                    cwd=self.suite.s.work, env=env)
        last = [line for line in sample.stderr.splitlines() if line.startswith("  image")]
        sample.extra["digest"] = last[-1].split()[-1] if last else ""
        sample.extra["reused"] = sum("reused" in line for line in sample.stderr.splitlines())
        sample.stderr = ""
        return sample

    def _check_same(self, sample: Sample) -> Sample:
        if self.first_digest and sample.extra["digest"] != self.first_digest:
            sample.ok = False
            sample.error = f"digest {sample.extra['digest']} != first {self.first_digest}"
        return sample

    def first(self, _i: int) -> Sample:
        shutil.rmtree(self.cache, ignore_errors=True)
        shutil.rmtree(self.out, ignore_errors=True)
        sample = self._export(f"oci:{self.out}:{TAG}")
        self.first_digest = str(sample.extra["digest"])
        return sample

    def same_layout(self, _i: int) -> Sample:
        return self._check_same(self._export(f"oci:{self.out}:{TAG}"))

    def new_tarball(self, i: int) -> Sample:
        tarball = self.suite.out / f"export-{i}.tar"
        try:
            return self._check_same(self._export(str(tarball)))
        finally:
            tarball.unlink(missing_ok=True)

    def one_changed(self, _i: int) -> Sample:
        assert self.changed is not None
        data = self.changed.read_bytes()
        self.changed.write_bytes(data + b"changed\n")
        try:
            sample = self._export(f"oci:{self.out}:{TAG}")
        finally:
            self.changed.write_bytes(data)
        # base scan and the application layer reused; the environment layer built again
        if sample.extra["reused"] != 2 or sample.extra["digest"] == self.first_digest:
            sample.ok = False
            sample.error = (f"expected only the environment layer built again (reused "
                            f"{sample.extra['reused']}, digest {sample.extra['digest']})")
        return sample

    def no_cache(self, i: int) -> Sample:
        dest = self.suite.fresh(f"export-nocache-{i}")
        try:
            return self._check_same(self._export(f"oci:{dest}:{TAG}", "--no-cache"))
        finally:
            shutil.rmtree(dest, ignore_errors=True)


def export_group(suite: Suite) -> Group:
    from .cases import Case, Group

    bench = ExportBench(suite)

    def prepare() -> None:
        bench.prepare()
        size = bench.env.bytes if bench.env is not None else 0
        for case in cases:
            case.input_bytes = size

    cases = [
        Case("export-first", "export, first (empty cache) -> OCI layout", "ociforge",
             bench.first),
        Case("export-same-layout", "export again, unchanged -> the same layout", "ociforge",
             bench.same_layout),
        Case("export-new-tarball", "export again, unchanged -> a new tarball", "ociforge",
             bench.new_tarball),
        Case("export-one-changed", "export after one file of the environment changed",
             "ociforge", bench.one_changed),
        Case("export-no-cache", "export with --no-cache (reference)", "ociforge",
             bench.no_cache),
    ]
    return Group("export", "Re-export of the benchmark application (the cache)", cases,
                 suite.s.runs, prepare)


def pull_group(suite: Suite) -> Group:
    from .cases import Case, Group

    state: dict[str, object] = {}

    def prepare() -> None:
        image = suite._push_image()
        reg = Registry(suite.s.work / "registry-pull").start()
        state["registry"] = reg
        suite.quiet(suite.ociforge("copy", f"oci:{image}:{TAG}", f"{reg.host}/pull/img:{TAG}",
                                   "--insecure", reg.host, "--no-cache"), cwd=suite.s.work)
        state["digest"] = layouts.manifest_descriptor(image, TAG)["digest"]
        size = layouts.total_blob_bytes(image, TAG)
        for case in cases:
            case.input_bytes = size

    def finish() -> None:
        reg = state.pop("registry", None)
        if isinstance(reg, Registry):
            reg.__exit__(None, None, None)

    def registry() -> Registry:
        reg = state.get("registry")
        if not isinstance(reg, Registry):
            raise CommandFailed("no registry")
        return reg

    def check(dest: Path) -> dict[str, object]:
        got = layouts.manifest_descriptor(dest, TAG)["digest"]
        return {"digest_match": got == state["digest"]}

    def skopeo(i: int) -> Sample:
        dest = suite.fresh(f"skopeo-pull-{i}")
        try:
            sample = suite.measure(["skopeo", "copy", "--insecure-policy",
                                    "--src-tls-verify=false",
                                    f"docker://{registry().host}/pull/img:{TAG}",
                                    f"oci:{dest}:{TAG}"])
            sample.extra.update(check(dest))
            return sample
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    def ociforge(i: int) -> Sample:
        dest = suite.fresh(f"ociforge-pull-{i}")
        cache = suite.fresh(f"ociforge-pull-cache-{i}")
        env = dict(suite.env, OCIFORGE_CACHE_DIR=str(cache))
        try:
            sample = suite.measure(suite.ociforge(
                "copy", f"{registry().host}/pull/img:{TAG}", f"oci:{dest}:{TAG}",
                "--insecure", registry().host), cwd=suite.s.work, env=env)
            sample.extra.update(check(dest))
            if not sample.extra["digest_match"]:
                sample.ok, sample.error = False, "pulled digest differs"
            return sample
        finally:
            shutil.rmtree(dest, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)

    cases = [
        Case("skopeo-pull", "skopeo copy registry -> oci:", "skopeo", skopeo, needs=("skopeo",)),
        Case("ociforge-pull", "ociforge copy registry -> oci: (empty cache)", "ociforge",
             ociforge),
    ]
    return Group("pull", "Pull the mixed-tree image from a loopback registry", cases,
                 suite.s.runs, prepare, finish)
