"""The cache in ``ociforge export``: layers reused only when nothing that decides their bytes
changed, and the image digest always exactly what ``--no-cache`` gives.

Every test compares with a ``--no-cache`` export of the same tree: a cache that
reused a layer it should have rebuilt would show there as another digest.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def app(tmp_path: Path) -> Path:
    target = tmp_path / "hello"
    shutil.copytree(EXAMPLE, target, symlinks=True)
    (target / "app" / "lib").mkdir()
    for i in range(40):
        (target / "app" / "lib" / f"m{i}.py").write_text(f"value = {i}\n" * (i + 1))
    os.symlink("m1.py", target / "app" / "lib" / "alias.py")
    return target


def export(cli: Any, app: Path, dest: Path, *extra: Any) -> tuple[str, str, dict[str, Any]]:
    """(image digest, stderr, report) of one in-process export with -v."""
    report = dest.parent / (dest.name + ".report.json")
    code, out, err = cli("-v", "export", app, "--with-files", "-o", f"oci:{dest}",
                         "--report", report, *extra)
    assert code == 0, err
    return out.split()[0], err, json.loads(report.read_text())


def reused(err: str) -> list[str]:
    return [line for line in err.splitlines() if "from the cache" in line and "reused" in line]


def same_report(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Reports equal but for where the image went."""
    a, b = json.loads(json.dumps(a)), json.loads(json.dumps(b))
    for doc in (a, b):
        doc["image"].pop("destinations", None)
    assert a == b


def test_unchanged_export_reuses_every_layer_and_equals_no_cache(cli: Any, app: Path,
                                                                 tmp_path: Path) -> None:
    first, err1, report1 = export(cli, app, tmp_path / "one")
    assert reused(err1) == []
    second, err2, report2 = export(cli, app, tmp_path / "two")
    assert len(reused(err2)) == 4, err2          # two runtime layers, files, the table
    plain, _, report3 = export(cli, app, tmp_path / "three", "--no-cache")
    assert first == second == plain
    same_report(report1, report2)
    same_report(report1, report3)
    # the left-out files (a .lic file, a .env file) are in the reused layers' report too
    assert {f["path"] for f in report2["left_out_files"]} >= {"/app/solver.lic",
                                                              "/files/.env.local"}


def test_a_changed_file_rebuilds_only_its_layer(cli: Any, app: Path, tmp_path: Path) -> None:
    export(cli, app, tmp_path / "one")
    (app / "config" / "hello.conf").write_text("greeting = hi there\n")
    digest, err, _ = export(cli, app, tmp_path / "two")
    lines = reused(err)
    assert len(lines) == 3 and not any("config" in line for line in lines), err
    assert digest == export(cli, app, tmp_path / "three", "--no-cache")[0]


def test_content_changed_with_size_and_mtime_put_back_is_caught(cli: Any, app: Path,
                                                                tmp_path: Path) -> None:
    """Only the ctime tells: same size, same mtime (restored to the nanosecond)."""
    target = app / "app" / "lib" / "m7.py"
    first, _, _ = export(cli, app, tmp_path / "one")
    before = target.stat()
    data = target.read_bytes()
    target.write_bytes(data.replace(b"7", b"8"))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    digest, err, _ = export(cli, app, tmp_path / "two")
    assert not any("runtime layer app" in line for line in reused(err)), err
    assert digest != first
    assert digest == export(cli, app, tmp_path / "three", "--no-cache")[0]


@pytest.mark.parametrize("change", ["copy-over", "symlink-target", "new-file", "chmod",
                                    "exclude", "secret-rule", "epoch", "compression",
                                    "removed-file"])
