"""Progress people can see and programs can read (issue 15 items 1 and 2).

Exports, appends and copies against the real registry (tests/registry_fixtures.py),
503s injected by tests/faultproxy.py: the JSON events (``--progress json`` and the
Python ``on_progress`` callback), plain lines for logs, the live view under a real
pty, ``-q``, and cancelling through ``Options.cancel``.  Update throttling is set to
zero where a test needs to see every byte move (``UPDATE_INTERVAL``); no assertion
depends on how long anything takes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from faultproxy import FaultProxy, Rule
from imagegen import layout_with_image

from ociforge.errors import Cancelled
from ociforge.options import Options, RegistryOptions
from ociforge.progress import ProgressEvent

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello"
BIG = 3 << 20
ACCEPT = ("application/vnd.oci.image.manifest.v1+json, "
          "application/vnd.docker.distribution.manifest.v2+json")

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("fast_retries")]


@pytest.fixture
def every_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every update is an event (no throttling): a test sees each step of a transfer."""
    monkeypatch.setattr("ociforge.progress.events.UPDATE_INTERVAL", 0.0)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """The example app with 3 MiB of incompressible data in its first layer."""
    folder = tmp_path / "app"
    shutil.copytree(EXAMPLE, folder, symlinks=True)
    (folder / "app" / "big.bin").write_bytes(os.urandom(BIG))
    return folder


@pytest.fixture
def proxy(registry: Any) -> Iterator[FaultProxy]:
    with FaultProxy(registry.host) as p:
        yield p


def repo(label: str) -> str:
    return f"progress/{label}-{uuid.uuid4().hex[:8]}"


def events_of(stderr: str) -> list[dict[str, Any]]:
    """The JSON events among stderr's lines (warnings and the error line are text)."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def manifest_sizes(registry: Any, name: str, tag: str) -> dict[str, int]:
    resp = requests.get(f"http://{registry.host}/v2/{name}/manifests/{tag}",
                        headers={"Accept": ACCEPT}, timeout=10)
    assert resp.status_code == 200, resp.text
    manifest = resp.json()
    return {d["digest"]: d["size"] for d in [manifest["config"], *manifest["layers"]]}


def check_tasks(events: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every task starts once, ends once, and its ``done`` never goes back; returns the
    events of each (phase, item), in order."""
    tasks: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for event in events:
        for key in ("event", "phase", "item", "done", "total"):
            assert key in event, event
        if event["event"] == "finish":
            continue
        tasks.setdefault((event["phase"], event["item"]), []).append(event)
    for key, seq in tasks.items():
        kinds = [e["event"] for e in seq]
        assert kinds.count("start") == kinds.count("end") >= 1, (key, kinds)
        last = -1
        for event in seq:
            if event["event"] == "start":
                last = -1
            if event["event"] != "retry":
                assert event["done"] >= last, (key, seq)
                last = event["done"]
    return tasks


# -- JSON events ------------------------------------------------------------------------


