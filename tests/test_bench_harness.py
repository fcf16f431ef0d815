"""The benchmark harness (bench/run.py) on tiny trees: tables produced, ratios right.

Nothing here is timed: the harness reports speed, these tests check that it
measures what it says (ratios are ociforge median / peer median, missing
peers are "not measured", seeded trees are reproducible, the registry checks
count uploads and mounts correctly) and cleans up after itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tools import require_tool

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

from benchkit import report  # noqa: E402
from benchkit.cases import Case, Group  # noqa: E402
from benchkit.engine import CaseResult, run_group  # noqa: E402
from benchkit.measure import Sample, rss_is_exact, run_measured  # noqa: E402
from benchkit.trees import TreeSpec, make_tree  # noqa: E402

TINY = ["--rootfs-files", "400", "--rootfs-mib", "2",
        "--mixed-mib", "2", "--mixed-files", "12", "--small-files", "60", "--layer-kib", "16",
        "--app-files", "80", "--app-mib", "1"]


def _result(key: str, seconds: list[float], tool: str = "x", **extra: object) -> CaseResult:
    res = CaseResult(key, key, "g", tool)
    res.samples = [Sample(seconds=s, maxrss_mib=10.0 + i, extra=dict(extra))
                   for i, s in enumerate(seconds)]
    return res


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() + f":{path.stat().st_mode:o}"
        else:
            out[rel] = "dir"
    return out


def test_table_export_is_judged_against_both_references_added() -> None:
    results = [_result("ociforge-tables-sqlite", [6.0, 9.0, 7.0]),
               _result("sqlite3-csv", [2.0, 2.5, 3.0]), _result("adbc-parquet-sqlite", [3.0])]
    target = [t for t in report.TARGETS if t.ours == ("ociforge-tables-sqlite",)
              and t.kind == "ratio-sum"]
    verdict = report.judge_all(results, target)[0]
    assert verdict.ratio == pytest.approx(7.0 / (2.5 + 3.0))
    assert verdict.status == report.MET and verdict.limit == "<= 1.5x"
    assert verdict.best_ratio == pytest.approx(6.0 / (2.0 + 3.0))
    slow = report.judge_all([_result("ociforge-tables-sqlite", [9.0]), *results[1:]], target)[0]
    assert slow.status == report.NOT_MET
    missing = report.judge_all(results[:2], target)[0]
    assert missing.status.startswith(report.UNMEASURED) and "adbc-parquet-sqlite" in missing.status


def test_ratio_is_ours_median_over_peer_median() -> None:
    results = [_result("ociforge-zstd", [3.0, 1.0, 2.0]), _result("tar-zstd3", [4.0, 5.0, 1.0])]
    verdict = report.judge_all(results, [t for t in report.TARGETS
                                         if t.ours == ("ociforge-zstd",) and t.kind == "ratio"])[0]
    assert verdict.ratio == pytest.approx(2.0 / 4.0)
    assert verdict.status == report.MET


def test_ratio_over_limit_is_not_met_and_missing_peer_is_not_measured() -> None:
    gzip_target = next(t for t in report.TARGETS if t.peer == "umoci-repack")
    slow = report.judge(gzip_target, {
        "ociforge-gzip": _result("ociforge-gzip", [6.0]),
        "umoci-repack": _result("umoci-repack", [10.0])})
    assert slow.ratio == pytest.approx(0.6) and slow.status == report.NOT_MET
    missing = CaseResult("umoci-repack", "umoci", "g", "umoci", skipped="umoci not installed")
    verdict = report.judge(gzip_target, {"ociforge-gzip": _result("ociforge-gzip", [1.0]),
                                         "umoci-repack": missing})
    assert verdict.ratio is None
    assert verdict.status.startswith(report.UNMEASURED) and "umoci not installed" in verdict.status


def test_absolute_rss_mount_and_determinism_targets() -> None:
    by_kind: dict[str, report.Target] = {}
    for target in report.TARGETS:  # the first target of each kind
        by_kind.setdefault(target.kind, target)
    rss = report.judge(by_kind["rss"], {"ociforge-build-2x": _result("ociforge-build-2x", [1.0]),
                                        "ociforge-push-2x": _result("ociforge-push-2x", [1.0])})
    assert rss.status == report.MET and rss.ours == "10 MiB"
    growth = report.judge(by_kind["rss-growth"], {
        "ociforge-build-2x": _result("ociforge-build-2x", [1.0, 1.0]),   # peak 11 MiB
        "ociforge-gzip": _result("ociforge-gzip", [1.0])})               # peak 10 MiB
    assert growth.ratio == pytest.approx(1.1) and growth.status == report.MET
    mounted = _result("ociforge-mount", [1.0], base_layers=10, base_mounted=10,
                      base_uploaded=0, uploaded=2)
    assert report.judge(by_kind["mount"], {"ociforge-mount": mounted}).status == report.MET
    reupload = _result("ociforge-mount", [1.0], base_layers=10, base_mounted=9,
                       base_uploaded=1, uploaded=3)
    assert report.judge(by_kind["mount"], {"ociforge-mount": reupload}).status == report.NOT_MET
    two = CaseResult("ociforge-gzip", "g", "g", "ociforge")
    two.samples = [Sample(1.0, extra={"digest": "sha256:a"}),
                   Sample(1.0, extra={"digest": "sha256:b"})]
    same = next(t for t in report.TARGETS if t.kind == "same-digest" and "gzip" in t.name)
    assert report.judge(same, {"ociforge-gzip": two}).status == report.NOT_MET


def test_missing_peer_is_skipped_and_a_failing_case_stops_while_others_go_on() -> None:
    calls: list[str] = []

    def ok(i: int) -> Sample:
        calls.append(f"ok{i}")
        return run_measured(["true"])

    def broken(i: int) -> Sample:
        calls.append(f"broken{i}")
        return run_measured(["sh", "-c", "echo nope >&2; exit 1"])

    group = Group("g", "G", [
        Case("absent", "absent tool", "absent", ok, needs=("no-such-tool-ociforge-bench",)),
        Case("broken", "broken", "x", broken),
        Case("fine", "fine", "x", ok),
    ], rounds=3)
    results = {r.key: r for r in run_group(group)}
    assert results["absent"].skipped == "no-such-tool-ociforge-bench not installed"
    assert results["broken"].error == "exit 1: nope" and not results["broken"].measured
    assert len(results["fine"].samples) == 3 and results["fine"].measured
    assert calls == ["broken0", "ok0", "ok1", "ok2"]


def test_seeded_trees_are_reproducible(tmp_path: Path) -> None:
    spec = TreeSpec("mixed", 12, 1 << 20, seed=5)
    first = make_tree(tmp_path / "a", spec)
    second = make_tree(tmp_path / "b", spec)
    assert first.bytes == 1 << 20
    assert _digests(first.path) == _digests(second.path)
    other = make_tree(tmp_path / "c", TreeSpec("mixed", 12, 1 << 20, seed=6))
    assert _digests(other.path) != _digests(first.path)
    small = make_tree(tmp_path / "s", TreeSpec("small", 40, 0, seed=5))
    sizes = [p.stat().st_size for p in small.path.rglob("*") if p.is_file()]
    assert len(sizes) == 40 and all(1024 <= n <= 4096 for n in sizes)


def test_measured_command_reports_its_own_peak_memory(tmp_path: Path) -> None:
    """RSS is the command's own, not inherited from the (bigger) harness process."""
    hog = run_measured([sys.executable, "-c", "b = bytearray(120 << 20); b[::4096] = b'x' * "
                        "len(b[::4096])"])
    tiny = run_measured(["true"])
    assert hog.maxrss_mib > 120
    if rss_is_exact():  # through GNU time; without it the figure is only an upper bound
        assert tiny.maxrss_mib < 20
    failed = run_measured(["sh", "-c", "echo boom >&2; exit 3"], check=False)
    assert not failed.ok and failed.error == "exit 3: boom"


