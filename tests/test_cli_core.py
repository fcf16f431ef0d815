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

from ociforge import mediatypes as mt
from ociforge.image import Image
from ociforge.index import Index
from ociforge.layout import Layout

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
    assert manifest["annotations"]["org.opencontainers.image.base.name"] == base
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
    # one platform only, chosen from the index
    code, _out, err = cli("append", f"oci:{tmp_path}/base:multi", "--platform", "linux/arm64",
                         "-o", f"oci:{tmp_path}/arm", "--json")
    assert code == 0, err
    arm = Layout(tmp_path / "arm").read(None)
    assert isinstance(arm, Image) and str(arm.platform) == "linux/arm64"


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
