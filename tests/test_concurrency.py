"""Several ociforge processes writing to one place at once.

Real processes, started together: writers adding different tags into one OCI
layout that none of them has created yet (their images share a base layer, so
they also race on writing the same blob), ten writers into a fresh layout each
round for 25 rounds, a creator interrupted mid-creation while another writer
uses the layout, and eight pushing different tags of images sharing most of
their blobs to one repository.  All must succeed and leave a valid result: every tag present,
index.json valid, every blob sound, the registry serving every tag.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from imagegen import PLATFORM, make_layer, write_layout
from tools import ociforge_env, require_tool, run

from ociforge.model.mutate import append_layers, scratch
from ociforge.options import Options
from ociforge.stores.layout import WRITERS_LOCK_NAME, Layout
from ociforge.stores.layoutlocation import LayoutLocation
from ociforge.stores.validate import verify_artifact

WRITERS = 4


def _sources(tmp: Path) -> list[tuple[str, str]]:
    """WRITERS images sharing a 2 MiB base layer: [(oci location, digest)]."""
    base = make_layer(tmp / "blobs", 2 << 20, name="base.bin")
    out = []
    for i in range(WRITERS):
        own = make_layer(tmp / "blobs", 64 << 10, name=f"own{i}.bin")
        image = append_layers(scratch(PLATFORM), [base, own], epoch=0)
        out.append((write_layout(image, tmp / f"src{i}"), str(image.digest)))
    return out


def _run_together(commands: list[list[str]], cwd: Path,
                  env: dict[str, str] | None = None) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen(cmd, env=env or ociforge_env(), cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for cmd in commands]
    results = []
    for proc, cmd in zip(procs, commands, strict=True):
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(cmd, proc.returncode, out, err))
    return results


def test_processes_writing_tags_into_one_layout(tmp_path: Path) -> None:
    sources = _sources(tmp_path)
    for round_ in range(2):
        dest = tmp_path / f"shared{round_}"  # created by the racing writers themselves
        commands = [[sys.executable, "-m", "ociforge", "copy", src, f"oci:{dest}:tag{i}"]
                    for i, (src, _) in enumerate(sources)]
        for result in _run_together(commands, tmp_path):
            assert result.returncode == 0, result.stderr
            assert "Traceback" not in result.stderr
        index = json.loads((dest / "index.json").read_text())
        tags = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
                for m in index["manifests"]}
        assert tags == {f"tag{i}": digest for i, (_, digest) in enumerate(sources)}
        assert json.loads((dest / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
        for blob in (dest / "blobs" / "sha256").iterdir():
            assert not blob.name.startswith("."), f"temporary file left: {blob.name}"
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
        verify = subprocess.run([sys.executable, "-m", "ociforge", "verify", f"oci:{dest}:tag0"],
                                env=ociforge_env(), capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0, verify.stderr


PUSHERS = 8
SHARED_SMALL = 12


def _pushed_sources(tmp: Path) -> list[tuple[str, str]]:
    """PUSHERS images sharing a 2 MiB layer and SHARED_SMALL small ones, each with a layer
    of its own: the small shared blobs are committed by several pushers at nearly the same
    moment, the case where registry 2.8 briefly fails to read a blob it has."""
    base = make_layer(tmp / "blobs", 2 << 20, name="base.bin")
    small = [make_layer(tmp / "blobs", 4 << 10, name=f"small{j}.bin")
             for j in range(SHARED_SMALL)]
    out = []
    for i in range(PUSHERS):
        own = make_layer(tmp / "blobs", 64 << 10, name=f"own{i}.bin")
        image = append_layers(scratch(PLATFORM), [base, *small, own], epoch=0)
        out.append((write_layout(image, tmp / f"src{i}"), str(image.digest)))
    return out


def test_processes_pushing_to_one_repository(tmp_path: Path, registry: Any) -> None:
    """Eight pushes of images sharing most blobs, started together into one repository:
    every one succeeds, whatever the registry answered to the losers of each race (its
    log, attached to a failure report, shows those answers)."""
    sources = _pushed_sources(tmp_path)
    repo = f"concurrency/app-{uuid.uuid4().hex[:6]}"
    commands = [[sys.executable, "-m", "ociforge", "copy", src, f"{registry.host}/{repo}:tag{i}"]
                for i, (src, _) in enumerate(sources)]
    # retries back off as they do for users (briefly): a registry answering 500 while
    # another writer's commit rewrites a link file is answered again after a pause, not
    # six times within the same millisecond
    for result in _run_together(commands, tmp_path, ociforge_env(OCIFORGE_RETRY_BASE="0.05")):
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    accept = "application/vnd.oci.image.manifest.v1+json"
    for i, (_, digest) in enumerate(sources):
        resp = requests.get(f"http://{registry.host}/v2/{repo}/manifests/tag{i}",
                            headers={"Accept": accept}, timeout=30)
        assert resp.status_code == 200
        assert "sha256:" + hashlib.sha256(resp.content).hexdigest() == digest
        for desc in json.loads(resp.content)["layers"]:
            blob = requests.get(f"http://{registry.host}/v2/{repo}/blobs/{desc['digest']}",
                                timeout=30)
            assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == desc["digest"]
    tags = requests.get(f"http://{registry.host}/v2/{repo}/tags/list", timeout=30).json()["tags"]
    assert sorted(tags) == sorted(f"tag{i}" for i in range(PUSHERS))


def test_threads_writing_one_layout_in_process(tmp_path: Path) -> None:
    """The library, used from threads of one process, obeys the same rules."""
    from concurrent.futures import ThreadPoolExecutor

    from ociforge.stores.layout import Layout
    from ociforge.stores.layoutlocation import LayoutLocation

    sources = _sources(tmp_path)
    dest = tmp_path / "threads"

    def write(i: int) -> str:
        artifact = LayoutLocation(Path(sources[i][0].split(":")[1])).read(Options())
        return LayoutLocation(dest, f"t{i}").write(artifact, Options()).digest

    with ThreadPoolExecutor(WRITERS) as pool:
        digests = list(pool.map(write, range(WRITERS)))
    assert digests == [d for _, d in sources]
    assert sorted(Layout(dest).tags()) == [f"t{i}" for i in range(WRITERS)]


def test_processes_racing_for_the_same_tag(tmp_path: Path) -> None:
    """Same tag from several writers: all succeed, exactly one wins, nothing is torn."""
    sources = _sources(tmp_path)
    dest = tmp_path / "same-tag"
    commands = [[sys.executable, "-m", "ociforge", "copy", src, f"oci:{dest}:latest"]
                for src, _ in sources]
    for result in _run_together(commands, tmp_path):
        assert result.returncode == 0, result.stderr
    index = json.loads((dest / "index.json").read_text())
    assert len(index["manifests"]) == 1
    assert index["manifests"][0]["digest"] in {d for _, d in sources}
    verify = subprocess.run([sys.executable, "-m", "ociforge", "verify", f"oci:{dest}:latest"],
                            env=ociforge_env(), capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr


def test_processes_writing_one_archive_file(tmp_path: Path) -> None:
    """Archives are renamed into place whole: the survivor is one complete archive."""
    sources = _sources(tmp_path)
    target = tmp_path / "same.tar"
    commands = [[sys.executable, "-m", "ociforge", "copy", src, f"docker-archive:{target}"]
                for src, _ in sources]
    for result in _run_together(commands, tmp_path):
        assert result.returncode == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".same.tar")] == []
    verify = subprocess.run([sys.executable, "-m", "ociforge", "verify",
                             f"docker-archive:{target}", "--json"], env=ociforge_env(),
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    assert json.loads(verify.stdout)["digest"] in {d for _, d in sources}


def test_processes_storing_credentials_at_once_keep_every_one(tmp_path: Path) -> None:
    """config.json is read, changed and written under a lock: no login loses another's.
    (Four processes storing 25 registries each; without the lock most entries vanish.)"""
    config = tmp_path / "docker"
    script = ("import sys\nfrom ociforge.remote.credentials import store\n"
              "for i in range(25):\n"
              "    store(f'127.0.0.{sys.argv[1]}:{5000 + i}', 'user', 'pw')\n")
    env = ociforge_env(DOCKER_CONFIG=str(config))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(n + 1)], env=env,
                              stderr=subprocess.PIPE, text=True) for n in range(WRITERS)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    stored = json.loads((config / "config.json").read_text())["auths"]
    assert len(stored) == WRITERS * 25, f"{WRITERS * 25 - len(stored)} credentials were lost"
    assert sorted(p.name for p in config.iterdir()) == ["config.json"], "no lock or temp left"
    assert (config / "config.json").stat().st_mode & 0o077 == 0


# -- many writers, one layout ---------------------------------------------------------

ROUNDS = 25
MANY = 10
HERE = Path(__file__).resolve().parent


def _tiny_sources(tmp: Path, count: int) -> list[tuple[Path, str]]:
    """``count`` tiny images sharing a base layer: [(source layout folder, digest)]."""
    base = make_layer(tmp / "blobs", 4 << 10, name="base.bin")
    out = []
    for i in range(count):
        own = make_layer(tmp / "blobs", 512, name=f"own{i}.bin")
        image = append_layers(scratch(PLATFORM), [base, own], epoch=0)
        write_layout(image, tmp / f"src{i}")
        out.append((tmp / f"src{i}", str(image.digest)))
    return out


def _sound(root: Path, expected: dict[str, str]) -> None:
    """Exactly the expected tags, each resolving, every blob whole, nothing left over."""
    layout = Layout(root)
    assert sorted(layout.tags()) == sorted(expected)
    for tag, digest in expected.items():
        artifact = layout.read(tag)
        assert str(artifact.digest) == digest
        report = verify_artifact(artifact)
        assert report.ok, report.problems
    for blob in (root / "blobs" / "sha256").iterdir():
        assert not blob.name.startswith("."), f"temporary file left: {blob.name}"
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]


def test_ten_writers_race_into_a_fresh_layout_every_round(tmp_path: Path, cli) -> None:
    """10 processes x 25 rounds; each round all ten start together into a folder none of
    them has created.  Every write succeeds and every tag of every round resolves."""
    tool = require_tool("oci-image-tool")
    sources = _tiny_sources(tmp_path, MANY)
    roots = [str(tmp_path / f"round{r}" / "layout") for r in range(ROUNDS)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(MANY)
    results = ctx.Queue()
    from layout_writers import stress_writer

    procs = [ctx.Process(target=stress_writer, args=(i, str(src), roots, barrier, results))
             for i, (src, _) in enumerate(sources)]
    for proc in procs:
        proc.start()
    outcomes = []
    try:
        for _ in range(MANY * ROUNDS):
            outcomes.append(results.get(timeout=120))
    except queue.Empty:
        pytest.fail(f"writers stopped answering after {len(outcomes)} writes")
    finally:
        for proc in procs:
            proc.join(30)
            if proc.exitcode is None:
                proc.kill()
    failed = [o for o in outcomes if o[2] != "ok"]
    assert not failed, failed[:3]
    assert all(proc.exitcode == 0 for proc in procs)
    for round_, root in enumerate(roots):
        expected = {f"w{i}": digest for i, (_, digest) in enumerate(sources)}
        assert {(o[1], o[3]) for o in outcomes if o[0] == round_} == {
            (i, digest) for i, (_, digest) in enumerate(sources)}
        _sound(Path(root), expected)
        proc = run([tool, "validate", "--type", "image", root])
        assert "Validation succeeded" in proc.stdout + proc.stderr
    for i in range(MANY):
        code, _, err = cli("verify", f"oci:{roots[-1]}:w{i}")
        assert code == 0, err


def _gated_writer(source: Path, dest: Path, tag: str, fifo: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "layout_writers.py"), str(source), str(dest), tag,
         str(fifo)], env=ociforge_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line != "blocked\n":
        proc.kill()
        pytest.fail(f"writer did not reach its gated layer: {line!r} {proc.communicate()}")
    return proc


def _last_layer_bytes(source: Path) -> bytes:
    image = Layout(source).read("t")
    with image.layers[-1].open() as reader:  # type: ignore[union-attr]
        return reader.read()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_creator_interrupted_mid_creation_leaves_the_other_writer_whole(
        sig: int, tmp_path: Path, cli) -> None:
    """A creates the layout and stops inside its write; B joins and stops inside its own;
    A is interrupted (its clean-up runs on SIGINT).  B's blobs are all still there when it
    commits its tag: B exits 0 over a complete, valid layout."""
    tool = require_tool("oci-image-tool")
    (src_a, _), (src_b, digest_b) = _tiny_sources(tmp_path, 2)
    dest = tmp_path / "new" / "deeper" / "layout"
    fifo_a, fifo_b = tmp_path / "gate-a", tmp_path / "gate-b"
    os.mkfifo(fifo_a)
    os.mkfifo(fifo_b)
    creator = _gated_writer(src_a, dest, "a", fifo_a)
    other = None
    try:
        other = _gated_writer(src_b, dest, "b", fifo_b)
        os.kill(creator.pid, sig)
        creator.communicate(timeout=30)
        assert creator.returncode != 0
        with open(fifo_b, "wb") as gate:
            gate.write(_last_layer_bytes(src_b))
        out, err = other.communicate(timeout=60)
    finally:
        for proc in (creator, other):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert other.returncode == 0, err
    assert out.strip() == digest_b
    _sound(dest, {"b": digest_b})
    proc = run([tool, "validate", "--type", "image", str(dest)])
    assert "Validation succeeded" in proc.stdout + proc.stderr
    code, _, err = cli("verify", f"oci:{dest}:b")
    assert code == 0, err


def test_a_creator_interrupted_alone_removes_what_it_created(tmp_path: Path) -> None:
    ((src, _),) = _tiny_sources(tmp_path, 1)
    dest = tmp_path / "new" / "deeper" / "layout"
    fifo = tmp_path / "gate"
    os.mkfifo(fifo)
    creator = _gated_writer(src, dest, "a", fifo)
    try:
        assert (dest / "oci-layout").is_file()
        os.kill(creator.pid, signal.SIGINT)
        creator.communicate(timeout=30)
    finally:
        if creator.poll() is None:
            creator.kill()
            creator.wait()
    assert creator.returncode != 0
    assert not (tmp_path / "new").exists()


def test_a_writer_that_loses_its_half_created_layout_creates_it_again(tmp_path: Path) -> None:
    """The clean-up of a failed creator (writers lock held exclusively, the folder
    removed) runs while another writer waits to join: that writer starts over in a new
    folder and finishes a complete layout, instead of writing into the removed one."""
    import fcntl

    ((src, digest),) = _tiny_sources(tmp_path, 1)
    image = LayoutLocation(src, "t").read(Options())
    dest = tmp_path / "layout"
    dest.mkdir()
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    fd = os.open(dest / WRITERS_LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a failed creator, cleaning up
    outcome: list[object] = []
    writer = threading.Thread(
        target=lambda: outcome.append(LayoutLocation(dest, "b").write(image, Options())))
    writer.start()
    writer.join(1.0)
    assert writer.is_alive(), "the writer must wait for the clean-up to finish"
    for entry in dest.iterdir():  # what the clean-up removes, lock file included
        entry.unlink()
    dest.rmdir()
    os.close(fd)
    writer.join(30)
    assert not writer.is_alive()
    assert outcome and outcome[0].digest == digest  # type: ignore[attr-defined]
    _sound(dest, {"b": digest})
