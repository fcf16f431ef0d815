"""What is measured: ociforge and its peers, side by side, in groups.

A group prepares its inputs once (untimed), then runs each of its cases in
turn, round after round, so drift in machine load hits every tool alike;
medians are taken per case.  A peer whose tool is missing is skipped with a
note; an ociforge command that fails is reported as failed, never hidden.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import layouts
from .measure import CommandFailed, Sample, run_measured, run_quiet
from .registry import Registry, blob_traffic
from .tables import ADBC_TO_PARQUET, TABLE, Postgres, make_sqlite, write_app
from .trees import Tree, TreeSpec, make_tree

REPO_ROOT = Path(__file__).resolve().parents[2]
TAG = "bench"
BASIC_AUTH = ("bench", "bench-password")   # the htpasswd registry's only user


@dataclass
class Case:
    key: str
    label: str
    tool: str                      # "ociforge" or the peer's name
    run: Callable[[int], Sample]   # round number -> one measured sample
    input_bytes: int = 0           # for MB/s
    needs: tuple[str, ...] = ()    # executables that must be installed


@dataclass
class Group:
    key: str
    title: str
    cases: list[Case]
    rounds: int
    prepare: Callable[[], None] | None = None
    finish: Callable[[], None] | None = None


@dataclass
class Settings:
    work: Path
    mixed_files: int = 2000
    mixed_bytes: int = 1 << 30
    small_files: int = 50_000
    layer_bytes: int = 2 << 20      # each of the 10 layers of the re-push image
    table_rows: int = 4_000_000     # the table exported side by side with sqlite3/psql
    big_table_rows: int = 10_000_000  # the table whose export's peak RSS is judged
    app_files: int = 34_000         # the benchmark application's environment layer
    app_bytes: int = 790 << 20
    runs: int = 3
    seed: int = 20260501
    size_name: str = "full"
    rev: str | None = None          # measure this git revision instead of the working tree
    scrub_values: int = 60_000      # hostile group: dropped values (env_file) ...
    scrub_entries: int = 55_000     # ... and base history entries naming them
    rootfs_files: int = 100_000     # the rootfs group's base (issue 14)
    rootfs_bytes: int = 2 << 30


@dataclass
class State:
    """What groups hand each other: trees and images built once."""

    mixed: Tree | None = None
    half: Tree | None = None
    small: Tree | None = None
    push_image: Path | None = None
    push_image_note: str = ""
    ten_image: Path | None = None
    new_layer_tree: Tree | None = None
    registry: Registry | None = None
    basic_registry: Registry | None = None
    postgres: Postgres | None = None
    notes: dict[str, list[str]] = field(default_factory=dict)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


class Suite:
    """Builds the groups for one benchmark run."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.state = State()
        self.out = settings.work / "out"
        self.images = settings.work / "images"
        self.tmp = settings.work / "tmp"
        for folder in (self.out, self.images, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        self.source_digest = snapshot_source(settings.work / "src", settings.rev)
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(settings.work / "src"), os.environ.get("PYTHONPATH", "")) if p)
        self.env["TMPDIR"] = str(self.tmp)           # ociforge's blob workspace stays inside
        self.env["DOCKER_CONFIG"] = str(settings.work / "docker-config")  # no real credentials
        self.env.pop("SOURCE_DATE_EPOCH", None)
        # Measure ociforge as installed (byte-compiled), not recompiled on every start:
        # bytecode goes to a cache inside the work folder, never into the checkout.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPYCACHEPREFIX"] = str(settings.work / "pycache")
        self.env["OCIFORGE_CACHE_DIR"] = str(settings.work / "cache")  # never ~/.cache
        self.env.pop("XDG_CACHE_HOME", None)
        run_quiet([sys.executable, "-m", "compileall", "-q", str(settings.work / "src")],
                  env=self.env)

    # -- helpers ---------------------------------------------------------------

    def ociforge(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "ociforge", *args]

    def measure(self, argv: list[str] | str, env: dict[str, str] | None = None,
                **kw: object) -> Sample:
        return run_measured(argv, env=env or self.env, **kw)  # type: ignore[arg-type]

    def quiet(self, argv: list[str] | str, **kw: object) -> str:
        return run_quiet(argv, env=self.env, **kw)  # type: ignore[arg-type]

    def mixed(self) -> Tree:
        if self.state.mixed is None:
            spec = TreeSpec("mixed", self.s.mixed_files, self.s.mixed_bytes, self.s.seed)
            self.state.mixed = make_tree(self.s.work / "trees" / "mixed", spec)
        return self.state.mixed

    def half(self) -> Tree:
        """The mixed tree's shape at half its size: fixed costs weigh twice as much."""
        if self.state.half is None:
            spec = TreeSpec("mixed", max(1, self.s.mixed_files // 2), self.s.mixed_bytes // 2,
                            self.s.seed + 7)
            self.state.half = make_tree(self.s.work / "trees" / "half", spec)
        return self.state.half

    def small(self) -> Tree:
        if self.state.small is None:
            spec = TreeSpec("small", self.s.small_files, 0, self.s.seed + 1)
            self.state.small = make_tree(self.s.work / "trees" / "small", spec)
        return self.state.small

    def warm(self, tree: Tree) -> None:
        """Read the tree once so every tool starts from a warm page cache."""
        self.quiet("tar -cf - . | cat > /dev/null", cwd=tree.path)

    def fresh(self, name: str) -> Path:
        path = self.out / name
        shutil.rmtree(path, ignore_errors=True)
        return path

    def note(self, key: str, text: str) -> None:
        self.state.notes.setdefault(key, []).append(text)

    # -- groups ----------------------------------------------------------------

    def groups(self) -> list[Group]:
        from .cachecases import export_group, pull_group
        from .platformcases import platforms_group
        from .rootfscases import rootfs_group

        return [self.startup(), self.mixed_group(), self.small_group(), self.push_group(),
                self.registry_group(), self.memory_group(), self.tables_group(),
                self.tables_pg_group(), self.tables_memory_group(), self.hostile_group(),
                export_group(self), pull_group(self), platforms_group(self),
                rootfs_group(self)]

    def startup(self) -> Group:
        def cmd(argv: list[str]) -> Callable[[int], Sample]:
            return lambda _i: self.measure(argv, cwd=self.s.work)

        return Group("startup", "CLI start-up", [
            Case("python-floor", "python3 -c pass (interpreter floor)", "python",
                 cmd([sys.executable, "-c", "pass"])),
            Case("ociforge-version", "ociforge --version", "ociforge",
                 cmd(self.ociforge("--version"))),
            Case("ociforge-help", "ociforge --help", "ociforge", cmd(self.ociforge("--help"))),
        ], rounds=max(5, 3 * self.s.runs))

    def _pipeline(self, key: str, label: str, tool: str, shell: str, tree: Callable[[], Tree],
                  needs: tuple[str, ...], to_file: bool = True) -> Case:
        def run(i: int) -> Sample:
            out = self.fresh(f"{key}-{i}.out") if to_file else None
            try:
                sample = self.measure(shell, cwd=tree().path, stdout_path=out)
                if out is not None:
                    sample.extra["size"] = out.stat().st_size
                return sample
            finally:
                if out is not None:
                    out.unlink(missing_ok=True)
        return Case(key, label, tool, run, needs=needs)

    def _ociforge_build(self, key: str, tree: Callable[[], Tree], compression: str,
                        keep_as: Path | None = None) -> Callable[[int], Sample]:
        def run(i: int) -> Sample:
            dest = self.fresh(f"{key}-{i}")
            sample = self.measure(self.ociforge(
                "append", "scratch", "--layer", f"{tree().path}:/data",
                "-o", f"oci:{dest}:{TAG}", "--compression", compression), cwd=self.s.work)
            doc = layouts.manifest(dest, TAG)
            layer = doc["layers"][-1]
            sample.extra.update(digest=layer["digest"], size=int(layer["size"]),
                                media_type=layer.get("mediaType", ""))
            if keep_as is not None and not keep_as.exists():
                shutil.move(str(dest), keep_as)
            shutil.rmtree(dest, ignore_errors=True)
            return sample
        return run

    def _umoci(self, mode: str) -> Callable[[int], Sample]:
        rootless = [] if os.geteuid() == 0 else ["--rootless"]

        def run(i: int) -> Sample:
            layout = self.fresh(f"umoci-{mode}-{i}")
            bundle = self.fresh(f"umoci-{mode}-{i}.bundle")
            tree = self.mixed().path
            try:
                self.quiet(["umoci", "init", "--layout", str(layout)])
                self.quiet(["umoci", "new", "--image", f"{layout}:base"])
                if mode == "insert":
                    sample = self.measure(["umoci", "insert", *rootless, "--image",
                                           f"{layout}:base", str(tree), "/data"])
                    sample.extra["size"] = layouts.largest_layer(layout, "base")[2]
                    return sample
                self.quiet(["umoci", "unpack", *rootless, "--image", f"{layout}:base",
                            str(bundle)])
                try:  # hard links: no copy cost, same page cache as the other tools
                    self.quiet(["cp", "-al", str(tree), str(bundle / "rootfs" / "data")])
                except CommandFailed:
                    self.quiet(["cp", "-a", str(tree), str(bundle / "rootfs" / "data")])
                sample = self.measure(["umoci", "repack", "--image", f"{layout}:{TAG}",
                                       str(bundle)])
                sample.extra["size"] = layouts.largest_layer(layout, TAG)[2]
                return sample
            finally:
                shutil.rmtree(layout, ignore_errors=True)
                shutil.rmtree(bundle, ignore_errors=True)
        return run

    def mixed_group(self) -> Group:
        tree = self.mixed
        push_image = self.images / "push"

        def prepare() -> None:
            shutil.rmtree(push_image, ignore_errors=True)
            self.warm(tree())
            self.warm(self.half())
            for case in cases:
                case.input_bytes = (self.half() if case.key.endswith("-half") else tree()).bytes

        cases = [
            self._pipeline("tar-sha256", "tar | openssl dgst -sha256 (hashing limit)", "openssl",
                           "tar -cf - . | openssl dgst -sha256", tree, ("openssl",),
                           to_file=False),
            self._pipeline("tar-gzip6", "tar | gzip -6", "gzip", "tar -cf - . | gzip -6",
                           tree, ("gzip",)),
            self._pipeline("tar-pigz6", "tar | pigz -6", "pigz", "tar -cf - . | pigz -6",
                           tree, ("pigz",)),
            self._pipeline("tar-zstd3", "tar | zstd -3 -T0", "zstd",
                           "tar -cf - . | zstd -q -3 -T0 -c", tree, ("zstd",)),
            Case("umoci-repack", "umoci repack (gzip layer)", "umoci", self._umoci("repack"),
                 needs=("umoci",)),
            Case("umoci-insert", "umoci insert (gzip layer)", "umoci", self._umoci("insert"),
                 needs=("umoci",)),
            Case("ociforge-gzip", "ociforge append --compression gzip", "ociforge",
                 self._ociforge_build("ociforge-gzip", tree, "gzip", keep_as=push_image)),
            Case("ociforge-zstd", "ociforge append --compression zstd", "ociforge",
                 self._ociforge_build("ociforge-zstd", tree, "zstd")),
            self._pipeline("tar-zstd3-half", "tar | zstd -3 -T0, half-size tree", "zstd",
                           "tar -cf - . | zstd -q -3 -T0 -c", self.half, ("zstd",)),
            Case("ociforge-zstd-half", "ociforge append --compression zstd, half-size tree",
                 "ociforge", self._ociforge_build("ociforge-zstd-half", self.half, "zstd")),
        ]
        return Group("mixed", "Layer from the mixed tree", cases, self.s.runs, prepare)

    def small_group(self) -> Group:
        tree = self.small

        def prepare() -> None:
            self.warm(tree())
            for case in cases:
                case.input_bytes = tree().bytes

        cases = [
            self._pipeline("tar-gzip1-small", "tar -cf - | gzip -1", "gzip",
                           "tar -cf - . | gzip -1", tree, ("gzip",)),
            Case("ociforge-small", "ociforge append --compression gzip", "ociforge",
                 self._ociforge_build("ociforge-small", tree, "gzip")),
        ]
        return Group("small", "Layer from the small-files tree", cases, self.s.runs, prepare)

    # -- registry groups -------------------------------------------------------

    def _push_image(self) -> Path:
        """The image pushed by every tool: ociforge's gzip build, else umoci's."""
        image = self.images / "push"
        if (image / "index.json").exists():
            self.state.push_image_note = "built by ociforge (gzip)"
            return image
        if have("umoci"):
            shutil.rmtree(image, ignore_errors=True)
            self.quiet(["umoci", "init", "--layout", str(image)])
            self.quiet(["umoci", "new", "--image", f"{image}:{TAG}"])
            self.quiet(["umoci", "insert", "--image", f"{image}:{TAG}", str(self.mixed().path),
                        "/data"])
            self.state.push_image_note = "built by umoci insert (ociforge build unavailable)"
            return image
        raise CommandFailed("no image to push: the ociforge build failed and umoci is missing")

    def _registry_run(self, key: str,
                      push: Callable[[Registry], Sample]) -> Callable[[int], Sample]:
        def run(i: int) -> Sample:
            with Registry(self.s.work / f"registry-{key}-{i}") as reg:
                return push(reg)
        return run

    def push_group(self) -> Group:
        def prepare() -> None:
            image = self._push_image()
            self.state.push_image = image
            size = layouts.total_blob_bytes(image, TAG)
            for case in cases:
                case.input_bytes = size
            case_curl.input_bytes = layouts.largest_layer(image, TAG)[2]

        def image() -> Path:
            assert self.state.push_image is not None
            return self.state.push_image

        def skopeo(reg: Registry) -> Sample:
            return self.measure(["skopeo", "copy", "--insecure-policy", "--dest-tls-verify=false",
                                 f"oci:{image()}:{TAG}",
                                 f"docker://{reg.host}/skopeo/bench:latest"])

        def curl(reg: Registry) -> Sample:
            blob, digest, _ = layouts.largest_layer(image(), TAG)
            base = f"http://{reg.host}/v2/curl/bench/blobs/uploads/"
            script = (
                f"loc=$(curl -sSf -X POST -D - -o /dev/null '{base}' "
                "| tr -d '\\r' | awk 'tolower($1)==\"location:\"{print $2}') && "
                f"curl -sSf -X PUT -T '{blob}' -H 'Content-Type: application/octet-stream' "
                f"\"$loc&digest={digest}\" -o /dev/null")
            return self.measure(script)

        def ociforge(reg: Registry) -> Sample:
            sample = self.measure(self.ociforge(
                "copy", f"oci:{image()}:{TAG}", f"{reg.host}/ociforge/bench:latest",
                "--insecure", reg.host), cwd=self.s.work)
            want = layouts.manifest_descriptor(image(), TAG)["digest"]
            got = remote_digest(reg.host, "ociforge/bench", "latest")
            sample.extra["digest_match"] = got == want
            if got != want:
                sample.ok = False
                sample.error = f"registry has {got}, layout has {want}"
            return sample

        case_curl = Case("curl-upload", "curl POST+PUT of the largest layer blob", "curl",
                         self._registry_run("curl", curl), needs=("curl",))
        cases = [
            Case("skopeo-copy", "skopeo copy oci: -> registry", "skopeo",
                 self._registry_run("skopeo", skopeo), needs=("skopeo",)),
            case_curl,
            Case("ociforge-push", "ociforge copy oci: -> registry", "ociforge",
                 self._registry_run("ociforge", ociforge)),
        ]
        return Group("push", "Push the mixed-tree image to a fresh loopback registry", cases,
                     self.s.runs, prepare)

    def registry_group(self) -> Group:
        ten = self.images / "ten"

        def prepare() -> None:
            layer_dirs = []
            for k in range(10):
                spec = TreeSpec("mixed", 8, self.s.layer_bytes, self.s.seed + 100 + k)
                layer_dirs.append(make_tree(self.s.work / "trees" / "ten" / f"l{k}", spec))
            self.state.new_layer_tree = make_tree(
                self.s.work / "trees" / "new-layer",
                TreeSpec("mixed", 8, self.s.layer_bytes, self.s.seed + 200))
            shutil.rmtree(ten, ignore_errors=True)
            layer_args = [a for k, t in enumerate(layer_dirs)
                          for a in ("--layer", f"{t.path}:/l{k}")]
            self.quiet(self.ociforge("append", "scratch", *layer_args, "-o", f"oci:{ten}:{TAG}"),
                       cwd=self.s.work)
            self.state.ten_image = ten
            reg = Registry(self.s.work / "registry-shared").start()
            self.state.registry = reg
            self.quiet(self.ociforge("copy", f"oci:{ten}:{TAG}", f"{reg.host}/ten:{TAG}",
                                     "--insecure", reg.host), cwd=self.s.work)
            basic = Registry(self.s.work / "registry-basic", BASIC_AUTH).start()
            self.state.basic_registry = basic
            docker_config = Path(self.env["DOCKER_CONFIG"]) / "config.json"
            docker_config.parent.mkdir(parents=True, exist_ok=True)
            token = base64.b64encode(":".join(BASIC_AUTH).encode()).decode()
            docker_config.write_text(json.dumps({"auths": {basic.host: {"auth": token}}}))
            self.quiet(self.ociforge("copy", f"oci:{ten}:{TAG}", f"{basic.host}/ten:{TAG}",
                                     "--insecure", basic.host), cwd=self.s.work)
            size = layouts.total_blob_bytes(ten, TAG)
            for case in cases:
                case.input_bytes = size

        def finish() -> None:
            for reg in (self.state.registry, self.state.basic_registry):
                if reg is not None:
                    reg.__exit__(None, None, None)
            self.state.registry = self.state.basic_registry = None

        def registry() -> Registry:
            assert self.state.registry is not None
            return self.state.registry

        def basic_registry() -> Registry:
            assert self.state.basic_registry is not None
            return self.state.basic_registry

        def repush(argv_for: Callable[[str], list[str]],
                   which: Callable[[], Registry] = registry) -> Callable[[int], Sample]:
            def run(_i: int) -> Sample:
                reg = which()
                mark = reg.mark()
                sample = self.measure(argv_for(reg.host), cwd=self.s.work)
                seen = reg.requests("ten", since=mark)
                sample.extra["blob_writes"] = len(blob_traffic(seen)["writes"])
                sample.extra["requests"] = len(seen)
                return sample
            return run

        def mount(i: int) -> Sample:
            reg = registry()
            assert self.state.new_layer_tree is not None
            repo = f"app{i}"
            mark = reg.mark()
            sample = self.measure(self.ociforge(
                "append", f"{reg.host}/ten:{TAG}",
                "--layer", f"{self.state.new_layer_tree.path}:/new",
                "-o", f"{reg.host}/{repo}:{TAG}", "--insecure", reg.host), cwd=self.s.work)
            traffic = blob_traffic(reg.requests(repo, since=mark))
            base = set(layouts.layer_digests(ten, TAG))
            sample.extra.update(
                uploaded=len(traffic["uploaded"]), mounted=len(traffic["mounted"]),
                base_layers=len(base),
                base_uploaded=len(base & set(traffic["uploaded"])),
                base_mounted=len(base & set(traffic["mounted"])))
            return sample

        cases = [
            Case("ociforge-repush", "ociforge copy, 10-layer image, all blobs present",
                 "ociforge", repush(lambda host: self.ociforge(
                     "copy", f"oci:{ten}:{TAG}", f"{host}/ten:{TAG}", "--insecure", host))),
            Case("skopeo-repush", "skopeo copy, 10-layer image, all blobs present", "skopeo",
                 repush(lambda host: ["skopeo", "copy", "--insecure-policy",
                                      "--dest-tls-verify=false", f"oci:{ten}:{TAG}",
                                      f"docker://{host}/ten:{TAG}"]), needs=("skopeo",)),
            Case("ociforge-repush-basic", "ociforge copy, the same, htpasswd registry",
                 "ociforge", repush(lambda host: self.ociforge(
                     "copy", f"oci:{ten}:{TAG}", f"{host}/ten:{TAG}", "--insecure", host),
                     basic_registry)),
            Case("skopeo-repush-basic", "skopeo copy, the same, htpasswd registry", "skopeo",
                 repush(lambda host: ["skopeo", "copy", "--insecure-policy",
                                      "--dest-tls-verify=false", "--dest-creds",
                                      ":".join(BASIC_AUTH), f"oci:{ten}:{TAG}",
                                      f"docker://{host}/ten:{TAG}"], basic_registry),
                 needs=("skopeo",)),
            Case("ociforge-mount", "ociforge append REGISTRY/ten +1 layer -> other repo",
                 "ociforge", mount),
        ]
        return Group("registry", "Re-push and cross-repository mount (one registry)", cases,
                     self.s.runs, prepare, finish)

    def memory_group(self) -> Group:
        big = self.images / "big"

        def build(_i: int) -> Sample:
            shutil.rmtree(big, ignore_errors=True)
            tree = self.mixed().path
            return self.measure(self.ociforge(
                "append", "scratch", "--layer", f"{tree}:/a", "--layer", f"{tree}:/b",
                "-o", f"oci:{big}:{TAG}", "--compression", "gzip"), cwd=self.s.work)

        def push(reg: Registry) -> Sample:
            if not (big / "index.json").exists():
                raise CommandFailed("the 2x image was not built")
            return self.measure(self.ociforge("copy", f"oci:{big}:{TAG}",
                                              f"{reg.host}/big:latest", "--insecure", reg.host),
                                cwd=self.s.work)

        def prepare() -> None:
            for case in cases:
                case.input_bytes = 2 * self.mixed().bytes

        def finish() -> None:
            shutil.rmtree(big, ignore_errors=True)

        cases = [
            Case("ociforge-build-2x", "ociforge append, 2 layers = 2x mixed tree (gzip)",
                 "ociforge", build),
            Case("ociforge-push-2x", "ociforge copy of that image to a fresh registry",
                 "ociforge", self._registry_run("big", push)),
        ]
        return Group("memory", "Peak memory: build and push an image of twice the mixed tree",
                     cases, 1, prepare, finish)


    # -- table export ------------------------------------------------------------

    def _export_tables(self, key: str, app: Callable[[], Path]) -> Callable[[int], Sample]:
        """``ociforge export APP --with-files``: both table files, built into an image
        (``--no-cache``: every round reads the table, as the peers do)."""
        def run(i: int) -> Sample:
            dest = self.fresh(f"{key}-{i}")
            report = self.out / f"{key}-{i}.json"
            try:
                sample = self.measure(self.ociforge(
                    "export", str(app()), "--with-files", "--no-cache", "-o",
                    f"oci:{dest}:{TAG}", "--report", str(report)), cwd=self.s.work)
                tables = json.loads(report.read_text())["tables"]
                sample.extra.update(
                    digest=" ".join(t["digest"] for t in tables),
                    rows=sum(int(t["rows"]) for t in tables),
                    size=sum(int(t["size"]) for t in tables))
                return sample
            finally:
                shutil.rmtree(dest, ignore_errors=True)
                report.unlink(missing_ok=True)
        return run

    def _adbc_parquet(self, key: str, driver: str, uri: Callable[[], str]
                      ) -> Callable[[int], Sample]:
        def run(i: int) -> Sample:
            out = self.out / f"{key}-{i}.parquet"
            try:
                sample = self.measure([sys.executable, "-c", ADBC_TO_PARQUET, driver, uri(),
                                       str(out)], cwd=self.s.work)
                sample.extra["size"] = out.stat().st_size
                return sample
            finally:
                out.unlink(missing_ok=True)
        return run

    def _to_file(self, key: str, argv: Callable[[], list[str]]) -> Callable[[int], Sample]:
        def run(i: int) -> Sample:
            out = self.out / f"{key}-{i}.out"
            try:
                sample = self.measure(argv(), cwd=self.s.work, stdout_path=out)
                sample.extra["size"] = out.stat().st_size
                return sample
            finally:
                out.unlink(missing_ok=True)
        return run

    def _sqlite_path(self, rows: int) -> Path:
        """Where the seeded table of ``rows`` rows lives (made by ``make_sqlite`` in prepare)."""
        return self.s.work / "tables" / f"{TABLE}-{rows}.db"

    def tables_group(self) -> Group:
        rows = self.s.table_rows
        db = self._sqlite_path(rows)
        app = self.s.work / "tables" / "app-sqlite"

        def prepare() -> None:
            make_sqlite(db, rows, self.s.seed)
            write_app(app, f"sqlite:///{db}")
            self.quiet(f"cat '{db}' > /dev/null")   # warm page cache for every tool
            for case in cases:
                case.input_bytes = db.stat().st_size

        cases = [
            Case("sqlite3-csv", f"sqlite3 -csv -header, {rows:,} rows", "sqlite3",
                 self._to_file("sqlite3-csv", lambda: [
                     "sqlite3", "-csv", "-header", str(db), f"SELECT * FROM {TABLE}"]),
                 needs=("sqlite3",)),
            Case("adbc-parquet-sqlite", "ADBC SQLite driver -> pyarrow.parquet (script)",
                 "adbc", self._adbc_parquet("adbc-parquet-sqlite", "sqlite",
                                            lambda: f"file:{db}?mode=ro")),
            Case("ociforge-tables-sqlite", "ociforge export --with-files: Parquet + CSV",
                 "ociforge", self._export_tables("ociforge-tables-sqlite", lambda: app)),
        ]
        return Group("tables", f"SQLite table of {rows:,} rows to Parquet and CSV", cases,
                     self.s.runs, prepare)

    def tables_pg_group(self) -> Group:
        rows = self.s.table_rows
        app = self.s.work / "tables" / "app-pg"

        def pg() -> Postgres:
            assert self.state.postgres is not None
            return self.state.postgres

        def prepare() -> None:
            server = Postgres().start()
            self.state.postgres = server
            size = server.load(rows, self.s.seed)
            write_app(app, server.url)
            self.quiet(server.psql_argv(f"SELECT count(*) FROM {TABLE}"))  # warm shared buffers
            for case in cases:
                case.input_bytes = size

        def finish() -> None:
            if self.state.postgres is not None:
                self.state.postgres.stop()
                self.state.postgres = None

        cases = [
            Case("psql-copy-csv", f"psql \\copy {TABLE} to stdout csv, {rows:,} rows", "psql",
                 self._to_file("psql-copy-csv", lambda: pg().psql_argv(
                     f"\\copy {TABLE} to stdout csv header")), needs=("psql",)),
            Case("adbc-parquet-pg", "ADBC PostgreSQL driver -> pyarrow.parquet (script)",
                 "adbc", self._adbc_parquet("adbc-parquet-pg", "postgresql", lambda: pg().url)),
            Case("ociforge-tables-pg", "ociforge export --with-files: Parquet + CSV",
                 "ociforge", self._export_tables("ociforge-tables-pg", lambda: app)),
        ]
        return Group("tables-pg", f"PostgreSQL table of {rows:,} rows to Parquet and CSV",
                     cases, self.s.runs, prepare, finish)

    def tables_memory_group(self) -> Group:
        rows = self.s.big_table_rows
        db = self._sqlite_path(rows)
        app = self.s.work / "tables" / "app-big"

        def prepare() -> None:
            make_sqlite(db, rows, self.s.seed)
            write_app(app, f"sqlite:///{db}")
            cases[0].input_bytes = db.stat().st_size

        cases = [
            Case("ociforge-tables-big", f"ociforge export, {rows:,}-row SQLite table "
                 "-> Parquet + CSV", "ociforge",
                 self._export_tables("ociforge-tables-big", lambda: app)),
        ]
        return Group("tables-memory", f"Peak memory: a {rows:,}-row table export", cases, 1,
                     prepare)

    def hostile_group(self) -> Group:
        """Export over a base whose history names many dropped values, against the same
        export where nothing in the history is dropped (the scrubbing's own cost)."""
        apps = self.images / "hostile"

        def prepare() -> None:
            shutil.rmtree(apps, ignore_errors=True)
            self.quiet([sys.executable, "-c", _HOSTILE_APPS, str(apps),
                        str(self.s.scrub_values), str(self.s.scrub_entries)])

        def export(name: str) -> Callable[[int], Sample]:
            def run(i: int) -> Sample:
                out = self.fresh(f"hostile-{name}")
                return self.measure(self.ociforge("export", str(apps / name), "--no-cache",
                                                  "-o", f"oci:{out}"), cwd=self.s.work)
            return run

        def finish() -> None:
            shutil.rmtree(apps, ignore_errors=True)

        values, entries = self.s.scrub_values, self.s.scrub_entries
        cases = [
            Case("ociforge-export-scrub", f"ociforge export, {values:,} dropped values over "
                 f"{entries:,} history entries", "ociforge", export("scrub")),
            Case("ociforge-export-plain", "the same export without the env_file (nothing "
                 "to mask)", "ociforge", export("plain")),
        ]
        return Group("hostile", "History scrubbing under hostile input", cases, self.s.runs,
                     prepare, finish)


# Writes APPS/scrub and APPS/plain over the same base (a layout whose M history entries
# name two of N values each): "scrub" has an env_file setting the N values under secret
# names (dropped, so every history entry is masked), "plain" has no env_file.
_HOSTILE_APPS = """
import random, sys
from pathlib import Path
from ociforge.model.descriptor import Descriptor
from ociforge.model.digest import Digest
from ociforge.model.image import Image
from ociforge.model.jsonutil import canonical
from ociforge.model.mutate import scratch
from ociforge.model.platform import Platform
from ociforge.options import Options
from ociforge.stores.locations import parse_location
apps, n, m = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
values = [f"{rng.getrandbits(40):010x}{i}" for i in range(n)]
platform = Platform.parse("linux/amd64")
empty = scratch(platform)
config = dict(empty.config)
config["history"] = [{"created_by": f"echo {values[(i * 7) % n]} {values[(i * 13 + 1) % n]}",
                      "empty_layer": True} for i in range(m)]
config_bytes = canonical(config)
manifest = dict(empty.manifest)
manifest["config"] = Descriptor(manifest["config"]["mediaType"], Digest.of_bytes(config_bytes),
                                len(config_bytes)).to_dict()
base = Image(canonical(manifest), config_bytes, (), None)
for name in ("scrub", "plain"):
    app = apps / name
    (app / "run").mkdir(parents=True)
    (app / "run" / "start.sh").write_text("#!/bin/sh\\n")
    env = ""
    if name == "scrub":
        (app / "app.env").write_text("".join(f"API_TOKEN_{i}={v}\\n"
                                             for i, v in enumerate(values)))
        env = '[config]\\nenv_file = "app.env"\\n'
    parse_location(f"oci:{app / 'base'}:1").write(base, Options(platform=platform))
    (app / "ociforge.toml").write_text(
        f'[app]\\nname = "{name}"\\nbase = "oci:base:1"\\nplatform = "linux/amd64"\\n'
        + env + '[[layers]]\\nsrc = "run"\\ndest = "/app"\\n')
"""


def snapshot_source(dest: Path, rev: str | None = None) -> str:
    """Copy the ociforge package to ``dest`` and return a digest of it: the working
    tree as it is now, or the committed tree of git revision ``rev``.

    Every ociforge run in a benchmark uses this copy, so edits made to the
    checkout while the benchmark runs cannot mix two versions in one table.
    """
    shutil.rmtree(dest, ignore_errors=True)
    if rev is None:
        shutil.copytree(REPO_ROOT / "ociforge", dest / "ociforge",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        dest.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", rev, "ociforge"],
                                 capture_output=True, check=False)
        if archive.returncode != 0:
            raise CommandFailed(f"git archive {rev}: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    digest = hashlib.sha256()
    for path in sorted((dest / "ociforge").rglob("*.py")):
        digest.update(str(path.relative_to(dest)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def remote_digest(host: str, repo: str, ref: str) -> str:
    """The manifest digest the registry reports for ``repo:ref`` (independent check)."""
    accept = ", ".join([
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ])
    req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{ref}", method="HEAD",
                                 headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return str(resp.headers.get("Docker-Content-Digest", ""))
    except OSError as exc:
        return f"(not found: {exc})"


def describe_tools() -> dict[str, str]:
    """Versions of the peers, for the report header."""
    probes = {
        "tar": ["tar", "--version"], "gzip": ["gzip", "--version"],
        "pigz": ["pigz", "--version"], "zstd": ["zstd", "--version"],
        "openssl": ["openssl", "version"], "umoci": ["umoci", "--version"],
        "skopeo": ["skopeo", "--version"], "docker-registry": ["docker-registry", "--version"],
        "curl": ["curl", "--version"], "sqlite3": ["sqlite3", "--version"],
        "psql": ["psql", "--version"],
    }
    out: dict[str, str] = {}
    try:
        from importlib.metadata import version

        out["pyarrow / ADBC"] = (f"pyarrow {version('pyarrow')}, adbc-driver-sqlite "
                                 f"{version('adbc-driver-sqlite')}, adbc-driver-postgresql "
                                 f"{version('adbc-driver-postgresql')}")
    except Exception:
        out["pyarrow / ADBC"] = "not installed"
    for name, argv in probes.items():
        if not have(argv[0]):
            out[name] = "not installed"
            continue
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=20,
                                  stdin=subprocess.DEVNULL)
            text = proc.stdout.strip() or proc.stderr.strip()
        except (OSError, subprocess.SubprocessError):
            text = "unknown version"
        out[name] = (text.strip().splitlines() or ["?"])[0].strip("* ")[:80]
    return out


def dumps(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)