def _run_bench(tmp_path: Path, *args: str) -> tuple[str, dict]:
    out, raw = tmp_path / "results.md", tmp_path / "results.json"
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = dict(os.environ, TMPDIR=str(temp))
    proc = subprocess.run([sys.executable, str(BENCH / "run.py"), *TINY, "--runs", "2",
                           "--out", str(out), "--json", str(raw), *args],
                          capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(temp.iterdir()) == [], "the harness left files in its temporary folder"
    assert "## Targets (issues 5, 12, 13, 14 and 17)" in proc.stdout
    return out.read_text(), json.loads(raw.read_text())


def test_harness_builds_trees_runs_tools_and_writes_ratios(tmp_path: Path) -> None:
    require_tool("gzip")
    text, raw = _run_bench(tmp_path, "--only", "startup,mixed,small")
    results = {r["key"]: r for r in raw["results"]}
    for key in ("ociforge-gzip", "ociforge-zstd", "ociforge-small", "tar-gzip1-small",
                "ociforge-version", "ociforge-help"):
        assert results[key]["error"] == "" and len(results[key]["samples"]) >= 2, results[key]
    assert results["ociforge-push"]["skipped"] == "group not selected (--only)"
    targets = {t["name"]: t for t in raw["targets"]}
    small = targets["small files -> gzip layer"]
    expected = results["ociforge-small"]["median_s"] / results["tar-gzip1-small"]["median_s"]
    assert small["ratio"] == pytest.approx(expected)
    assert small["status"] in (report.MET, report.NOT_MET)
    assert f"{expected:.2f}x" in text
    # one digest per round: the build is deterministic and the harness saw it
    assert targets["gzip layer deterministic across rounds"]["status"] == report.MET
    layers = {s["extra"]["digest"] for s in results["ociforge-gzip"]["samples"]}
    assert len(layers) == 1
    assert targets["push image to a fresh registry"]["status"].startswith(report.UNMEASURED)
    assert "| ociforge --version |" in text and "| group | measurement |" in text


def test_harness_exports_a_table_beside_sqlite3_and_adbc(tmp_path: Path) -> None:
    require_tool("sqlite3")
    _text, raw = _run_bench(tmp_path, "--only", "tables,tables-memory", "--table-rows", "3000",
                            "--big-table-rows", "5000")
    results = {r["key"]: r for r in raw["results"]}
    for key in ("sqlite3-csv", "adbc-parquet-sqlite", "ociforge-tables-sqlite",
                "ociforge-tables-big"):
        assert results[key]["error"] == "" and results[key]["samples"], results[key]
    assert {s["extra"]["rows"] for s in results["ociforge-tables-sqlite"]["samples"]} == {6000}
    targets = {t["name"]: t for t in raw["targets"]}
    judged = targets["SQLite table -> Parquet + CSV, one export"]
    expected = results["ociforge-tables-sqlite"]["median_s"] / (
        results["sqlite3-csv"]["median_s"] + results["adbc-parquet-sqlite"]["median_s"])
    assert judged["ratio"] == pytest.approx(expected)
    assert targets["table files deterministic across rounds"]["status"] == report.MET
    assert targets["PostgreSQL table -> Parquet + CSV, one export"]["status"].startswith(
        report.UNMEASURED)


def test_harness_registry_checks_count_uploads_and_mounts(tmp_path: Path) -> None:
    require_tool("docker-registry")
    _text, raw = _run_bench(tmp_path, "--only", "push,registry")
    results = {r["key"]: r for r in raw["results"]}
    assert results["ociforge-push"]["error"] == ""
    assert all(s["extra"]["digest_match"] for s in results["ociforge-push"]["samples"])
    assert all(s["extra"]["blob_writes"] == 0 for s in results["ociforge-repush"]["samples"])
    assert results["ociforge-repush-basic"]["error"] == ""
    # a no-op re-push, anonymous or with Basic credentials, is the one HEAD of the tag
    for key in ("ociforge-repush", "ociforge-repush-basic"):
        assert [(s["extra"]["blob_writes"], s["extra"]["requests"])
                for s in results[key]["samples"]] == [(0, 1)] * 2, key
    for sample in results["ociforge-mount"]["samples"]:
        extra = sample["extra"]
        assert extra["base_uploaded"] == 0 and extra["base_mounted"] == extra["base_layers"] == 10
    # the new layer and config, then only the config: the cache remembers where the layer went
    uploads = [s["extra"]["uploaded"] for s in results["ociforge-mount"]["samples"]]
    assert uploads[0] == 2 and all(n == 1 for n in uploads[1:]), uploads
    targets = {t["name"]: t for t in raw["targets"]}
    assert targets["base layers mounted from another repo"]["status"] == report.MET


def test_harness_export_and_pull_cases_check_what_they_measure(tmp_path: Path) -> None:
    """Re-exports give the first export's digest, the one-changed-file export builds only
    that layer (the case fails otherwise), pulls land the registry's digest."""
    require_tool("docker-registry")
    require_tool("skopeo")
    _text, raw = _run_bench(tmp_path, "--only", "export,pull")
    results = {r["key"]: r for r in raw["results"]}
    for key in ("export-first", "export-same-layout", "export-new-tarball",
                "export-one-changed", "export-no-cache", "ociforge-pull", "skopeo-pull"):
        assert results[key]["error"] == "" and len(results[key]["samples"]) == 2, results[key]
    first = {s["extra"]["digest"] for s in results["export-first"]["samples"]}
    assert len(first) == 1
    for key in ("export-same-layout", "export-new-tarball", "export-no-cache"):
        assert {s["extra"]["digest"] for s in results[key]["samples"]} == first
    assert all(s["extra"]["reused"] == 3 for s in results["export-same-layout"]["samples"])
    assert all(s["extra"]["reused"] == 0 for s in results["export-first"]["samples"])
    changed = {s["extra"]["digest"] for s in results["export-one-changed"]["samples"]}
    assert len(changed) == 1 and changed != first
    assert all(s["extra"]["digest_match"] for s in results["ociforge-pull"]["samples"])
    targets = {t["name"]: t for t in raw["targets"]}
    same = targets["re-export unchanged -> same layout / first export"]
    assert same["ratio"] == pytest.approx(results["export-same-layout"]["median_s"]
                                          / results["export-first"]["median_s"])


def test_harness_rootfs_export_cases_check_what_they_measure(tmp_path: Path) -> None:
    """The rootfs group's exports count exactly the changes made, give one digest, and the
    second one of each round reads no base layer (each case fails otherwise)."""
    from tools import require_root

    require_root("the rootfs group unpacks a base keeping its owners")
    require_tool("tar")
    _text, raw = _run_bench(tmp_path, "--only", "rootfs")
    results = {r["key"]: r for r in raw["results"]}
    for key in ("tar-read-rootfs", "rootfs-export-first", "rootfs-export-again"):
        assert results[key]["error"] == "" and len(results[key]["samples"]) == 2, results[key]
    assert all(s["extra"]["base read"] for s in results["rootfs-export-first"]["samples"])
    assert not any(s["extra"]["base read"] for s in results["rootfs-export-again"]["samples"])
    digests = {s["extra"]["digest"] for key in ("rootfs-export-first", "rootfs-export-again")
               for s in results[key]["samples"]}
    assert len(digests) == 1
    targets = {t["name"]: t for t in raw["targets"]}
    again = targets["rootfs export, base known / tar read of the rootfs"]
    assert again["ratio"] == pytest.approx(results["rootfs-export-again"]["median_s"]
                                           / results["tar-read-rootfs"]["median_s"])
    assert targets["rootfs delta deterministic across rounds"]["status"] == report.MET


def test_harness_platforms_group_exports_one_and_two_platforms(tmp_path: Path) -> None:
    """The two-platform export gives one index of two images that differ only in the
    per-platform layer, the same every round; the target is their ratio."""
    _text, raw = _run_bench(tmp_path, "--only", "platforms")
    results = {r["key"]: r for r in raw["results"]}
    for key in ("export-one-platform", "export-two-platforms"):
        assert results[key]["error"] == "" and len(results[key]["samples"]) == 2, results[key]
        assert len({s["extra"]["digest"] for s in results[key]["samples"]}) == 1
    assert {s["extra"]["digest"] for s in results["export-one-platform"]["samples"]} != \
        {s["extra"]["digest"] for s in results["export-two-platforms"]["samples"]}
    target = {t["name"]: t for t in raw["targets"]}["two-platform export / one-platform export"]
    assert target["ratio"] == pytest.approx(results["export-two-platforms"]["median_s"]
                                            / results["export-one-platform"]["median_s"])
    assert target["status"] in (report.MET, report.NOT_MET)