def test_json_events_of_an_export_pushed_through_503s(
        cli: Any, registry: Any, proxy: FaultProxy, app: Path, tmp_path: Path,
        every_update: None) -> None:
    upload = proxy.add(Rule("status", method="PUT", path=r"/blobs/uploads/", times=1))
    manifest = proxy.add(Rule("status", method="PUT", path=r"/manifests/", times=1))
    name = repo("export")
    ref = f"{proxy.host}/{name}:1"
    code, out, err = cli("export", app, "-o", f"oci:{tmp_path / 'lay'}:1", "-o", ref,
                         "--progress", "json", "--no-cache")
    assert code == 0, err
    assert upload.fired == 1 and manifest.fired == 1
    events = events_of(err)
    assert [line for line in err.splitlines() if line.startswith("{")], err
    assert "\r" not in err
    tasks = check_tasks(events)
    phases = {phase for phase, _ in tasks}
    assert {"build", "check", "write", "push"} <= phases, phases

    # the last event says how the run ended, and where it wrote
    final = events[-1]
    assert final["event"] == "finish" and final["status"] == "ok" and final["exit_code"] == 0
    assert final["completed"] == [f"oci:{tmp_path / 'lay'}:1", ref]
    assert final["not_completed"] == []

    # every layer built: bytes and files, counted up to what the layer holds
    builds = [seq for (phase, _), seq in tasks.items() if phase == "build"]
    assert len(builds) == 2
    for seq in builds:
        end = seq[-1]
        assert end["status"] == "ok" and end["done"] == end["total"]
        assert end["files"] == end["files_total"] > 0 and end["digest"].startswith("sha256:")
    assert max(seq[-1]["total"] for seq in builds) >= BIG

    # every blob pushed, in bytes, up to its size; the big one seen part-way
    sizes = manifest_sizes(registry, name, "1")
    pushed = {item: seq for (phase, item), seq in tasks.items() if phase == "push"}
    assert set(pushed) == set(sizes)
    for digest, seq in pushed.items():
        end = seq[-1]
        assert end["event"] == "end" and end["status"] in ("uploaded", "mounted", "exists")
        assert end["done"] == end["total"] == sizes[digest]
    big = max(sizes, key=lambda d: sizes[d])
    assert any(e["event"] == "progress" and 0 < e["done"] < sizes[big] for e in pushed[big])

    # each retry as its own event, on the task it interrupted
    retries = [e for e in events if e["event"] == "retry"]
    assert len(retries) == 2, retries
    for event in retries:
        assert event["reason"] == "503 Service Unavailable"
        assert event["attempt"] == 2 and event["attempts"] == 6 and event["delay"] >= 0
    assert {(e["phase"], e["item"] in sizes) for e in retries} == {("push", True),
                                                                  ("write", False)}
    assert any(e["item"] == ref for e in retries)
    assert out.startswith("sha256:")


def test_a_run_refused_before_it_starts_still_ends_with_a_finish_event(
        cli: Any, tmp_path: Path) -> None:
    code, _, err = cli("copy", "oci:/nonexistent/x", f"oci:{tmp_path / 'o'}",
                       "--progress", "json")
    assert code == 2
    events = events_of(err)
    assert events[-1]["event"] == "finish" and events[-1]["status"] == "failed"
    assert events[-1]["exit_code"] == 2 and "nonexistent" in events[-1]["error"]


def test_the_python_callback_gets_the_events_the_command_line_prints(
        cli: Any, registry: Any, tmp_path: Path) -> None:
    from ociforge.pipeline.copy import copy_image

    source, _ = layout_with_image(tmp_path / "src", (BIG, 4096))
    printed_ref = f"{registry.host}/{repo('cli')}:t"
    code, out, err = cli("copy", source, printed_ref, "--jobs", "1", "--no-cache",
                         "--progress", "json")
    assert code == 0, err
    called: list[ProgressEvent] = []
    api_ref = f"{registry.host}/{repo('api')}:t"
    outcome = copy_image(source, [api_ref], Options(registry=RegistryOptions(jobs=1),
                                                    on_progress=called.append))
    assert str(outcome.artifact.digest) in out

    def steps(events: list[Any], ref: str) -> list[tuple[Any, ...]]:
        name = ref.rsplit(":", 1)[0]
        return [(e["event"], e["phase"], str(e["item"]).replace(name, "REPO"), e.get("status"))
                for e in events if e["event"] != "progress"]

    assert steps(called, api_ref) == steps(events_of(err), printed_ref)
    assert called[-1]["event"] == "finish" and called[-1]["completed"] == [api_ref]


