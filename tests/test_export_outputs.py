"""export: digests that do not depend on the checkout's umask or chmod habits, and
destinations (and --report) refused before anything is written."""

from __future__ import annotations

import json
import os
import stat
import tarfile
from pathlib import Path

from imagediff import explain

from ociforge.layers.compress import open_decompressed
from ociforge.model.image import Image
from ociforge.model.platform import Platform
from ociforge.options import Options
from ociforge.stores.locations import parse_location

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello"
OPTIONS = Options(platform=Platform.parse("linux/amd64"))


def checkout(src: Path, dst: Path, umask: int) -> Path:
    """Recreate ``src`` the way git checks a tree out: 0777/0666 minus the umask."""
    old = os.umask(umask)
    try:
        for root, _dirs, files in os.walk(src):
            rel = Path(root).relative_to(src)
            (dst / rel).mkdir(parents=True, exist_ok=True)
            for name in files:
                source = Path(root) / name
                target = dst / rel / name
                if source.is_symlink():
                    os.symlink(os.readlink(source), target)
                    continue
                executable = os.stat(source).st_mode & 0o100
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o777 if executable else 0o666)
                with os.fdopen(fd, "wb") as out:
                    out.write(source.read_bytes())
    finally:
        os.umask(old)
    return dst


def layer_modes(location: str) -> dict[str, int]:
    image = parse_location(location).read(OPTIONS)
    assert isinstance(image, Image)
    modes: dict[str, int] = {}
    for layer in image.layers:
        with open_decompressed(layer.open()) as reader, \
                tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                modes[member.name] = member.mode
    return modes


