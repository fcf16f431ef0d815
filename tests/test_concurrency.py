"""Several ociforge processes writing to one place at once (issue 6 item 6).

Real processes, started together: four writing different tags into one OCI
layout (their images share a base layer, so they also race on writing the
same blob), and four pushing different tags of images sharing blobs to one
repository.  All must succeed and leave a valid result: every tag present,
index.json valid, every blob sound, the registry serving every tag.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import requests
from imagegen import PLATFORM, make_layer, write_layout

from ociforge.model.mutate import append_layers, scratch
from ociforge.options import Options

ROOT = Path(__file__).resolve().parent.parent
WRITERS = 4


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OCIFORGE_RETRY_BASE"] = "0"
    return env


def _sources(tmp: Path) -> list[tuple[str, str]]:
    """WRITERS images sharing a 2 MiB base layer: [(oci location, digest)]."""
    base = make_layer(tmp / "blobs", 2 << 20, name="base.bin")
    out = []
    for i in range(WRITERS):
        own = make_layer(tmp / "blobs", 64 << 10, name=f"own{i}.bin")
        image = append_layers(scratch(PLATFORM), [base, own], epoch=0)
        out.append((write_layout(image, tmp / f"src{i}"), str(image.digest)))
    return out


def _run_together(commands: list[list[str]], cwd: Path) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen(cmd, env=_env(), cwd=cwd, stdout=subprocess.PIPE,
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
                                env=_env(), capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0, verify.stderr


def test_processes_pushing_to_one_repository(tmp_path: Path, registry: Any) -> None:
    sources = _sources(tmp_path)
    repo = f"concurrency/app-{uuid.uuid4().hex[:6]}"
    commands = [[sys.executable, "-m", "ociforge", "copy", src, f"{registry.host}/{repo}:tag{i}"]
                for i, (src, _) in enumerate(sources)]
    for result in _run_together(commands, tmp_path):
        assert result.returncode == 0, result.stderr
    accept = "application/vnd.oci.image.manifest.v1+json"
    for i, (_, digest) in enumerate(sources):
        resp = requests.get(f"http://{registry.host}/v2/{repo}/manifests/tag{i}",
                            headers={"Accept": accept}, timeout=5)
        assert resp.status_code == 200
        assert "sha256:" + hashlib.sha256(resp.content).hexdigest() == digest
        for desc in json.loads(resp.content)["layers"]:
            blob = requests.get(f"http://{registry.host}/v2/{repo}/blobs/{desc['digest']}",
                                timeout=5)
            assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == desc["digest"]
    tags = requests.get(f"http://{registry.host}/v2/{repo}/tags/list", timeout=5).json()["tags"]
    assert sorted(tags) == [f"tag{i}" for i in range(WRITERS)]


def test_threads_writing_one_layout_in_process(tmp_path: Path) -> None:
    """The library, used from threads of one process, obeys the same rules."""
    from concurrent.futures import ThreadPoolExecutor

    from ociforge.stores.layout import Layout, LayoutLocation

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
                            env=_env(), capture_output=True, text=True, timeout=60)
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
                             f"docker-archive:{target}", "--json"], env=_env(),
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
    env = dict(_env(), DOCKER_CONFIG=str(config))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(n + 1)], env=env,
                              stderr=subprocess.PIPE, text=True) for n in range(WRITERS)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    stored = json.loads((config / "config.json").read_text())["auths"]
    assert len(stored) == WRITERS * 25, f"{WRITERS * 25 - len(stored)} credentials were lost"
    assert sorted(p.name for p in config.iterdir()) == ["config.json"], "no lock or temp left"
    assert (config / "config.json").stat().st_mode & 0o077 == 0