def test_pulled_blobs_show_their_bytes_as_they_arrive(registry: Any, tmp_path: Path,
                                                    every_update: None) -> None:
    """Registry to layout: each layer pulled is a task in bytes, seen part-way on the way
    to its size, and ends at exactly its size (the config is a document, read whole)."""
    from ociforge.pipeline.copy import copy_image

    source, _ = layout_with_image(tmp_path / "src", (BIG, 4096))
    ref = f"{registry.host}/{repo('pull')}:t"
    copy_image(source, [ref], Options())
    seen: list[ProgressEvent] = []
    copy_image(ref, [f"oci:{tmp_path / 'out'}:t"],
               Options(registry=RegistryOptions(jobs=1), on_progress=seen.append))
    name = ref.split("/", 1)[1].rsplit(":", 1)[0]
    resp = requests.get(f"http://{registry.host}/v2/{name}/manifests/t",
                        headers={"Accept": ACCEPT}, timeout=10)
    sizes = {d["digest"]: d["size"] for d in resp.json()["layers"]}
    pulls: dict[str, list[ProgressEvent]] = {}
    for event in seen:
        if event["phase"] == "pull" and event["item"] in sizes:
            pulls.setdefault(event["item"], []).append(event)
    assert set(pulls) == set(sizes), [e for e in seen if e["phase"] == "pull"]
    for digest, seq in pulls.items():
        assert all(e["total"] == sizes[digest] for e in seq), seq
        assert seq[-1]["event"] == "end" and seq[-1]["done"] == sizes[digest], seq
    big = max(sizes, key=lambda d: sizes[d])
    assert sizes[big] >= BIG
    assert any(e["event"] == "progress" and 0 < e["done"] < sizes[big] for e in pulls[big])


def test_the_callback_sees_one_event_at_a_time(registry: Any, tmp_path: Path,
                                                every_update: None) -> None:
    """Four blobs pushed on four threads: the callback is never entered twice at once."""
    from ociforge.pipeline.copy import copy_image

    source, _ = layout_with_image(tmp_path / "src", (BIG, BIG, BIG, BIG))
    busy = threading.Lock()
    overlaps: list[ProgressEvent] = []
    seen: list[ProgressEvent] = []
    threads: set[str] = set()

    def callback(event: ProgressEvent) -> None:
        if not busy.acquire(blocking=False):
            overlaps.append(event)
            return
        try:
            threads.add(threading.current_thread().name)
            seen.append(event)
            time.sleep(0.0005)  # widen the window another thread would have to hit
        finally:
            busy.release()

    copy_image(source, [f"{registry.host}/{repo('threads')}:t"],
               Options(registry=RegistryOptions(jobs=4), on_progress=callback))
    assert not overlaps
    assert len({t for t in threads if t.startswith("ociforge-push")}) > 1, threads
    pushes = [e for e in seen if e["phase"] == "push" and e["event"] == "end"]
    assert len(pushes) == 5  # four layers and the config


# -- what people see --------------------------------------------------------------------


def test_plain_progress_is_a_few_lines_without_redraws(
        cli: Any, registry: Any, proxy: FaultProxy, tmp_path: Path) -> None:
    source, image = layout_with_image(tmp_path / "src", (BIG, 4096))
    proxy.add(Rule("status", method="PUT", path=r"/blobs/uploads/", times=1))
    code, _, err = cli("copy", source, f"{proxy.host}/{repo('plain')}:t")
    assert code == 0, err
    assert "\r" not in err and "\x1b" not in err
    lines = err.splitlines()
    blobs = len(image.layers) + 1
    # a line when each item starts and one when it ends: the push-access check, the
    # destination and its blobs
    assert len(lines) == 2 * (1 + 1 + blobs), err
    for layer in image.layers:
        assert f"pushing {layer.digest.short}" in err
        assert f"pushed {layer.digest.short} (uploaded" in err
    assert "retrying" not in err  # retries only with -v
    proxy.add(Rule("status", method="PUT", path=r"/blobs/uploads/", times=1))
    code, _, err = cli("-v", "copy", source, f"{proxy.host}/{repo('plain-v')}:t")
    assert code == 0, err
    assert "retrying in 0.0 s (attempt 2/6): 503 Service Unavailable" in err, err


