"""Exporting what is installed (issue 14): a root filesystem's delta against its base.

The base is a seeded *rootfs* tree (full size: 100,000 files, 2 GiB) under
/usr/lib/bench, made into a gzip layer by GNU tar (numeric owners, the files'
own mtimes, as image builders keep them) and added with ``ociforge append
scratch --layer``.  The root filesystem is that layer unpacked with ``tar
-xzpf`` (as a runtime unpacks an image), then changed as a user would: 50
files edited, 10 chmod-ed, 50 deleted and one folder of 100 removed, a
package of 200 files installed under /usr/local.  Every case starts from a
warm page cache.

* ``tar-read-rootfs``: ``tar -cf - . | cat > /dev/null`` in the root filesystem:
  the time to read it (GNU tar skips reading file data when its output is
  /dev/null itself, hence the pipe through cat).
* ``rootfs-export-first``: ``ociforge export --rootfs`` with an empty cache
  (the base is scanned, indexed and inventoried, all on one read of its layer).
* ``rootfs-export-again``: the same export with the cache the first one left
  (the base's scan, index and inventory kept: no base layer is read).

Both exports write into the base's own OCI layout under a new tag, as a push
to the registry holding the base would (its layer is not copied again).  A
case fails unless the report counts exactly the changes made and every round
gives the same digest.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from .measure import CommandFailed, Sample
from .trees import Tree, TreeSpec, make_tree

if TYPE_CHECKING:
    from .cases import Group, Suite

NEW_PACKAGE = "usr/local/lib/python3.11/dist-packages/benchpkg"
NEW_FOLDERS = 5         # usr/local, usr/local/lib, .../python3.11, dist-packages, benchpkg


class RootfsBench:
    def __init__(self, suite: Suite):
        self.suite = suite
        self.root = suite.s.work / "trees" / "rootfs"
        self.image = self.root / "image"
        self.live = suite.s.work / "out" / "rootfs-live"
        self.app = self.root / "app"
        self.cache = suite.s.work / "cache-rootfs"
        self.tree: Tree | None = None
        self.expected: dict[str, object] = {}
        self.digest = ""

    def prepare(self) -> None:
        s = self.suite.s
        base = self.root / "base"
        self.tree = make_tree(base / "usr" / "lib" / "bench",
                              TreeSpec("rootfs", s.rootfs_files, s.rootfs_bytes, s.seed + 400))
        layer = self.root / "base-layer.tar.gz"
        squeeze = "pigz" if shutil.which("pigz") else "gzip"
        if not layer.exists():
            partial = layer.with_suffix(".partial")
            self.suite.quiet(f"tar --sort=name --numeric-owner --exclude='*.benchtree.json' "
                             f"-I {squeeze} -cf {partial} -C {base} usr")
            partial.rename(layer)
        if not (self.image / "index.json").exists():
            self.suite.quiet(self.suite.ociforge("append", "scratch", "--layer", str(layer),
                                                 "-o", f"oci:{self.image}:1", "--no-cache"),
                             cwd=s.work)
        shutil.rmtree(self.live, ignore_errors=True)
        self.live.mkdir(parents=True)
        self.suite.quiet(f"tar -xpf {layer} -I {squeeze} -C {self.live}")
        self.expected = change(self.live, s.seed + 401)
        self.app.mkdir(parents=True, exist_ok=True)
        (self.app / "ociforge.toml").write_text(
            f'[app]\nname = "bench/live"\nbase = "oci:{self.image}:1"\n'
            f'platform = "linux/amd64"\nrootfs = "{self.live}"\n')
        self.suite.warm(Tree(self.live, self.tree.spec, self.tree.bytes, self.tree.files))

    def read(self, _i: int) -> Sample:
        return self.suite.measure("tar -cf - . | cat > /dev/null", cwd=self.live)

    def _export(self, i: int, label: str) -> Sample:
        report = self.suite.s.work / "out" / f"rootfs-report-{label}-{i}.json"
        env = dict(self.suite.env, OCIFORGE_CACHE_DIR=str(self.cache))
        try:
            sample = self.suite.measure(self.suite.ociforge(
                "-v", "export", str(self.app), "-o", f"oci:{self.image}:app", "--report",
                str(report)), cwd=self.suite.s.work, env=env)
            counts = json.loads(report.read_text())["rootfs"]
        finally:
            report.unlink(missing_ok=True)
        lines = sample.stderr.splitlines()
        image = [line for line in lines if line.startswith("  image")]
        sample.extra["digest"] = image[-1].split()[-1] if image else ""
        sample.extra["base read"] = not any("rootfs index reused" in line for line in lines)
        sample.stderr = ""
        got = {key: counts[key] for key in ("added", "changed", "deleted")}
        if got != self.expected:
            raise CommandFailed(f"the delta counted {got}, the changes were {self.expected}")
        if self.digest and sample.extra["digest"] != self.digest:
            raise CommandFailed(f"digest {sample.extra['digest']} != first {self.digest}")
        self.digest = str(sample.extra["digest"])
        return sample

    def first(self, i: int) -> Sample:
        shutil.rmtree(self.cache, ignore_errors=True)
        sample = self._export(i, "first")
        if not sample.extra["base read"]:
            raise CommandFailed("the first export found a kept index in an empty cache")
        return sample

    def again(self, i: int) -> Sample:
        sample = self._export(i, "again")
        if sample.extra["base read"]:
            raise CommandFailed("the export read the base again though the cache kept it")
        return sample


def change(rootfs: Path, seed: int) -> dict[str, object]:
    """The user's changes, seeded; what the delta must count."""
    rng = random.Random(seed)
    bench = rootfs / "usr" / "lib" / "bench"
    folders = sorted(p for p in bench.glob("p*/d*") if p.is_dir())
    gone_folder = rng.choice(folders)
    files = sorted(p for p in bench.glob("p*/d*/f*")
                   if p.parent != gone_folder and p.is_file())
    picked = rng.sample(files, 110)
    for path in picked[:50]:
        with open(path, "ab") as fh:
            fh.write(b"changed by the user\n")
    for path in picked[50:60]:
        os.chmod(path, 0o600)
    for path in picked[60:110]:
        path.unlink()
    shutil.rmtree(gone_folder)
    package = rootfs / NEW_PACKAGE
    package.mkdir(parents=True)
    for n in range(200):
        (package / f"m{n:03d}.py").write_bytes(rng.randbytes(rng.randint(1_000, 200_000)))
    return {"added": 200 + NEW_FOLDERS, "changed": 60, "deleted": 51}


def rootfs_group(suite: Suite) -> Group:
    from .cases import Case, Group

    bench = RootfsBench(suite)

    def prepare() -> None:
        if os.geteuid() != 0:
            raise CommandFailed("needs root: an unpacked root filesystem keeps its owners "
                                "only as root")
        bench.prepare()
        size = bench.tree.bytes if bench.tree is not None else 0
        for case in cases:
            case.input_bytes = size

    cases = [
        Case("tar-read-rootfs", "tar -cf - . | cat > /dev/null (reading the rootfs)", "tar",
             bench.read, needs=("tar",)),
        Case("rootfs-export-first", "export --rootfs, first (empty cache)", "ociforge",
             bench.first),
        Case("rootfs-export-again", "export --rootfs, the base known (kept in the cache)",
             "ociforge", bench.again),
    ]
    return Group("rootfs", "Export what is installed: a rootfs's delta against its base",
                 cases, suite.s.runs, prepare)