def test_digest_is_the_same_whatever_the_umask_and_file_modes(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    strict = checkout(EXAMPLE, tmp_path / "u022" / "hello", 0o022)
    group = checkout(EXAMPLE, tmp_path / "u002" / "hello", 0o002)
    assert stat.S_IMODE((group / "app" / "LICENSE").stat().st_mode) == 0o664
    assert stat.S_IMODE((group / "app").stat().st_mode) == 0o775
    odd = checkout(EXAMPLE, tmp_path / "odd" / "hello", 0o022)
    os.chmod(odd / "app" / "LICENSE", 0o600)
    os.chmod(odd / "config" / "hello.conf", 0o664)
    os.chmod(odd / "app" / "bin" / "hello", 0o4710)   # setuid and owner-only execute
    os.chmod(odd / "app" / "licenses", 0o700)
    os.chmod(odd / "app", 0o1777)                      # sticky
    digests = []
    trees = (strict, group, odd)
    for n, app in enumerate(trees):
        code, stdout, stderr = cli("export", app, "--with-files", "-o", tmp_path / f"{n}.tar",
                                   "-o", f"oci:{tmp_path / str(n)}")
        assert code == 0, stderr
        digests.append(stdout.split()[0])
    for n in (1, 2):    # a mismatch says why: the documents and tar entries that differ
        assert digests[n] == digests[0], explain(tmp_path / "0", tmp_path / str(n),
                                                 (trees[0], trees[n]))
    assert (tmp_path / "0.tar").read_bytes() == (tmp_path / "2.tar").read_bytes()
    modes = layer_modes(str(tmp_path / "2.tar"))
    assert modes["app/bin/hello"] == 0o755          # executables stay executable
    assert modes["app/LICENSE"] == 0o644 and modes["etc/hello/hello.conf"] == 0o644
    assert modes["app"] == 0o755 and modes["app/licenses"] == 0o755


def test_append_still_keeps_modes(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The policy is export's: ``append --layer`` copies modes as they are (issue 2)."""
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "secret").write_text("x")
    os.chmod(tmp_path / "d" / "sub" / "secret", 0o600)
    os.chmod(tmp_path / "d" / "sub", 0o750)
    code, _, stderr = cli("append", "scratch", "--layer", f"{tmp_path / 'd'}:/d",
                          "-o", f"oci:{tmp_path / 'lay'}:1")
    assert code == 0, stderr
    modes = layer_modes(f"oci:{tmp_path / 'lay'}:1")
    assert modes["d/sub/secret"] == 0o600 and modes["d/sub"] == 0o750




def nothing_written(folder: Path) -> bool:
    return not any(folder.iterdir())


def test_zstd_into_a_later_docker_archive_writes_nothing(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, stderr = cli("export", app, "--compression", "zstd",
                               "-o", f"oci:{out / 'zzok'}", "-o", out / "zz.tar")
    assert code == 2 and "zstd" in stderr and "zz.tar" in stderr
    assert stdout == "" and len(stderr.strip().splitlines()) == 1
    assert nothing_written(out)


def test_every_destination_accepts_the_image_before_the_first_write(cli, app: Path,  # type: ignore[no-untyped-def]
                                                                    tmp_path: Path) -> None:
    """A base whose zstd layers are kept as they are: only the finished image shows that
    docker-archive cannot take it, and still the oci: destination before it is not written."""
    (tmp_path / "base.txt").write_text("base layer\n")
    code, _, stderr = cli("append", "scratch", "--compression", "zstd",
                          "--layer", f"{tmp_path / 'base.txt'}:/base.txt",
                          "-o", f"oci:{tmp_path / 'base'}:1")
    assert code == 0, stderr
    toml = (app / "ociforge.toml").read_text().replace(
        'base = "scratch"', f'base = "oci:{tmp_path / "base"}:1"')
    (app / "ociforge.toml").write_text(toml)
    out = tmp_path / "out"
    out.mkdir()
    code, _, stderr = cli("export", app, "--keep-base-layers",
                          "-o", f"oci:{out / 'first'}", "-o", out / "second.tar")
    assert code == 2 and "zstd" in stderr and "second.tar" in stderr
    assert nothing_written(out)
    code, _, stderr = cli("export", app, "--keep-base-layers", "-o", f"oci:{out / 'first'}")
    assert code == 0, stderr


def test_report_into_an_unwritable_folder_writes_nothing(cli, app: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                         unwritable: Path) -> None:
    report = unwritable / "rep.json"
    code, _, stderr = cli("export", app, "-o", tmp_path / "ok.tar", "--report", report)
    assert code == 2, stderr
    assert str(report) in stderr and "not writable" in stderr and ".tmp" not in stderr
    assert not (tmp_path / "ok.tar").exists() and not report.exists()
    code, _, stderr = cli("export", app, "-o", tmp_path / "ok.tar",
                          "--report", unwritable / "missing" / "rep.json")
    assert code == 2 and "not writable" in stderr and "missing" in stderr
    assert not (tmp_path / "ok.tar").exists()
    # a missing folder that can be made is made, for the report as for every output
    code, _, stderr = cli("export", app, "-o", tmp_path / "out" / "ok.tar",
                          "--report", tmp_path / "reports" / "rep.json")
    assert code == 0, stderr
    assert (tmp_path / "out" / "ok.tar").is_file()
    assert (tmp_path / "reports" / "rep.json").is_file()


def test_outputs_into_unwritable_folders_are_bad_input(cli, app: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       unwritable: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for dest, shown in ((f"oci:{unwritable / 'lay'}", str(unwritable / "lay")),
                        (str(unwritable / "x.tar"), str(unwritable / "x.tar")),
                        (f"oci-archive:{unwritable / 'x.tar'}", str(unwritable / "x.tar"))):
        code, stdout, stderr = cli("export", app, "-o", f"oci:{out / 'first'}", "-o", dest)
        assert code == 2, (dest, stderr)
        assert shown in stderr and "not writable" in stderr and ".tmp" not in stderr
        assert stdout == "" and len(stderr.strip().splitlines()) == 1
        assert nothing_written(out)
    assert not (unwritable / "lay").exists() and not (unwritable / "x.tar").exists()


def test_json_destinations_are_plain_fields(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = tmp_path / "report.json"
    code, stdout, stderr = cli("export", app, "--json", "--report", report,
                               "-o", tmp_path / "hello.tar",
                               "-o", f"docker-archive:{tmp_path / 'd.tar'}:acme/hi:2",
                               "-o", f"oci:{tmp_path / 'l'}",
                               "-o", f"docker-archive:{tmp_path / 'plain'}")
    assert code == 0, stderr
    result = json.loads(stdout)
    digest, media = result["digest"], "application/vnd.oci.image.manifest.v1+json"
    assert result["destinations"] == [
        {"location": str(tmp_path / "hello.tar"), "name": "hello:latest",
         "digest": digest, "mediaType": media},
        {"location": str(tmp_path / "d.tar"), "name": "acme/hi:2",
         "digest": digest, "mediaType": media},
        {"location": f"oci:{tmp_path / 'l'}:latest", "digest": digest, "mediaType": media},
        {"location": f"docker-archive:{tmp_path / 'plain'}", "name": "hello:latest",
         "digest": digest, "mediaType": media},
    ]
    assert json.loads(report.read_text())["image"]["destinations"] == result["destinations"]
    # every location reads back as the image it names
    for entry in result["destinations"]:
        image = parse_location(entry["location"]).read(OPTIONS)
        assert isinstance(image, Image) and str(image.digest) == digest
    assert f"wrote    {tmp_path / 'd.tar'} (acme/hi:2)" in stderr