def test_quiet_prints_only_the_result(cli: Any, app: Path, tmp_path: Path) -> None:
    code, out, err = cli("export", app, "-o", f"oci:{tmp_path / 'q'}:1", "-q")
    assert code == 0 and err == "", err
    assert out.startswith("sha256:") and len(out.splitlines()) == 1
    code, loud_out, loud_err = cli("export", app, "-o", f"oci:{tmp_path / 'l'}:1")
    assert code == 0 and "built runtime layer app" in loud_err and "report" in loud_err
    assert loud_out.split()[0] == out.split()[0]
    code, out, err = cli("append", "scratch", "--layer", f"{app / 'config'}:/etc/x", "-o",
                         f"oci:{tmp_path / 'a'}:1", "-q", "--json")
    assert code == 0 and err == "", err
    assert json.loads(out)["digest"].startswith("sha256:")


def test_the_live_view_redraws_on_a_real_terminal(registry: Any, proxy: FaultProxy,
                                                  tmp_path: Path) -> None:
    """stderr a pty: lines are redrawn in place, finished items and retries are printed
    above them, and the result still goes to stdout alone."""
    source, image = layout_with_image(tmp_path / "src", (BIG, 4096))
    proxy.add(Rule("status", method="PUT", path=r"/blobs/uploads/", times=1))
    master, slave = os.openpty()
    env = dict(os.environ, TERM="xterm", COLUMNS="120", OCIFORGE_RETRY_BASE="0")
    env.pop("NO_COLOR", None)
    with subprocess.Popen(
            [sys.executable, "-m", "ociforge", "copy", source, f"{proxy.host}/{repo('tty')}:t",
             f"oci:{tmp_path / 'copy'}:t"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env) as proc:
        os.close(slave)
        drawn = bytearray()
        while True:
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            drawn += data
        out = proc.stdout.read() if proc.stdout else b""
        assert proc.wait(timeout=60) == 0, drawn.decode(errors="replace")
    os.close(master)
    text = drawn.decode(errors="replace")
    assert text.count("\r\x1b[2K") >= 4, text   # lines erased and drawn again in place
    for layer in image.layers:
        assert f"pushed {layer.digest.short} (uploaded" in text
    assert "retrying in 0.0 s (attempt 2/6): 503 Service Unavailable" in text
    assert f"wrote oci:{tmp_path / 'copy'}:t" in text
    assert out.decode().count("sha256:") == 2 and b"\x1b" not in out


def test_help_and_version_do_not_load_the_drawing_library() -> None:
    code = ("import sys\nfrom ociforge.cli import main\n"
            "for argv in (['--version'], ['--help'], ['export', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "assert 'rich' not in sys.modules, 'rich was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_updates_are_throttled_and_the_end_is_exact() -> None:
    from ociforge.progress import Progress

    seen: list[ProgressEvent] = []
    with Progress(seen.append).task("write", "x", 10_000) as task:
        for _ in range(10_000):
            task.advance(1)
    kinds = [e["event"] for e in seen]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert kinds.count("progress") < 100  # 10,000 updates, a handful of events
    assert seen[-1]["done"] == seen[-1]["total"] == 10_000


# -- cancelling -------------------------------------------------------------------------


def _cancel_when(predicate: Any) -> tuple[threading.Event, list[ProgressEvent], Any]:
    cancel = threading.Event()
    seen: list[ProgressEvent] = []

    def callback(event: ProgressEvent) -> None:
        seen.append(event)
        if predicate(event):
            cancel.set()

    return cancel, seen, callback


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_cancelling_mid_push_leaves_nothing_half_written(
        registry: Any, app: Path, tmp_path: Path, every_update: None) -> None:
    from ociforge.app.export import ExportRequest, export_app
    from ociforge.cli import main

    cancel, seen, callback = _cancel_when(
        lambda e: e["phase"] == "push" and e["event"] == "progress" and 0 < e["done"] < BIG
        and e["total"] > BIG)
    out = tmp_path / "out"
    out.mkdir()
    layout = f"oci:{out / 'lay'}:1"
    name = repo("cancel")
    ref = f"{registry.host}/{name}:1"
    archive = f"oci-archive:{out / 'app.tar'}:1"
    request = ExportRequest(str(app), [layout, ref, archive],
                            options=Options(on_progress=callback, cancel=cancel))
    with pytest.raises(Cancelled) as caught:
        export_app(request)
    assert caught.value.completed == [layout]
    assert caught.value.not_completed == [ref, archive]
    final = seen[-1]
    assert final["event"] == "finish" and final["status"] == "cancelled"
    assert final["exit_code"] == 130
    assert final["completed"] == [layout] and final["not_completed"] == [ref, archive]
    # the registry got no manifest, the archive was never begun, the layout is whole
    resp = requests.get(f"http://{registry.host}/v2/{name}/manifests/1",
                        headers={"Accept": ACCEPT}, timeout=10)
    assert resp.status_code == 404
    assert not (out / "app.tar").exists() and not _leftovers(out)
    assert main(["verify", layout]) == 0


def test_cancelling_mid_write_removes_the_new_archive_and_layout(
        app: Path, tmp_path: Path, every_update: None) -> None:
    from ociforge.app.export import ExportRequest, export_app

    for first in ("archive", "layout"):
        out = tmp_path / first
        out.mkdir()
        target = {"archive": f"oci-archive:{out / 'app.tar'}",
                  "layout": f"oci:{out / 'lay'}:1"}[first]
        cancel, seen, callback = _cancel_when(
            lambda e: e["phase"] == "write" and e["event"] == "progress" and e["done"] > 0)
        request = ExportRequest(str(app), [target, f"oci:{out / 'second'}"],
                                options=Options(on_progress=callback, cancel=cancel))
        with pytest.raises(Cancelled) as caught:
            export_app(request)
        assert caught.value.completed == []
        assert list(out.iterdir()) == [], list(out.rglob("*"))
        assert seen[-1]["status"] == "cancelled"


def test_cancelling_while_building_writes_nothing(app: Path, tmp_path: Path,
                                                  every_update: None) -> None:
    from ociforge.app.export import ExportRequest, export_app
    from ociforge.layers.workspace import blob_dir

    before = set(blob_dir().iterdir())
    cancel, seen, callback = _cancel_when(
        lambda e: e["phase"] == "build" and e["event"] == "progress" and e["done"] > 0)
    request = ExportRequest(str(app), [f"oci:{tmp_path / 'lay'}:1"],
                            options=Options(on_progress=callback, cancel=cancel))
    with pytest.raises(Cancelled) as caught:
        export_app(request)
    assert caught.value.not_completed == [f"oci:{tmp_path / 'lay'}:1"]
    assert not (tmp_path / "lay").exists()
    assert set(blob_dir().iterdir()) == before  # the half-built blob is gone
    assert [e for e in seen if e["event"] == "end"][-1]["status"] == "cancelled"


def test_cancelling_while_waiting_to_retry_stops_at_once(
        registry: Any, proxy: FaultProxy, tmp_path: Path) -> None:
    """A 503 asking for a minute's wait: the cancel ends the wait, and no request follows."""
    from ociforge.pipeline.copy import copy_image

    source, _ = layout_with_image(tmp_path / "src", (4096,))
    rule = proxy.add(Rule("status", method="PUT", path=r"/manifests/", times=5,
                          headers={"Retry-After": "60"}))
    cancel, seen, callback = _cancel_when(lambda e: e["event"] == "retry")
    with pytest.raises(Cancelled):
        copy_image(source, [f"{proxy.host}/{repo('wait')}:t"],
                   Options(registry=RegistryOptions(retry_base=0.5),
                           on_progress=callback, cancel=cancel))
    assert rule.fired == 1
    retry = next(e for e in seen if e["event"] == "retry")
    assert retry["delay"] == 60.0 and retry["reason"] == "503 Service Unavailable"