def test_every_input_of_a_layer_is_part_of_its_key(change: str, cli: Any, app: Path,
                                                   tmp_path: Path) -> None:
    export(cli, app, tmp_path / "one")
    extra: list[str] = []
    lib = app / "app" / "lib"
    toml = app / "ociforge.toml"
    if change == "copy-over":        # the same bytes, a new inode
        shutil.copy2(lib / "m3.py", tmp_path / "m3.py")
        os.replace(tmp_path / "m3.py", lib / "m3.py")
    elif change == "symlink-target":
        os.unlink(lib / "alias.py")
        os.symlink("m2.py", lib / "alias.py")
    elif change == "new-file":
        (lib / "new.py").write_text("x = 1\n")
    elif change == "chmod":
        os.chmod(lib / "m4.py", 0o755)
    elif change == "exclude":
        toml.write_text(toml.read_text().replace('exclude = ["*.tmp", "**/__pycache__"]',
                                                  'exclude = ["*.tmp", "m5.py"]'))
    elif change == "secret-rule":
        toml.write_text(toml.read_text() + '\n[secrets]\nfiles = ["m6.py"]\n')
    elif change == "epoch":
        extra = ["--source-date-epoch", "1700000000"]
    elif change == "compression":
        extra = ["--compression", "zstd"]
    elif change == "removed-file":
        os.unlink(lib / "m9.py")
    digest, err, report = export(cli, app, tmp_path / "two", *extra)
    assert not any("runtime layer app" in line for line in reused(err)), err
    plain, _, plain_report = export(cli, app, tmp_path / "three", "--no-cache", *extra)
    assert digest == plain
    same_report(report, plain_report)


def test_damaged_or_missing_blob_is_dropped_and_rebuilt(cli: Any, app: Path,
                                                        tmp_path: Path) -> None:
    first, _, _ = export(cli, app, tmp_path / "one")
    blobs = sorted((Path(os.environ["OCIFORGE_CACHE_DIR"]) / "v1" / "blobs" / "sha256").iterdir(),
                   key=lambda p: p.stat().st_size)
    damaged, missing = blobs[-1], blobs[-2]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(damaged, 0o644)
    damaged.write_bytes(bytes(data))            # same size, other bytes
    missing.unlink()
    # a new archive needs every blob's bytes: the damaged one is caught before it ships
    code, out, err = cli("export", app, "--with-files", "-o", tmp_path / "app.tar")
    assert code == 0, err
    assert out.split()[0] == first
    assert "does not hash" in err and "missing from the cache" in err
    code, out, err = cli("verify", tmp_path / "app.tar")
    assert code == 0, err
    # and the next export stores both again
    _, err, _ = export(cli, app, tmp_path / "two")
    assert len(reused(err)) == 4, err


def test_sqlite_table_reused_until_the_database_changes(cli: Any, app: Path,
                                                       tmp_path: Path) -> None:
    export(cli, app, tmp_path / "one")
    _, err, _ = export(cli, app, tmp_path / "two")
    assert any("table greetings" in line for line in reused(err)) and "reading table" not in err
    with sqlite3.connect(app / "data" / "greetings.db") as db:
        db.execute("UPDATE greetings SET text = text || '!' WHERE id = 1")
    digest, err, report = export(cli, app, tmp_path / "three")
    assert "reading table greetings" in err
    plain, _, plain_report = export(cli, app, tmp_path / "four", "--no-cache")
    assert digest == plain
    same_report(report, plain_report)


def test_base_layers_scanned_once(cli: Any, app: Path, tmp_path: Path) -> None:
    """A base holding a license file: its rewrite is reused, the report says the same."""
    base_tree = tmp_path / "base-tree"
    (base_tree / "opt" / "tool").mkdir(parents=True)
    (base_tree / "opt" / "tool" / "run").write_text("#!/bin/sh\n")
    (base_tree / "opt" / "tool" / "site.lic").write_text("SERVER x 27000\n")
    code, _, err = cli("append", "scratch", "--layer", f"{base_tree}/opt:/opt",
                       "-o", f"oci:{tmp_path / 'base'}:1", "--platform", "linux/amd64")
    assert code == 0, err
    toml = app / "ociforge.toml"
    toml.write_text(toml.read_text().replace('base = "scratch"', 'base = "oci:../base:1"'))
    first, err1, report1 = export(cli, app, tmp_path / "one")
    assert "scan reused" not in err1
    second, err2, report2 = export(cli, app, tmp_path / "two")
    assert "scan reused" in err2
    assert first == second == export(cli, app, tmp_path / "three", "--no-cache")[0]
    same_report(report1, report2)
    assert any(f["path"] == "/opt/tool/site.lic" for f in report2["left_out_files"])


