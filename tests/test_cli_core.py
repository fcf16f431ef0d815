"""The core commands end to end, in process: append, copy, inspect, verify, and bad input."""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from image_factory import make_index, tar_bytes

from ociforge.model import mediatypes as mt
from ociforge.model.image import Image
from ociforge.model.index import Index
from ociforge.stores.layout import Layout

AMD64 = ("--platform", "linux/amd64")


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "sub" / "data.bin").write_bytes(bytes(range(256)))
    return root


def _json(out: str) -> Any:
    return json.loads(out)


def _layer_names(blob: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        return tar.getnames()


def test_append_writes_every_destination_with_one_digest(cli, tmp_path: Path) -> None:
    src = _tree(tmp_path / "app")
    outs = [f"oci:{tmp_path}/lay:v1", f"oci-archive:{tmp_path}/o.tar", f"{tmp_path}/d.tar"]
    args = ["append", "scratch", "--layer", f"{src}:/app", *AMD64, "--json"]
    for out in outs:
        args += ["-o", out]
    code, out, err = cli(*args)
    assert code == 0, err
    result = _json(out)
    assert result["digest"].startswith("sha256:")
    assert [d["digest"] for d in result["destinations"]] == [result["digest"]] * 3
    assert len(result["destinations"]) == 3
    for where in (f"oci:{tmp_path}/lay:v1", f"oci-archive:{tmp_path}/o.tar", f"{tmp_path}/d.tar"):
        code, out, err = cli("inspect", where)
        assert code == 0, err
        summary = _json(out)
        assert summary["digest"] == result["digest"]
        assert summary["platform"] == "linux/amd64"
        assert len(summary["layers"]) == 1
        code, out, err = cli("verify", where)
        assert code == 0, err
        assert result["digest"] in out
    image = Layout(tmp_path / "lay").read("v1")
    assert isinstance(image, Image)
    with image.layers[0].open() as reader:
        names = _layer_names(gzip.decompress(reader.read()))
    assert names == ["app", "app/hello.txt", "app/run.sh", "app/sub", "app/sub/data.bin"]


def test_config_options(cli, tmp_path: Path) -> None:
    src = _tree(tmp_path / "app")
    code, out, err = cli(
        "append", "scratch", "--layer", str(src), *AMD64, "-o", f"oci:{tmp_path}/lay",
        "--env", "A=1", "--env", "B=two words", "--entrypoint", '["/bin/sh", "-c"]',
        "--cmd", "echo 'hi there'", "--workdir", "/app", "--user", "1000:1000",
        "--label", "org.example=yes", "--expose", "8080", "--expose", "53/udp",
        "--volume", "/data", "--stop-signal", "SIGTERM", "--annotation",
        "org.opencontainers.image.title=demo", "--source-date-epoch", "1700000000",
    )
    assert code == 0, err
    code, out, err = cli("inspect", f"oci:{tmp_path}/lay", "--config")
    config = _json(out)
    runtime = config["config"]
    assert runtime["Env"] == ["A=1", "B=two words"]
    assert runtime["Entrypoint"] == ["/bin/sh", "-c"]
    assert runtime["Cmd"] == ["echo", "hi there"]
    assert runtime["WorkingDir"] == "/app"
    assert runtime["User"] == "1000:1000"
    assert runtime["Labels"] == {"org.example": "yes"}
    assert runtime["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert runtime["Volumes"] == {"/data": {}}
    assert runtime["StopSignal"] == "SIGTERM"
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    code, out, err = cli("inspect", f"oci:{tmp_path}/lay", "--manifest")
    notes = _json(out)["annotations"]
    assert notes["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    assert notes["org.opencontainers.image.title"] == "demo"
    assert "org.opencontainers.image.base.name" not in notes  # scratch has no base
    # the default layer path is /<basename>
    image = Layout(tmp_path / "lay").read(None)
    assert isinstance(image, Image)
    with image.layers[0].open() as reader:
        assert "app/hello.txt" in _layer_names(gzip.decompress(reader.read()))


def test_append_on_a_base_records_the_base(cli, tmp_path: Path) -> None:
    src = _tree(tmp_path / "app")
    base = f"oci:{tmp_path}/base:1"
    assert cli("append", "scratch", "--layer", f"{src}/hello.txt", *AMD64, "-o", base)[0] == 0
    base_digest = str(Layout(tmp_path / "base").find("1").digest)
    code, out, err = cli("append", base, "--layer", f"{src}/sub:/opt/sub", "--env", "X=1",
                         "-o", f"oci:{tmp_path}/top", "--json")
    assert code == 0, err
    code, out, _ = cli("inspect", f"oci:{tmp_path}/top", "--manifest")
    manifest = _json(out)
    assert len(manifest["layers"]) == 2
    # a local base is known by its digest; base.name is only for registry references
    assert "org.opencontainers.image.base.name" not in manifest["annotations"]
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == base_digest
    code, out, _ = cli("inspect", f"oci:{tmp_path}/top", "--config")
    config = _json(out)
    assert len(config["rootfs"]["diff_ids"]) == 2
    assert len([h for h in config["history"] if not h.get("empty_layer")]) == 2


def test_tar_layers_are_added_as_they_are(cli, tmp_path: Path) -> None:
    raw = tar_bytes({"etc/motd": b"welcome\n"})
    tgz = tmp_path / "rootfs.tar.gz"
    tgz.write_bytes(gzip.compress(raw, mtime=0))
    code, out, err = cli("append", "scratch", "--layer", str(tgz), *AMD64,
                         "-o", f"oci:{tmp_path}/lay", "--json")
    assert code == 0, err
    (layer,) = _json(out)["layers"]
    assert layer["digest"] == "sha256:" + hashlib.sha256(tgz.read_bytes()).hexdigest()
    assert layer["diff_id"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    # with a container path the tar file itself is copied in
    code, out, err = cli("append", "scratch", "--layer", f"{tgz}:/srv/", *AMD64,
                         "-o", f"oci:{tmp_path}/lay2", "--json")
    assert code == 0, err
    assert _json(out)["layers"][0]["digest"] != layer["digest"]


def test_remove_writes_a_whiteout(cli, tmp_path: Path) -> None:
    code, _out, err = cli("append", "scratch", "--remove", "/etc/secret", *AMD64,
                         "-o", f"oci:{tmp_path}/lay")
    assert code == 0, err
    image = Layout(tmp_path / "lay").read(None)
    assert isinstance(image, Image)
    with image.layers[0].open() as reader:
        assert "etc/.wh.secret" in _layer_names(gzip.decompress(reader.read()))


def test_docker_format_and_compressions(cli, tmp_path: Path) -> None:
    src = _tree(tmp_path / "app")
    code, out, err = cli("append", "scratch", "--layer", str(src), *AMD64, "--format", "docker",
                         "-o", f"{tmp_path}/d.tar", "--json")
    assert code == 0, err
    code, out, _ = cli("inspect", f"{tmp_path}/d.tar", "--manifest")
    manifest = _json(out)
    assert manifest["mediaType"] == mt.DOCKER_MANIFEST
    assert manifest["layers"][0]["mediaType"] == mt.DOCKER_LAYER_GZIP
    assert "annotations" not in manifest
    for compression, media_type in (("zstd", mt.OCI_LAYER_ZSTD), ("none", mt.OCI_LAYER)):
        code, out, err = cli("append", "scratch", "--layer", str(src), *AMD64, "--compression",
                             compression, "-o", f"oci:{tmp_path}/{compression}", "--json")
        assert code == 0, err
        assert _json(out)["layers"][0]["mediaType"] == media_type
        assert cli("verify", f"oci:{tmp_path}/{compression}")[0] == 0


def test_platform_all_appends_to_every_platform(cli, tmp_path: Path) -> None:
    index = make_index(tmp_path / "src")
    Layout(tmp_path / "base").put(index, "multi")
    src = _tree(tmp_path / "app")
    code, _out, err = cli("append", f"oci:{tmp_path}/base:multi", "--platform", "all",
                         "--layer", f"{src}:/app", "-o", f"oci:{tmp_path}/out:multi", "--json")
    assert code == 0, err
    result = Layout(tmp_path / "out").read("multi")
    assert isinstance(result, Index)
    assert result.media_type == mt.OCI_INDEX
    platforms = sorted(str(d.platform) for d, _ in result.children)
    assert platforms == ["linux/amd64", "linux/arm64"]
    for (_, new), (_, old) in zip(result.children, index.children, strict=True):
        assert isinstance(new, Image) and isinstance(old, Image)
        assert len(new.layers) == len(old.layers) + 1
        assert new.manifest["annotations"]["org.opencontainers.image.base.digest"] == str(
            old.digest)
    assert cli("verify", f"oci:{tmp_path}/out:multi")[0] == 0
    # one platform: that image changed, the index keeps the other as it is
    code, _out, err = cli("append", f"oci:{tmp_path}/base:multi", "--platform", "linux/arm64",
                         "--layer", f"{src}:/app", "-o", f"oci:{tmp_path}/arm", "--json")
    assert code == 0, err
    arm = Layout(tmp_path / "arm").read(None)
    assert isinstance(arm, Index)
    assert arm.children[0] == index.children[0]
    assert arm.children[1][1] == result.children[1][1]
    # a docker archive holds one image: that platform's
    code, _out, err = cli("append", f"oci:{tmp_path}/base:multi", "--platform", "linux/arm64",
                         "--layer", f"{src}:/app", "-o", f"{tmp_path}/arm.tar", "--json")
    assert code == 0, err
    assert _json(_out)["digest"] == str(result.children[1][1].digest)


def test_copy_keeps_digests_across_every_format(cli, tmp_path: Path) -> None:
    src = _tree(tmp_path / "app")
    code, out, err = cli("append", "scratch", "--layer", str(src), *AMD64,
                         "-o", f"oci:{tmp_path}/a:t", "--json")
    digest = _json(out)["digest"]
    chain = [f"oci:{tmp_path}/a:t", f"{tmp_path}/b.tar", f"oci-archive:{tmp_path}/c.tar:x",
             f"docker-archive:{tmp_path}/d.tar:me/app:1", f"oci:{tmp_path}/e:y"]
    for source, dest in itertools.pairwise(chain):
        code, out, err = cli("copy", source, dest, "--json")
        assert code == 0, err
        assert _json(out)["digest"] == digest
    code, out, _ = cli("inspect", chain[-1], "--raw")
    assert hashlib.sha256(out.rstrip("\n").encode()).hexdigest() == digest.split(":")[1]


def test_copy_of_an_index(cli, tmp_path: Path) -> None:
    index = make_index(tmp_path / "src")
    Layout(tmp_path / "base").put(index, "m")
    code, out, err = cli("copy", f"oci:{tmp_path}/base:m", f"oci:{tmp_path}/all:m",
                         "--platform", "all", "--json")
    assert code == 0, err
    assert _json(out)["digest"] == str(index.digest)
    code, out, err = cli("copy", f"oci:{tmp_path}/base:m", f"oci:{tmp_path}/one",
                         "--platform", "linux/arm64", "--json")
    assert code == 0, err
    arm = next(c for d, c in index.children if str(d.platform) == "linux/arm64")
    assert _json(out)["digest"] == str(arm.digest)
    code, out, err = cli("copy", f"oci:{tmp_path}/base:m", f"oci:{tmp_path}/none",
                         "--platform", "linux/s390x")
    assert code == 2 and "available: linux/amd64, linux/arm64" in err
    code, out, _ = cli("inspect", f"oci:{tmp_path}/base:m")
    assert len(_json(out)["manifests"]) == 2


def test_verify_names_the_corrupt_blob(cli, tmp_path: Path) -> None:
    src = _tree(tmp_path / "app")
    cli("append", "scratch", "--layer", str(src), *AMD64, "-o", f"oci:{tmp_path}/lay")
    image = Layout(tmp_path / "lay").read(None)
    assert isinstance(image, Image)
    path = Layout(tmp_path / "lay").blob_path(image.layers[0].digest)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))
    code, out, err = cli("verify", f"oci:{tmp_path}/lay")
    assert code == 1
    assert str(image.layers[0].digest) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, out, err = cli("verify", f"oci:{tmp_path}/lay", "--json")
    assert code == 1
    assert _json(out)["ok"] is False
    # a broken config is also a failed verification (exit 1), not bad input
    config = Layout(tmp_path / "lay").blob_path(image.config_descriptor.digest)
    os.chmod(config, 0o644)
    config.write_bytes(config.read_bytes().replace(b"amd64", b"AMD64"))
    code, out, err = cli("verify", f"oci:{tmp_path}/lay")
    assert code == 1 and str(image.config_descriptor.digest) in err


def test_default_archive_name_from_tag(cli, tmp_path: Path) -> None:
    src = _tree(tmp_path / "app")
    code, _out, err = cli("append", "scratch", "--layer", str(src), *AMD64, "--tag", "me/tool:2",
                         "-o", f"{tmp_path}/t.tar", "-o", f"oci:{tmp_path}/lay")
    assert code == 0, err
    with tarfile.open(tmp_path / "t.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["me/tool:2"]
    assert Layout(tmp_path / "lay").tags() == ["2"]


# -- bad input: exit 2, one line, nothing written ------------------------------------


def _bad_cases(tmp: Path) -> list[tuple[list[str], str]]:
    src = _tree(tmp / "app")
    (tmp / "isdir.tar").mkdir()
    return [
        (["--layer", str(tmp / "missing")], "does not exist"),
        (["--layer", str(src), "--platform", "linux/nonsense"], "architecture"),
        (["--layer", str(src), "--platform", "a/b/c/d"], "malformed platform"),
        (["--layer", str(src), "--label", "novalue"], "KEY=VALUE"),
        (["--layer", str(src), "--env", "=x"], "KEY=VALUE"),
        (["--layer", str(src), "--expose", "99999"], "port"),
        (["--layer", str(src), "--volume", "relative"], "absolute"),
        (["--layer", str(src), "--entrypoint", "[1, 2]"], "JSON array of strings"),
        (["--layer", str(src), "--entrypoint", "[broken"], "JSON"),
        (["--layer", str(src), "--compression", "zstd", "-o", f"{tmp}/z.tar"], "zstd"),
        (["--layer", str(src), "--format", "docker", "--annotation", "a=b"], "OCI"),
        (["--layer", str(src), "--remove", "relative"], "absolute"),
        (["--layer", str(src), "--tag", "Bad Name"], "reference"),
        (["--layer", str(src), "-o", f"{tmp}/isdir.tar"], "is a directory"),
        (["--layer", str(src), "-o", "foo://somewhere"], "unknown location scheme"),
        (["--layer", str(src), "-o", "scratch"], "only be a source"),
        (["--layer", str(src), "--source-date-epoch", "-5"], "out of range"),
        (["--layer", f"{src}/hello.txt:relative/path"], "must be absolute"),
        (["--layer", str(src), "--stop-signal", "FOO"], "stop signal"),
        (["--layer", str(src), "--stop-signal", "SIGRTMIN+99"], "stop signal"),
        (["--layer", str(src), "-o", f"oci:{tmp}/lay:-bad"], "not a valid tag"),
        (["--layer", str(src), "--format", "docker", "--source", "https://x.test/r"], "OCI"),
    ]


def test_bad_input_exits_2_with_one_line_and_writes_nothing(cli, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    cases = _bad_cases(work)
    for extra, fragment in cases:
        before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        outputs = [] if "-o" in extra else ["-o", f"oci:{work}/out", "-o", f"{work}/out.tar"]
        code, _out, err = cli("append", "scratch", *AMD64, *outputs, *extra)
        assert code == 2, (extra, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and fragment.lower() in lines[0].lower(), (extra, err)
        assert "Traceback" not in err
        after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        assert after == before, extra


@pytest.mark.parametrize("argv,fragment", [
    (["copy", "{t}/missing.tar", "oci:{t}/x"], "does not exist"),
    (["copy", "oci:{t}/nolayout", "oci:{t}/x"], "does not exist"),
    (["inspect", "bogus://x"], "unknown location scheme"),
    (["verify", "{t}/missing.tar"], "does not exist"),
    (["append", "scratch", "--platform", "all", "-o", "oci:{t}/x"], "multi-platform"),
])
def test_other_bad_input(cli, tmp_path: Path, argv: list[str], fragment: str) -> None:
    code, _out, err = cli(*[a.format(t=tmp_path) for a in argv])
    assert code == 2, err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_platform_of_a_single_image_base_must_match(cli, tmp_path: Path) -> None:
    src = _tree(tmp_path / "app")
    assert cli("append", "scratch", "--layer", str(src), *AMD64, "-o", f"oci:{tmp_path}/b")[0] == 0
    code, _, err = cli("append", f"oci:{tmp_path}/b", "--platform", "linux/arm64",
                       "-o", f"oci:{tmp_path}/x")
    assert code == 2 and "is linux/amd64, not linux/arm64" in err
    assert not (tmp_path / "x").exists()


def test_an_index_for_a_docker_archive_is_refused_before_any_write(cli, tmp_path: Path) -> None:
    Layout(tmp_path / "base").put(make_index(tmp_path / "src"), "m")
    code, _, err = cli("copy", f"oci:{tmp_path}/base:m", f"oci:{tmp_path}/first",
                       f"{tmp_path}/second.tar", "--platform", "all")
    assert code == 2 and "single-platform" in err
    assert not (tmp_path / "first").exists() and not (tmp_path / "second.tar").exists()


# -- annotations, base, raw bytes, progress (audit #4, #5, #6, #9, #10) ---------------

ANN = "org.opencontainers.image."


def _annotations(cli: Any, where: str) -> dict[str, str]:
    code, out, err = cli("inspect", where, "--manifest")
    assert code == 0, err
    return dict(_json(out).get("annotations") or {})


def _docker_base(cli: Any, tmp_path: Path) -> str:
    src = _tree(tmp_path / "app")
    base = f"oci:{tmp_path}/dock:1"
    code, _, err = cli("append", "scratch", "--layer", str(src), *AMD64, "--format", "docker",
                       "-o", base)
    assert code == 0, err
    return base


def test_annotations_on_a_docker_base_are_refused_unless_converted(cli, tmp_path: Path) -> None:
    base = _docker_base(cli, tmp_path)
    for asked in (["--annotation", "a=b"], ["--source", "https://git.example/app"]):
        code, _, err = cli("append", base, "-o", f"oci:{tmp_path}/out:9", *asked)
        assert code == 2, err
        assert "Docker format" in err and "--format oci" in err and len(err.splitlines()) == 1
        assert not (tmp_path / "out").exists()
    code, _, err = cli("append", base, "-o", f"oci:{tmp_path}/out:9", "--annotation", "a=b",
                       "--format", "oci")
    assert code == 0, err
    code, out, _ = cli("inspect", f"oci:{tmp_path}/out:9", "--manifest")
    assert _json(out)["mediaType"] == mt.OCI_MANIFEST
    assert _annotations(cli, f"oci:{tmp_path}/out:9")["a"] == "b"
    # without annotations a Docker base stays Docker (nothing was asked that needs OCI)
    code, _, err = cli("append", base, "-o", f"oci:{tmp_path}/plain:1", "--env", "A=1")
    assert code == 0, err
    code, out, _ = cli("inspect", f"oci:{tmp_path}/plain:1", "--manifest")
    assert _json(out)["mediaType"] == mt.DOCKER_MANIFEST


def test_zstd_layers_on_a_docker_base_need_format_oci(cli, tmp_path: Path) -> None:
    import zstandard

    base = _docker_base(cli, tmp_path)
    code, _, err = cli("append", base, "--layer", f"{tmp_path}/app", "--compression", "zstd",
                       "-o", f"oci:{tmp_path}/z")
    assert code == 2 and "--format oci" in err, err
    zst = tmp_path / "extra.tar.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(tar_bytes({"etc/motd": b"hi\n"})))
    code, _, err = cli("append", base, "--layer", str(zst), "-o", f"oci:{tmp_path}/z")
    assert code == 2 and "zstd tar" in err and "--format oci" in err, err
    assert not (tmp_path / "z").exists()
    code, _, err = cli("append", base, "--layer", str(zst), "--format", "oci",
                       "-o", f"oci:{tmp_path}/z:1")
    assert code == 0, err


def test_base_name_is_never_a_path_and_spellings_give_one_digest(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _tree(tmp_path / "app")
    assert cli("append", "scratch", "--layer", str(src), *AMD64, "-o",
               f"oci:{tmp_path}/out1:v1")[0] == 0
    base_digest = str(Layout(tmp_path / "out1").find("v1").digest)
    monkeypatch.chdir(tmp_path)
    digests = set()
    for i, spelled in enumerate(("oci:out1:v1", "oci:./out1:v1", f"oci:{tmp_path}/out1:v1")):
        code, out, err = cli("append", spelled, "--layer", "app/hello.txt", "--json",
                             "-o", f"oci:bn{i}")
        assert code == 0, err
        digests.add(_json(out)["digest"])
        notes = _annotations(cli, f"oci:bn{i}")
        assert notes[ANN + "base.digest"] == base_digest
        assert ANN + "base.name" not in notes
        assert str(tmp_path) not in json.dumps(notes)
    assert len(digests) == 1


def test_base_name_of_a_registry_base_is_its_full_reference() -> None:
    from ociforge.pipeline.append import base_name_of
    from ociforge.stores.locations import parse_location

    assert base_name_of(parse_location("alpine:3.19")) == "docker.io/library/alpine:3.19"
    assert base_name_of(parse_location("docker://127.0.0.1:5000/a/b:1")) == \
        "127.0.0.1:5000/a/b:1"
    assert base_name_of(parse_location("oci:somewhere:1")) is None


def test_inspect_raw_prints_the_exact_manifest_bytes(cli, tmp_path: Path) -> None:
    import subprocess
    import sys

    src = _tree(tmp_path / "app")
    assert cli("append", "scratch", "--layer", str(src), *AMD64, "-o", f"oci:{tmp_path}/l:v1",
               "--annotation", "note=caf\u00e9")[0] == 0
    digest = Layout(tmp_path / "l").find("v1").digest
    raw = subprocess.run([sys.executable, "-m", "ociforge", "inspect", f"oci:{tmp_path}/l:v1",
                          "--raw"], check=True, capture_output=True).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == str(digest)
    assert not raw.endswith(b"\n")
    assert raw == Layout(tmp_path / "l").blob_path(digest).read_bytes()


@pytest.mark.parametrize("tag,title,version", [
    ("golden/app:1.2", "app", "1.2"),
    ("ghcr.io/acme/team/web:2024-01", "web", "2024-01"),
    ("tool:latest", "tool", None),
    ("tool", "tool", None),
])
def test_title_and_version_come_from_the_tag(cli, tmp_path: Path, tag: str, title: str,
                                             version: str | None) -> None:
    src = _tree(tmp_path / "app")
    code, _, err = cli("append", "scratch", "--layer", str(src), *AMD64, "--tag", tag,
                       "--source", "https://git.example/acme/web", "-o", f"oci:{tmp_path}/l")
    assert code == 0, err
    notes = _annotations(cli, f"oci:{tmp_path}/l")
    assert notes[ANN + "title"] == title
    assert notes.get(ANN + "version") == version
    assert notes[ANN + "source"] == "https://git.example/acme/web"


def test_explicit_annotations_win_over_derived_ones(cli, tmp_path: Path) -> None:
    src = _tree(tmp_path / "app")
    code, _, err = cli("append", "scratch", "--layer", str(src), *AMD64, "--tag", "me/app:3",
                       "--source", "https://a.example", "-o", f"oci:{tmp_path}/l",
                       "--annotation", ANN + "title=Nice Title",
                       "--annotation", ANN + "version=3.0.0",
                       "--annotation", ANN + "source=https://b.example",
                       "--annotation", ANN + "created=2000-01-01T00:00:00Z")
    assert code == 0, err
    notes = _annotations(cli, f"oci:{tmp_path}/l:3")
    assert notes[ANN + "title"] == "Nice Title" and notes[ANN + "version"] == "3.0.0"
    assert notes[ANN + "source"] == "https://b.example"
    assert notes[ANN + "created"] == "2000-01-01T00:00:00Z"


def test_building_a_layer_shows_plain_progress_and_is_quiet_with_q(
    cli, tmp_path: Path
) -> None:
    src = _tree(tmp_path / "app")
    (src / "big.bin").write_bytes(os.urandom(1 << 20))
    code, _, err = cli("append", "scratch", "--layer", str(src), "--layer", f"{src}/hello.txt",
                       *AMD64, "-o", f"oci:{tmp_path}/quiet", "-q")
    assert code == 0 and err == "", err
    code, _, err = cli("append", "scratch", "--layer", str(src),
                       "--layer", f"{src}/hello.txt", *AMD64, "-o", f"oci:{tmp_path}/loud")
    assert code == 0, err
    assert "\r" not in err  # stderr is no terminal here: lines, never redrawn
    assert f"building layer 1/2 from {src}\n" in err
    assert f"building layer 2/2 from {src}/hello.txt\n" in err
    built = [line for line in err.splitlines() if line.startswith("built layer")]
    assert len(built) == 2 and "1.0 MiB" in built[0] and " files, " in built[0], err
    assert "1 file," in built[1], err


# -- exit codes and leftovers (audit #11, #13) ----------------------------------------


def _two_tags(cli: Any, tmp_path: Path) -> Path:
    src = _tree(tmp_path / "app")
    for tag in ("a", "b"):
        code, _, err = cli("append", "scratch", "--layer", str(src), *AMD64, "--env", f"T={tag}",
                           "-o", f"oci:{tmp_path}/two:{tag}")
        assert code == 0, err
    return tmp_path / "two"


@pytest.mark.parametrize("argv", [
    ["copy", "oci:{L}", "oci:{t}/x"],
    ["verify", "oci:{L}"],
    ["verify", "oci:{L}", "--json"],
    ["inspect", "oci:{L}"],
    ["append", "oci:{L}", "-o", "oci:{t}/x"],
])
def test_a_layout_of_several_images_needs_a_tag_everywhere(cli, tmp_path: Path,
                                                          argv: list[str]) -> None:
    layout = _two_tags(cli, tmp_path)
    code, _out, err = cli(*[a.format(L=layout, t=tmp_path) for a in argv])
    assert code == 2, (code, err)
    assert "name a tag" in err and "tags: a, b" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("command", ["copy", "verify", "inspect", "append"])
def test_a_missing_tag_is_bad_input_listing_the_tags(cli, tmp_path: Path, command: str) -> None:
    layout = _two_tags(cli, tmp_path)
    argv = [command, f"oci:{layout}:nope"]
    if command in ("copy", "append"):
        argv += ["-o", f"oci:{tmp_path}/x"] if command == "append" else [f"oci:{tmp_path}/x"]
    code, _, err = cli(*argv)
    assert code == 2, err
    assert "no tag 'nope'" in err and "tags: a, b" in err
    assert not (tmp_path / "x").exists()


def test_copy_of_a_single_image_for_another_platform_is_refused(cli, tmp_path: Path) -> None:
    src = _tree(tmp_path / "app")
    assert cli("append", "scratch", "--layer", str(src), *AMD64, "-o", f"oci:{tmp_path}/b")[0] == 0
    code, _, err = cli("copy", f"oci:{tmp_path}/b", f"oci:{tmp_path}/x", "--platform",
                       "linux/arm64")
    assert code == 2 and "linux/amd64" in err and "linux/arm64" in err, err
    assert not (tmp_path / "x").exists()
    code, _, err = cli("copy", f"oci:{tmp_path}/b", f"oci:{tmp_path}/x", *AMD64)
    assert code == 0, err


def test_verify_json_reports_a_missing_child_manifest(cli, tmp_path: Path) -> None:
    index = make_index(tmp_path / "src")
    Layout(tmp_path / "lay").put(index, "m")
    _, child = index.children[1]
    Layout(tmp_path / "lay").blob_path(child.digest).unlink()
    code, out, err = cli("verify", f"oci:{tmp_path}/lay:m", "--json")
    assert code == 1, err
    result = _json(out)
    assert result["ok"] is False
    assert str(child.digest) in result["problems"][0]["message"]
    assert str(child.digest) in err and len(err.splitlines()) == 1


def test_a_failed_copy_into_a_new_layout_leaves_no_folder(cli, tmp_path: Path) -> None:
    src = _tree(tmp_path / "app")
    assert cli("append", "scratch", "--layer", str(src), *AMD64, "-o",
               f"oci:{tmp_path}/bad:v1")[0] == 0
    image = Layout(tmp_path / "bad").read("v1")
    assert isinstance(image, Image)
    blob = Layout(tmp_path / "bad").blob_path(image.layers[0].digest)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # same size, wrong bytes: found only while copying
    os.chmod(blob, 0o644)
    blob.write_bytes(bytes(data))
    for command in (["copy", f"oci:{tmp_path}/bad:v1", f"oci:{tmp_path}/new/dir:v1"],
                    ["append", f"oci:{tmp_path}/bad:v1", "-o", f"oci:{tmp_path}/new/dir:v1"]):
        code, _, err = cli(*command)
        assert code == 1 and str(image.layers[0].digest) in err, err
        assert not (tmp_path / "new").exists()


# -- audit 2: provenance, early refusal, verify/inspect of damaged images (#3, #5, #7, #11) --


def test_a_new_image_does_not_inherit_its_base_annotations(cli, tmp_path: Path) -> None:
    src = _tree(tmp_path / "app")
    assert cli("append", "scratch", "--layer", f"{src}/hello.txt", *AMD64, "-o",
               f"oci:{tmp_path}/p:1", "--tag", "me/site:1.0", "--source", "https://x.example/s",
               "--annotation", "com.example.note=base-only")[0] == 0
    base_notes = _annotations(cli, f"oci:{tmp_path}/p:1")
    assert base_notes[ANN + "title"] == "site" and base_notes[ANN + "version"] == "1.0"
    p1 = str(Layout(tmp_path / "p").find("1").digest)
    assert cli("append", f"oci:{tmp_path}/p:1", "--layer", f"{src}/run.sh", "-o",
               f"oci:{tmp_path}/p:2")[0] == 0
    # only what describes the new image: when it was made and which base it stands on
    assert _annotations(cli, f"oci:{tmp_path}/p:2") == {
        ANN + "created": "1970-01-01T00:00:00Z", ANN + "base.digest": p1}
    assert cli("append", f"oci:{tmp_path}/p:1", "--layer", f"{src}/run.sh", "-o",
               f"oci:{tmp_path}/p:3", "--tag", "me/site:1.1")[0] == 0
    notes = _annotations(cli, f"oci:{tmp_path}/p:3")
    assert (notes[ANN + "title"], notes[ANN + "version"]) == ("site", "1.1")
    assert ANN + "source" not in notes and "com.example.note" not in notes


def test_base_name_and_digest_describe_the_direct_base(cli, registry, tmp_path: Path) -> None:
    src = _tree(tmp_path / "app")
    assert cli("append", "scratch", "--layer", f"{src}/hello.txt", *AMD64, "-o",
               f"oci:{tmp_path}/s:1")[0] == 0
    remote = f"{registry.host}/prov/site:1"
    assert cli("copy", f"oci:{tmp_path}/s:1", remote)[0] == 0
    site_digest = str(Layout(tmp_path / "s").find("1").digest)
    assert cli("append", remote, "--layer", f"{src}/run.sh", *AMD64, "-o",
               f"oci:{tmp_path}/q:1")[0] == 0
    notes = _annotations(cli, f"oci:{tmp_path}/q:1")
    assert notes[ANN + "base.name"] == remote and notes[ANN + "base.digest"] == site_digest
    q1 = str(Layout(tmp_path / "q").find("1").digest)
    assert cli("append", f"oci:{tmp_path}/q:1", "--layer", f"{src}/sub", "-o",
               f"oci:{tmp_path}/q:2")[0] == 0
    notes = _annotations(cli, f"oci:{tmp_path}/q:2")
    # the registry name of q:1's base must not be paired with q:1's digest
    assert ANN + "base.name" not in notes and notes[ANN + "base.digest"] == q1


def test_platform_all_into_a_docker_archive_is_refused_before_building(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ociforge.layers.build

    def must_not_build(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a layer was built before the destination was checked")

    monkeypatch.setattr(ociforge.layers.build, "build_layer", must_not_build)
    Layout(tmp_path / "base").put(make_index(tmp_path / "src"), "m")
    src = _tree(tmp_path / "app")
    code, _, err = cli("append", f"oci:{tmp_path}/base:m", "--platform", "all",
                       "--layer", f"{src}:/app", "-o", f"oci:{tmp_path}/ok",
                       "-o", f"{tmp_path}/mm.tar")
    assert code == 2 and "single-platform" in err, err
    assert not (tmp_path / "mm.tar").exists() and not (tmp_path / "ok").exists()


def _corrupt_gzip_layer(cli: Any, tmp_path: Path) -> tuple[Image, Path]:
    src = _tree(tmp_path / "app")
    assert cli("append", "scratch", "--layer", str(src), *AMD64, "-o",
               f"oci:{tmp_path}/lay:1")[0] == 0
    image = Layout(tmp_path / "lay").read("1")
    assert isinstance(image, Image)
    path = Layout(tmp_path / "lay").blob_path(image.layers[0].digest)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[12:40] = b"\xff" * 28  # the deflate stream itself: "corrupt gzip", same size
    path.write_bytes(bytes(data))
    return image, path


def test_verify_names_a_corrupt_layer_once(cli, tmp_path: Path) -> None:
    image, _ = _corrupt_gzip_layer(cli, tmp_path)
    where = f"layer 0 {image.layers[0].digest}"
    code, _, err = cli("verify", f"oci:{tmp_path}/lay:1")
    assert code == 1 and where in err, err
    assert err.count(where) == 1 and err.count(str(image.layers[0].digest)) == 1, err
    code, out, _ = cli("verify", f"oci:{tmp_path}/lay:1", "--json")
    result = _json(out)
    assert code == 1 and result["ok"] is False and result["digest"] == str(image.digest)
    assert result["problems"][0]["where"] == where
    assert not result["problems"][0]["message"].startswith(where)


def test_verify_json_names_the_artifact_when_a_blob_is_missing(cli, tmp_path: Path) -> None:
    image, path = _corrupt_gzip_layer(cli, tmp_path)
    path.unlink()
    code, out, err = cli("verify", f"oci:{tmp_path}/lay:1", "--json")
    assert code == 1, err
    result = _json(out)
    assert result["ok"] is False and result["digest"] == str(image.digest)
    assert str(image.layers[0].digest) in result["problems"][0]["message"]


def test_inspect_manifest_of_an_image_whose_layer_blob_is_missing(cli, tmp_path: Path) -> None:
    import subprocess
    import sys

    image, path = _corrupt_gzip_layer(cli, tmp_path)
    path.unlink()
    code, out, err = cli("inspect", f"oci:{tmp_path}/lay:1", "--manifest")
    assert code == 0, err
    assert _json(out) == image.manifest
    raw = subprocess.run([sys.executable, "-m", "ociforge", "inspect", f"oci:{tmp_path}/lay:1",
                          "--raw"], check=True, capture_output=True).stdout
    assert raw == image.manifest_bytes
    # the summary and verify still say the blob is missing
    code, _, err = cli("inspect", f"oci:{tmp_path}/lay:1")
    assert code == 1 and str(image.layers[0].digest) in err


def test_inspect_raw_of_a_multi_platform_tag_prints_the_index(cli, registry,
                                                               tmp_path: Path) -> None:
    import subprocess
    import sys

    index = make_index(tmp_path / "src")
    Layout(tmp_path / "base").put(index, "m")
    remote = f"{registry.host}/multi/x:1"
    assert cli("copy", f"oci:{tmp_path}/base:m", remote, "--platform", "all")[0] == 0

    def raw(*extra: str) -> bytes:
        return subprocess.run([sys.executable, "-m", "ociforge", "inspect", remote, "--raw",
                               *extra], check=True, capture_output=True).stdout

    assert "sha256:" + hashlib.sha256(raw()).hexdigest() == str(index.digest)
    code, out, err = cli("inspect", remote)
    assert code == 0, err
    assert _json(out)["digest"] == str(index.digest) and len(_json(out)["manifests"]) == 2
    arm = next(child for desc, child in index.children if str(desc.platform) == "linux/arm64")
    assert "sha256:" + hashlib.sha256(raw("--platform", "linux/arm64")).hexdigest() == \
        str(arm.digest)


def test_a_digest_reference_is_named_with_an_at(cli, registry) -> None:
    missing = "sha256:" + "0" * 64
    code, _, err = cli("inspect", f"{registry.host}/multi/none@{missing}")
    assert code != 0
    assert f"multi/none@{missing}" in err and f"none:{missing}" not in err, err


@pytest.mark.parametrize("text", ["oci-archive:x.tar:", "oci:lay:", "docker-archive:x.tar:"])
def test_an_empty_tag_after_the_colon_is_bad_input(cli, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   text: str) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("append", "scratch", "-o", text)
    assert code == 2 and "empty" in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []
