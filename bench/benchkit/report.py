"""The targets of issues 5, 12, 13, 14 and 17 and the tables: medians, ratios, met or not.

A ratio is ociforge's median divided by the peer's median, both measured in
the same run on the same input.  A target whose inputs are missing is
"not measured" with the reason: never silently met.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .engine import CaseResult

MET = "met"
NOT_MET = "NOT MET"
UNMEASURED = "not measured"


@dataclass(frozen=True)
class Target:
    """One target.  ``kind``: ratio (ours/peer <= limit), ratio-sum
    (ours / the sum of the ``+``-separated peers' medians <= limit), seconds (median
    <= limit), rss (peak MiB over ``ours`` < limit), rss-growth (peak RSS of ``ours`` /
    peak RSS of ``peer`` <= limit: memory does not grow with the image), mount (no base
    layer uploaded), same-digest (every round produced the same layer digest),
    rebuilt (the case checks itself that only the changed layer was built; ``peer`` is
    shown for scale)."""

    name: str
    kind: str
    ours: tuple[str, ...]
    peer: str | None = None
    limit: float = 0.0
    aim: float | None = None


TARGETS: tuple[Target, ...] = (
    Target("gzip layer, mixed tree", "ratio", ("ociforge-gzip",), "umoci-repack", 0.5, 0.35),
    Target("zstd layer, mixed tree", "ratio", ("ociforge-zstd",), "tar-zstd3", 1.2),
    Target("zstd layer, half-size mixed tree", "ratio", ("ociforge-zstd-half",),
           "tar-zstd3-half", 1.2),
    Target("small files -> gzip layer", "ratio", ("ociforge-small",), "tar-gzip1-small", 1.5),
    Target("push image to a fresh registry", "ratio", ("ociforge-push",), "skopeo-copy", 1.0),
    Target("re-push 10 layers, all blobs present", "seconds", ("ociforge-repush",), None, 0.5),
    Target("base layers mounted from another repo", "mount", ("ociforge-mount",)),
    Target("peak RSS, build + push 2x tree image", "rss", ("ociforge-build-2x",
                                                          "ociforge-push-2x"), None, 150.0),
    Target("peak RSS flat: 2x image build / 1x build", "rss-growth", ("ociforge-build-2x",),
           "ociforge-gzip", 1.25),
    Target("ociforge --version", "seconds", ("ociforge-version",), "python-floor", 0.100),
    Target("ociforge --help", "seconds", ("ociforge-help",), "python-floor", 0.150),
    Target("gzip layer deterministic across rounds", "same-digest", ("ociforge-gzip",)),
    Target("zstd layer deterministic across rounds", "same-digest", ("ociforge-zstd",)),
    Target("SQLite table -> Parquet + CSV, one export", "ratio-sum",
           ("ociforge-tables-sqlite",), "adbc-parquet-sqlite+sqlite3-csv", 1.5),
    Target("PostgreSQL table -> Parquet + CSV, one export", "ratio-sum",
           ("ociforge-tables-pg",), "adbc-parquet-pg+psql-copy-csv", 1.5),
    Target("peak RSS, 10M-row table export", "rss", ("ociforge-tables-big",), None, 250.0),
    Target("peak RSS, PostgreSQL table export", "rss", ("ociforge-tables-pg",), None, 250.0),
    Target("table files deterministic across rounds", "same-digest",
           ("ociforge-tables-sqlite",)),
    # the cache
    Target("re-export unchanged -> same layout / first export", "ratio",
           ("export-same-layout",), "export-first", 0.15),
    Target("re-export unchanged -> new tarball / first export", "ratio",
           ("export-new-tarball",), "export-first", 0.4),
    Target("export after one changed file (only that layer built)", "rebuilt",
           ("export-one-changed",), "export-first"),
    Target("no-op re-push / skopeo", "ratio", ("ociforge-repush",), "skopeo-repush", 2.5),
    Target("no-op re-push, htpasswd registry / skopeo", "ratio", ("ociforge-repush-basic",),
           "skopeo-repush-basic", 2.5),
    Target("pull 1 GiB image / skopeo", "ratio", ("ociforge-pull",), "skopeo-pull", 0.7),
    Target("two-platform export / one-platform export", "ratio", ("export-two-platforms",),
           "export-one-platform", 1.3),
    Target("rootfs export, base known / tar read of the rootfs", "ratio",
           ("rootfs-export-again",), "tar-read-rootfs", 2.0),
    Target("rootfs export, first (empty cache) / tar read of the rootfs", "ratio",
           ("rootfs-export-first",), "tar-read-rootfs", 2.0),
    Target("rootfs delta deterministic across rounds", "same-digest", ("rootfs-export-first",)),
)


@dataclass(frozen=True)
class Verdict:
    target: Target
    ours: str        # ociforge's value, formatted
    peer: str        # the peer's value, formatted ("" for absolute targets)
    ratio: float | None
    limit: str
    status: str      # MET / NOT_MET / "not measured: why"
    best_ratio: float | None = None  # best / best: less sensitive to other load on the machine


def _fmt_s(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.2f}"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def judge(target: Target, results: dict[str, CaseResult]) -> Verdict:
    ours = [results.get(key) for key in target.ours]
    missing = [key for key, res in zip(target.ours, ours, strict=True)
               if res is None or not res.measured]
    if missing:
        res = results.get(missing[0])
        why = res.why_missing() if res else "not run"
        return Verdict(target, "-", "-", None, _limit_text(target),
                       f"{UNMEASURED}: {missing[0]} {why}")
    mine = [r for r in ours if r is not None]
    if target.kind == "ratio":
        peer = results.get(target.peer or "")
        if peer is None or not peer.measured or not peer.median:
            why = peer.why_missing() if peer else "not run"
            return Verdict(target, _fmt_s(mine[0].median), "-", None, _limit_text(target),
                           f"{UNMEASURED}: {target.peer} {why}")
        ratio = ratio_of(mine[0], peer)
        status = MET if ratio <= target.limit else NOT_MET
        best = (mine[0].best or 0.0) / peer.best if peer.best else None
        return Verdict(target, f"{_fmt_s(mine[0].median)} s", f"{_fmt_s(peer.median)} s "
                       f"({peer.key})", ratio, _limit_text(target), status, best)
    if target.kind == "ratio-sum":
        peers = [results.get(key) for key in (target.peer or "").split("+")]
        for key, peer in zip((target.peer or "").split("+"), peers, strict=True):
            if peer is None or not peer.measured or not peer.median:
                why = peer.why_missing() if peer else "not run"
                return Verdict(target, _fmt_s(mine[0].median), "-", None,
                               _limit_text(target), f"{UNMEASURED}: {key} {why}")
        both = [p for p in peers if p is not None]
        total = sum(p.median or 0.0 for p in both)
        best_total = sum(p.best or 0.0 for p in both)
        ratio = (mine[0].median or 0.0) / total
        return Verdict(target, f"{_fmt_s(mine[0].median)} s",
                       f"{_fmt_s(total)} s ({' + '.join(p.key for p in both)})", ratio,
                       _limit_text(target), MET if ratio <= target.limit else NOT_MET,
                       (mine[0].best or 0.0) / best_total if best_total else None)
    if target.kind == "seconds":
        # ``peer`` here is context only (the interpreter's own start-up), never judged
        med = mine[0].median or 0.0
        context = results.get(target.peer or "")
        shown = (f"{_fmt_s(context.median)} s ({context.key})"
                 if context is not None and context.measured else "")
        return Verdict(target, f"{_fmt_s(med)} s (CPU {_fmt_s(mine[0].cpu)} s)", shown, None,
                       _limit_text(target), MET if med <= target.limit else NOT_MET)
    if target.kind == "rss":
        peak = max(r.peak_rss or 0.0 for r in mine)
        return Verdict(target, f"{peak:.0f} MiB", "", None, _limit_text(target),
                       MET if peak < target.limit else NOT_MET)
    if target.kind == "rss-growth":
        base = results.get(target.peer or "")
        if base is None or not base.measured or not base.peak_rss:
            return Verdict(target, f"{mine[0].peak_rss or 0:.0f} MiB", "-", None,
                           _limit_text(target), f"{UNMEASURED}: {target.peer} "
                           f"{base.why_missing() if base else 'not run'}")
        growth = (mine[0].peak_rss or 0.0) / base.peak_rss
        return Verdict(target, f"{mine[0].peak_rss or 0:.0f} MiB",
                       f"{base.peak_rss:.0f} MiB ({base.key})", growth, _limit_text(target),
                       MET if growth <= target.limit else NOT_MET)
    if target.kind == "mount":
        extras = [s.extra for s in mine[0].samples]
        uploaded = max(int(str(e.get("base_uploaded", 0))) for e in extras)
        mounted = min(int(str(e.get("base_mounted", 0))) for e in extras)
        base_layers = max(int(str(e.get("base_layers", 0))) for e in extras)
        new = max(int(str(e.get("uploaded", 0))) for e in extras)
        ok = uploaded == 0 and mounted == base_layers and base_layers > 0
        return Verdict(target, f"{mounted}/{base_layers} mounted, {new} uploaded", "", None,
                       "0 base layers uploaded", MET if ok else NOT_MET)
    if target.kind == "rebuilt":
        # the case itself fails unless exactly the changed layer was built again
        base = results.get(target.peer or "")
        ratio = ratio_of(mine[0], base) if base is not None and base.measured else None
        return Verdict(target, f"{_fmt_s(mine[0].median)} s", f"{_fmt_s(base.median)} s "
                       f"({base.key})" if base is not None and base.measured else "-", ratio,
                       "that layer only", MET)
    if target.kind == "same-digest":
        digests = {str(s.extra.get("digest")) for s in mine[0].samples}
        rounds = len(mine[0].samples)
        if rounds < 2:
            return Verdict(target, "1 round", "", None, "one digest",
                           f"{UNMEASURED}: needs 2+ rounds")
        return Verdict(target, f"{len(digests)} digest(s) in {rounds} rounds", "", None,
                       "one digest", MET if len(digests) == 1 else NOT_MET)
    raise ValueError(f"unknown target kind {target.kind!r}")


def ratio_of(ours: CaseResult, peer: CaseResult) -> float:
    """ociforge median / peer median (both from this run)."""
    assert ours.median is not None and peer.median
    return ours.median / peer.median


def _limit_text(target: Target) -> str:
    if target.kind in ("ratio", "ratio-sum", "rss-growth"):
        aim = f" (aim {target.aim:g})" if target.aim is not None else ""
        return f"<= {target.limit:g}x{aim}"
    if target.kind == "seconds":
        return f"<= {target.limit * 1000:.0f} ms" if target.limit < 1 else f"<= {target.limit:g} s"
    if target.kind == "rss":
        return f"< {target.limit:g} MiB"
    return ""


def judge_all(results: Iterable[CaseResult],
              targets: Sequence[Target] = TARGETS) -> list[Verdict]:
    by_key = {r.key: r for r in results}
    return [judge(t, by_key) for t in targets]


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def measurements_table(results: Sequence[CaseResult], titles: dict[str, str]) -> list[str]:
    lines = [_row(["group", "measurement", "median s", "best s", "rounds", "CPU s",
                   "peak RSS MiB", "MB/s", "notes"]),
             _row(["---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---"])]
    for res in results:
        note = res.skipped or res.error or _extra_note(res)
        lines.append(_row([titles.get(res.group, res.group), res.label, _fmt_s(res.median),
                           _fmt_s(res.best), str(len(res.samples)), _fmt(res.cpu, 2),
                           _fmt(res.peak_rss, 0), _fmt(res.throughput, 0), note]))
    return lines


def _extra_note(res: CaseResult) -> str:
    if not res.samples:
        return ""
    extra = res.samples[-1].extra
    if "size" in extra:
        ratio = int(str(extra["size"])) / res.input_bytes if res.input_bytes else 0
        what = "layer" if res.tool in ("ociforge", "umoci") else "output"
        return f"{what} {int(str(extra['size'])) / 1e6:,.0f} MB ({ratio:.0%} of input)"
    if "blob_writes" in extra:
        return f"blob writes: {max(int(str(s.extra['blob_writes'])) for s in res.samples)}"
    if "uploaded" in extra:
        return (f"uploaded {extra['uploaded']} blob(s), mounted {extra['base_mounted']}/"
                f"{extra['base_layers']} base layers")
    if "digest_match" in extra:
        return "registry digest = layout digest" if all(
            s.extra.get("digest_match") for s in res.samples) else "DIGEST MISMATCH"
    return ""


def targets_table(verdicts: Sequence[Verdict]) -> list[str]:
    lines = [_row(["target", "ociforge", "peer", "ratio", "limit", "status",
                   "best/best"]),
             _row(["---", "---:", "---:", "---:", "---", "---", "---:"])]
    for v in verdicts:
        status = f"**{v.status}**" if v.status == NOT_MET else v.status
        lines.append(_row([v.target.name, v.ours, v.peer,
                           "-" if v.ratio is None else f"{v.ratio:.2f}x", v.limit, status,
                           "-" if v.best_ratio is None else f"{v.best_ratio:.2f}x"]))
    return lines