def test_no_cache_neither_reads_nor_writes(cli: Any, app: Path, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    export(cli, app, tmp_path / "one", "--no-cache")
    export(cli, app, tmp_path / "two", "--cache-dir", cache)
    entries = sorted(p for p in cache.rglob("*") if p.is_file())
    _, err, _ = export(cli, app, tmp_path / "three", "--no-cache")
    assert reused(err) == []
    assert sorted(p for p in cache.rglob("*") if p.is_file()) == entries
    assert not Path(os.environ["OCIFORGE_CACHE_DIR"]).exists()


def _cli_env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _run(argv: list[Any], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ociforge", *map(str, argv)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("where", ["read-only", "no-home", "home-missing", "other-user",
                                   "group-writable", "a-file"])
def test_unusable_cache_warns_once_and_changes_nothing(where: str, app: Path, tmp_path: Path,
                                                       unwritable: Path) -> None:
    from tools import require_root

    env = _cli_env(OCIFORGE_CACHE_DIR=None, XDG_CACHE_HOME=None)
    if where == "read-only":
        env["OCIFORGE_CACHE_DIR"] = str(unwritable / "ociforge-cache")
    elif where == "no-home":
        env["HOME"] = ""
    elif where == "home-missing":     # a CI runner's user whose home was never made
        env["HOME"] = str(tmp_path / "nonexistent")
    elif where == "other-user":
        require_root("a folder of another user needs chown")
        other = tmp_path / "theirs"
        other.mkdir(mode=0o700)
        os.chown(other, 65534, 65534)
        env["OCIFORGE_CACHE_DIR"] = str(other)
    elif where == "group-writable":
        shared = tmp_path / "shared"
        shared.mkdir()
        os.chmod(shared, 0o775)
        env["OCIFORGE_CACHE_DIR"] = str(shared)
    else:
        (tmp_path / "plain-file").write_text("x")
        env["XDG_CACHE_HOME"] = str(tmp_path / "plain-file")
    plain = _run(["export", app, "-o", tmp_path / "plain.tar", "--no-cache"], env)
    assert plain.returncode == 0, plain.stderr
    for attempt in ("first", "second"):
        proc = _run(["export", app, "--with-files", "-o", tmp_path / f"{attempt}.tar"], env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.count("cache disabled") == 1, proc.stderr
    with_files = _run(["export", app, "--with-files", "-o", tmp_path / "x.tar", "--no-cache"],
                      env)
    assert proc.stdout.split()[0] == with_files.stdout.split()[0]


def test_processes_sharing_one_cache(app: Path, tmp_path: Path) -> None:
    """Four exports at once into one cache, then one more: all the same image, and the
    last one answered from the cache with no entry damaged."""
    env = _cli_env(OCIFORGE_CACHE_DIR=str(tmp_path / "shared-cache"))
    procs = [subprocess.Popen([sys.executable, "-m", "ociforge", "export", str(app),
                               "--with-files", "-o", f"oci:{tmp_path / f'out{i}'}"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(4)]
    digests = set()
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        digests.add(out.split()[0])
    last = _run(["-v", "export", app, "--with-files", "-o", tmp_path / "last.tar"], env)
    assert last.returncode == 0, last.stderr
    assert digests == {last.stdout.split()[0]}
    assert last.stderr.count("reused") == 4, last.stderr
    assert "damaged" not in last.stderr and "does not hash" not in last.stderr
    leftovers = [p for p in (tmp_path / "shared-cache").rglob("*.tmp")]
    assert leftovers == []


def test_a_database_server_is_always_read_again(cli: Any, app: Path, tmp_path: Path,
                                                postgres: Any) -> None:
    from tools import require_module

    require_module("adbc_driver_postgresql")
    postgres.psql("DROP TABLE IF EXISTS cached_scores; CREATE TABLE cached_scores (player text "
                  "PRIMARY KEY, points int); INSERT INTO cached_scores VALUES ('zoe', 3); "
                  "ALTER TABLE cached_scores OWNER TO exporter;")
    toml = app / "ociforge.toml"
    toml.write_text(toml.read_text().replace(
        'source = "sqlite:///data/greetings.db"\ntable = "greetings"',
        f'source = "{postgres.url}"\ntable = "cached_scores"'))
    first, _, _ = export(cli, app, tmp_path / "one")
    postgres.psql("UPDATE cached_scores SET points = 4")       # nothing on disk says so
    digest, err, _ = export(cli, app, tmp_path / "two")
    assert "reading table cached_scores" in err
    assert digest != first
    assert digest == export(cli, app, tmp_path / "three", "--no-cache")[0]


def test_a_tree_that_changes_while_its_layer_is_built_is_not_stored(tmp_path: Path) -> None:
    from ociforge.cache.layers import build_layer_cached
    from ociforge.cache.store import Cache
    from ociforge.layers.build import BuildSettings
    from ociforge.layers.layerfiles import LayerSource

    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (src / name).write_text(name)
    cache = Cache(tmp_path / "cache")

    def meddle(image_path: str, _host: Path) -> str | None:
        if image_path.endswith("b.txt"):
            (src / "a.txt").write_text("changed while the layer was built")
        return None

    build_layer_cached(cache, [LayerSource(src, "/x")], BuildSettings(), skip=meddle,
                       replay=lambda _p, _r: None)
    assert cache.usage().records["layers"] == 0
    build_layer_cached(cache, [LayerSource(src, "/x")], BuildSettings(),
                       skip=lambda _p, _h: None, replay=lambda _p, _r: None)
    assert cache.usage().records["layers"] == 1


def test_a_change_time_in_the_future_is_not_trusted(cli: Any, app: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock that jumped back: every file seems changed 'later'; nothing is stored."""
    import time

    from ociforge.cache import layers

    real = time.time_ns
    monkeypatch.setattr(layers.time, "time_ns", lambda: real() - 3_600_000_000_000)
    export(cli, app, tmp_path / "one")
    monkeypatch.setattr(layers.time, "time_ns", real)
    _, err, _ = export(cli, app, tmp_path / "two")
    assert not any("runtime layer" in line or "files layer" in line for line in reused(err))


def test_taking_allow_files_away_leaves_the_file_out_again(cli: Any, app: Path,
                                                           tmp_path: Path) -> None:
    """A layer is keyed on the whole policy: one built while [secrets] allow_files kept
    .env.local is not reused once it no longer does (ociforge.toml is outside that
    layer's folder, so the files' state alone cannot tell)."""
    spec = app / "ociforge.toml"
    original = spec.read_text()
    spec.write_text(original + '\n[secrets]\nallow_files = [".env.local"]\n')
    _, _, report = export(cli, app, tmp_path / "one")
    assert "/files/.env.local" not in {f["path"] for f in report["left_out_files"]}
    spec.write_text(original)
    digest, _, report = export(cli, app, tmp_path / "two")
    assert "/files/.env.local" in {f["path"] for f in report["left_out_files"]}
    assert digest == export(cli, app, tmp_path / "three", "--no-cache")[0]


def test_where_the_cache_lives_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--cache-dir, else $OCIFORGE_CACHE_DIR, else $XDG_CACHE_HOME/ociforge, else
    ~/.cache/ociforge: decided from the environ given, never the process's own."""
    from ociforge.cache.location import cache_options

    home, xdg, env_dir, flag = (tmp_path / name for name in ("home", "xdg", "env", "flag"))
    home.mkdir()
    monkeypatch.setenv("OCIFORGE_CACHE_DIR", str(tmp_path / "from-os-environ"))
    every = {"HOME": str(home), "XDG_CACHE_HOME": str(xdg), "OCIFORGE_CACHE_DIR": str(env_dir)}

    def where(cache_dir: Path | None, **environ: str) -> str | None:
        return cache_options(str(cache_dir) if cache_dir else None, False, False,
                             environ=environ).dir

    assert where(flag, **every) == str(flag)
    assert where(None, **every) == str(env_dir)
    assert where(None, HOME=str(home), XDG_CACHE_HOME=str(xdg)) == str(xdg / "ociforge")
    assert where(None, HOME=str(home)) == str(home / ".cache" / "ociforge")
    # empty values count as unset; a relative XDG_CACHE_HOME is ignored (the XDG spec)
    assert where(None, HOME=str(home), XDG_CACHE_HOME="", OCIFORGE_CACHE_DIR=" ") == \
        str(home / ".cache" / "ociforge")
    assert where(None, HOME=str(home), XDG_CACHE_HOME="relative/cache") == \
        str(home / ".cache" / "ociforge")
    # --no-cache: none at all, whatever the environment says
    assert cache_options(None, True, False, environ=every).dir is None
    assert not (tmp_path / "from-os-environ").exists()
