"""ociforge export end to end (in-process CLI): contents, policy, report, errors, determinism."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from tools import require_module

from ociforge.app.report import REPORT_LABEL, verify_report
from ociforge.model.image import Image
from ociforge.model.platform import Platform
from ociforge.options import Options
from ociforge.stores.locations import parse_location

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello"
SECRET_VALUES = ("tok_demo_not_a_real_secret", "27000@license.example.com", "engineering",
                 "not-a-real-password", "SIGN=")
OPTIONS = Options(platform=Platform.parse("linux/amd64"))


def read_image(location: str) -> Image:
    image = parse_location(location).read(OPTIONS)
    assert isinstance(image, Image)
    return image


def layer_members(image: Image, index: int) -> dict[str, tarfile.TarInfo | bytes]:
    """name -> file bytes (regular files) or TarInfo (everything else)."""
    out: dict[str, tarfile.TarInfo | bytes] = {}
    from ociforge.layers.compress import open_decompressed

    with open_decompressed(image.layers[index].open()) as reader, \
            tarfile.open(fileobj=reader, mode="r|") as tar:
        for member in tar:
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                out[member.name] = handle.read()
            else:
                out[member.name] = member
    return out


def all_bytes(image: Image) -> bytes:
    """Manifest, config and every layer decompressed: where a leaked value would be."""
    parts = [image.manifest_bytes, image.config_bytes]
    for i in range(len(image.layers)):
        for value in layer_members(image, i).values():
            parts.append(value if isinstance(value, bytes) else
                         (value.name + value.linkname).encode())
    return b"\n".join(parts)


def env_of(image: Image) -> dict[str, str]:
    return dict(item.split("=", 1) for item in image.config["config"].get("Env", []))


def test_app_only_export(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "hello.tar"
    report_path = tmp_path / "report.json"
    code, stdout, stderr = cli("export", app, "-o", out, "--report", report_path)
    assert code == 0, stderr
    image = read_image(str(out))
    assert len(image.layers) == 2           # the two runtime layers, no files, no tables
    app_layer = layer_members(image, 0)
    assert "app/bin/hello" in app_layer and "app/LICENSE" in app_layer
    assert "app/licenses/THIRD-PARTY-NOTICES.txt" in app_layer
    assert "app/solver.lic" not in app_layer
    assert layer_members(image, 1)["etc/hello/hello.conf"] == b"greeting = friendly\n"
    env = env_of(image)
    assert env["HELLO_LANG"] == "en" and env["HELLO_GREETING"] == "Hello from ociforge"
    assert env["HELLO_MODE"] == "demo"
    for dropped in ("LM_LICENSE_FILE", "HELLO_API_TOKEN", "HELLO_SEAT_POOL"):
        assert dropped not in env
    runtime = image.config["config"]
    assert runtime["Entrypoint"] == ["/bin/sh", "/app/bin/hello"] and runtime["Cmd"] == ["world"]
    assert runtime["WorkingDir"] == "/app" and "8080/tcp" in runtime["ExposedPorts"]
    report = json.loads(report_path.read_text())
    assert report["mode"] == "app" and report["app"] == "hello"
    assert report["image"]["digest"] == str(image.digest) == stdout.strip()
    assert [(d["name"], d["rule"]) for d in report["dropped_env"]] == [
        ("HELLO_API_TOKEN", "secret-name"), ("HELLO_SEAT_POOL", "license-env-config"),
        ("LM_LICENSE_FILE", "license-manager-variable")]
    assert report["left_out_files"] == [
        {"path": "/app/solver.lic", "rule": "license-key-file", "layer": "runtime"}]
    assert "license-key-file" in report["rules"]
    text = all_bytes(image) + report_path.read_bytes() + stdout.encode() + stderr.encode()
    for value in SECRET_VALUES:
        assert value.encode() not in text, value
    assert "LM_LICENSE_FILE (license-manager-variable)" in stderr


def test_with_files_adds_files_and_tables(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "layout"
    report_path = tmp_path / "report.json"
    code, _, stderr = cli("export", app, "-o", f"oci:{out}", "--with-files",
                          "--report", report_path)
    assert code == 0, stderr
    image = read_image(f"oci:{out}:latest")
    report = json.loads(report_path.read_text())
    assert [layer["role"] for layer in report["layers"]] == ["runtime", "runtime", "files",
                                                              "table"]
    files = layer_members(image, 2)
    assert files["files/README.md"].startswith(b"# Project files")  # type: ignore[union-attr]
    assert "files/notes/todo.txt" in files and "files/.env.local" not in files
    table = layer_members(image, 3)
    csv = table["files/tables/greetings.csv"]
    assert csv == ('id,lang,text\n1,"en","Hello"\n2,"fr","Bonjour"\n3,"de","Hallo"\n'
                   '4,"es","Hola"\n5,"ja","こんにちは"\n').encode()
    assert report["tables"][0]["rows"] == 5 and report["mode"] == "app+files"
    from ociforge.model.digest import Digest

    assert report["tables"][0]["digest"] == str(Digest.of_bytes(csv))  # type: ignore[arg-type]
    for entry, layer in zip(report["layers"], image.layers, strict=True):
        assert entry["digest"] == str(layer.digest) and entry["diff_id"] == str(layer.diff_id)
        assert entry["size"] == layer.size and entry["files"] >= 1
    assert {"path": "/files/.env.local", "rule": "dotenv-file", "layer": "files"} in \
        report["left_out_files"]
    for value in SECRET_VALUES:
        assert value.encode() not in all_bytes(image), value


def test_runtime_layers_do_not_change_with_files_or_other_layers(cli, app: Path,  # type: ignore[no-untyped-def]
                                                                   tmp_path: Path) -> None:
    assert cli("export", app, "-o", tmp_path / "a.tar")[0] == 0
    assert cli("export", app, "-o", tmp_path / "b.tar", "--with-files")[0] == 0
    (app / "config" / "hello.conf").write_text("greeting = grumpy\n")
    assert cli("export", app, "-o", tmp_path / "c.tar")[0] == 0
    a, b, c = (read_image(str(tmp_path / n)) for n in ("a.tar", "b.tar", "c.tar"))
    assert [x.digest for x in a.layers] == [x.digest for x in b.layers[:2]]
    assert a.layers[0].digest == c.layers[0].digest       # the app layer is not re-pushed
    assert a.layers[1].digest != c.layers[1].digest


def test_report_digest_is_in_the_image_and_checks_out(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report_path = tmp_path / "r.json"
    assert cli("export", app, "-o", f"oci:{tmp_path / 'l'}", "--report", report_path)[0] == 0
    report = json.loads(report_path.read_text())
    image = read_image(f"oci:{tmp_path / 'l'}:latest")
    assert image.config["config"]["Labels"][REPORT_LABEL] == report["report_digest"]
    assert image.manifest["annotations"][REPORT_LABEL] == report["report_digest"]
    assert verify_report(report)
    report["dropped_env"] = []
    assert not verify_report(report)


def test_reproducible_whatever_mtimes_and_owners(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("export", app, "-o", tmp_path / "one.tar", "--with-files")[0] == 0
    assert cli("export", app, "-o", tmp_path / "two.tar", "--with-files")[0] == 0
    other = tmp_path / "elsewhere" / "hello"
    shutil.copytree(app, other)
    for root, dirs, files in os.walk(other):
        for name in dirs + files:
            path = os.path.join(root, name)
            os.utime(path, (1_000_000_000, 1_000_000_000), follow_symlinks=False)
            if os.geteuid() == 0:
                os.lchown(path, 4321, 4321)
    assert cli("export", other, "-o", tmp_path / "three.tar", "--with-files")[0] == 0
    one, two, three = ((tmp_path / n).read_bytes() for n in ("one.tar", "two.tar", "three.tar"))
    assert one == two == three


def test_report_order_does_not_follow_creation_order(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    digests = []
    for order in (list(range(8)), list(reversed(range(8)))):
        app = tmp_path / f"app{order[0]}"
        shutil.copytree(EXAMPLE, app)
        for i in order:
            (app / "project" / f"key{i}.lic").write_text("x")
            (app / "project" / f"f{i}.txt").write_text("y")
        code, stdout, stderr = cli("export", app, "-o", tmp_path / f"{order[0]}.tar",
                                   "--with-files")
        assert code == 0, stderr
        digests.append(stdout.strip())
    assert digests[0] == digests[1]


def test_source_date_epoch_changes_times_only(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("export", app, "-o", f"oci:{tmp_path / 'l'}", "--source-date-epoch",
               "1700000000")[0] == 0
    image = read_image(f"oci:{tmp_path / 'l'}:latest")
    assert image.config["created"] == "2023-11-14T22:13:20Z"
    info = layer_members(image, 0)["app"]
    assert isinstance(info, tarfile.TarInfo) and info.mtime == 1700000000


def test_default_output_is_name_tar(cli, app: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    code, _, stderr = cli("export", app)
    assert code == 0, stderr
    with tarfile.open(work / "hello.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["hello:latest"]


def test_tag_names_the_archive(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("export", app, "-o", tmp_path / "x.tar", "--tag", "acme/hello:1.2")[0] == 0
    with tarfile.open(tmp_path / "x.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["acme/hello:1.2"]


def test_allow_env_keeps_a_named_variable(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("export", app, "-o", f"oci:{tmp_path / 'l'}", "--allow-env",
               "LM_LICENSE_FILE")[0] == 0
    env = env_of(read_image(f"oci:{tmp_path / 'l'}:latest"))
    assert env["LM_LICENSE_FILE"] == "27000@license.example.com"
    assert "HELLO_API_TOKEN" not in env


def test_symlink_pointing_outside_is_kept_as_a_link(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "outside.txt"
    outside.write_text("do not copy me\n")
    os.symlink(outside, app / "project" / "escape")
    os.symlink("../../etc/passwd", app / "project" / "relative-escape")
    assert cli("export", app, "-o", f"oci:{tmp_path / 'l'}", "--with-files")[0] == 0
    files = layer_members(read_image(f"oci:{tmp_path / 'l'}:latest"), 2)
    link = files["files/escape"]
    assert isinstance(link, tarfile.TarInfo) and link.issym() and link.linkname == str(outside)
    rel = files["files/relative-escape"]
    assert isinstance(rel, tarfile.TarInfo) and rel.linkname == "../../etc/passwd"
    assert b"do not copy me" not in all_bytes(read_image(f"oci:{tmp_path / 'l'}:latest"))


def test_docker_format_and_zstd(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("export", app, "-o", f"oci:{tmp_path / 'd'}", "--format", "docker")[0] == 0
    docker = read_image(f"oci:{tmp_path / 'd'}:latest")
    assert docker.is_docker and REPORT_LABEL in docker.config["config"]["Labels"]
    assert cli("export", app, "-o", f"oci:{tmp_path / 'z'}", "--compression", "zstd")[0] == 0
    zstd = read_image(f"oci:{tmp_path / 'z'}:latest")
    assert all(layer.media_type.endswith("+zstd") for layer in zstd.layers)
    assert b"HELLO_MODE" in all_bytes(zstd)


def test_base_image_env_is_filtered_and_reported(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ociforge.model import mutate

    base = mutate.configure(mutate.scratch(Platform.parse("linux/amd64")), mutate.ConfigChanges(
        env={"BASE_PATH": "/opt", "VENDOR_TOKEN": "base-token-value"}))
    parse_location(f"oci:{tmp_path / 'base'}:1").write(base, OPTIONS)
    toml = (app / "ociforge.toml").read_text().replace('base = "scratch"',
                                                       'base = "oci:../base:1"')
    (app / "ociforge.toml").write_text(toml)
    report_path = tmp_path / "r.json"
    code, _, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'out'}", "--report",
                          report_path)
    assert code == 0, stderr
    image = read_image(f"oci:{tmp_path / 'out'}:latest")
    env = env_of(image)
    assert env["BASE_PATH"] == "/opt" and "VENDOR_TOKEN" not in env
    report = json.loads(report_path.read_text())
    assert report["base"] == {"reference": "oci:../base:1", "digest": str(base.digest)}
    assert {"name": "VENDOR_TOKEN", "rule": "secret-name", "kind": "secret",
            "origin": "base"} in report["dropped_env"]
    assert image.manifest["annotations"]["org.opencontainers.image.base.digest"] == \
        str(base.digest)
    assert b"base-token-value" not in all_bytes(image) + report_path.read_bytes()


# -- bad input: exit 2, one line, nothing written ------------------------------------------

def _assert_refused(cli, args: list, out: Path, needle: str) -> str:  # type: ignore[no-untyped-def]
    code, _, stderr = cli("export", *args, "-o", out, "--report", str(out) + ".json")
    assert code == 2, stderr
    assert needle in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not out.exists() and not Path(str(out) + ".json").exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp files
    return stderr


def test_missing_toml(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "empty").mkdir()
    _assert_refused(cli, [tmp_path / "empty"], tmp_path / "x.tar", "has no ociforge.toml")


def test_layer_src_escaping(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    toml = (app / "ociforge.toml").read_text().replace('src = "config"', 'src = "../config"')
    (app / "ociforge.toml").write_text(toml)
    err = _assert_refused(cli, [app], tmp_path / "x.tar", "leaves the application folder")
    assert "ociforge.toml:" in err and "layers[1].src" in err


def test_licensed_app_needs_include_licensed(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    toml = (app / "ociforge.toml").read_text().replace('name = "hello"',
                                                       'name = "hello"\nlicensed = true')
    (app / "ociforge.toml").write_text(toml)
    _assert_refused(cli, [app], tmp_path / "x.tar", "--include-licensed")
    code, _, stderr = cli("export", app, "-o", tmp_path / "y.tar", "--include-licensed")
    assert code == 0, stderr
    assert "solver.lic" in stderr   # the license key is still left out


def test_unreachable_database_named_password_hidden(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    require_module("adbc_driver_postgresql")
    from tools import closed_port

    with closed_port() as port:
        url = f"postgresql://reader:Very-Secret-9@127.0.0.1:{port}/appdb"
        toml = (app / "ociforge.toml").read_text().replace(
            'source = "sqlite:///data/greetings.db"', f'source = "{url}"')
        (app / "ociforge.toml").write_text(toml)
        err = _assert_refused(cli, [app, "--with-files"], tmp_path / "x.tar",
                              "cannot connect to postgresql://reader:***@127.0.0.1")
    assert "Very-Secret-9" not in err and "greetings" in err
    # Without --with-files the tables are not read, so the export works.
    assert cli("export", app, "-o", tmp_path / "ok.tar")[0] == 0


def test_output_that_cannot_be_written(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "file").write_text("x")
    code, _, stderr = cli("export", app, "-o", tmp_path / "file" / "sub" / "x.tar")
    assert code == 2 and "is not a directory" in stderr
    assert (tmp_path / "file").read_text() == "x"
    (tmp_path / "adir").mkdir()
    code, _, stderr = cli("export", app, "-o", tmp_path / "adir")
    assert code == 2 and "directory" in stderr
    code, _, stderr = cli("export", app, "-o", tmp_path / "ok.tar", "--report", tmp_path / "adir")
    assert code == 2 and not (tmp_path / "ok.tar").exists()


def test_unknown_key_in_toml(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    toml = (app / "ociforge.toml").read_text().replace('dest = "/files"\n',
                                                       'dest = "/files"\nsorce = \'x\'\n')
    (app / "ociforge.toml").write_text(toml)
    err = _assert_refused(cli, [app], tmp_path / "x.tar", "files.sorce: unknown key")
    line = toml.splitlines().index("sorce = 'x'") + 1
    assert f"ociforge.toml:{line}:" in err


def test_json_output(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, stdout, _ = cli("export", app, "-o", tmp_path / "x.tar", "--json")
    assert code == 0
    result = json.loads(stdout)
    assert result["digest"].startswith("sha256:") and result["mode"] == "app"
    assert result["destinations"] == [{
        "location": str(tmp_path / "x.tar"), "name": "hello:latest",
        "digest": result["digest"], "mediaType": "application/vnd.oci.image.manifest.v1+json"}]


def test_tables_are_byte_stable_in_layers(app: Path) -> None:
    """The table layer's bytes do not depend on the umask the file was written with."""
    from ociforge.app.export import ExportRequest, export_app

    old = os.umask(0o077)
    try:
        first = export_app(ExportRequest(str(app), destinations=[f"oci:{app.parent / 'u1'}"],
                                         with_files=True, options=OPTIONS))
    finally:
        os.umask(old)
    second = export_app(ExportRequest(str(app), destinations=[f"oci:{app.parent / 'u2'}"],
                                      with_files=True, options=OPTIONS))
    assert first.image.digest == second.image.digest
    assert first.report.tables[0]["rows"] == 5


# -- signing and the attached report (library from the signing area) -----------------------

def test_sign_and_attach_report_to_a_layout(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ociforge.trust.keys import write_key_pair
    from ociforge.trust.referrers import REPORT_ARTIFACT_TYPE, list_referrers
    from ociforge.trust.sign import verify_location

    keys = write_key_pair(tmp_path / "signer")
    layout = f"oci:{tmp_path / 'signed'}:1.0"
    code, stdout, stderr = cli("export", app, "-o", layout, "--sign", keys.private,
                               "--attach-report", "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["signatures"][0]["digest"] == result["digest"]
    assert result["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert verify_location(layout, keys.public, digest=result["digest"])
    _, referrers = list_referrers(layout, artifact_type=REPORT_ARTIFACT_TYPE,
                                  digest=result["digest"])
    assert [r["digest"] for r in referrers] == [result["attached_reports"][0]["digest"]]
    assert "signed" in stderr and "attached report" in stderr


def test_sign_refuses_a_tar_destination_before_writing(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ociforge.trust.keys import write_key_pair

    keys = write_key_pair(tmp_path / "signer")
    out = tmp_path / "x.tar"
    code, _, stderr = cli("export", app, "-o", out, "--sign", keys.private)
    assert code == 2 and "not in a tar archive" in stderr and not out.exists()
    code, _, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'l'}", "--sign",
                          tmp_path / "missing.key")
    assert code == 2 and not (tmp_path / "l").exists()


def test_parquet_table_in_the_image_is_reproducible(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pq = require_module("pyarrow.parquet")
    toml = (app / "ociforge.toml").read_text().replace('format = "csv"', 'format = "parquet"')
    toml = toml.replace("greetings.csv", "greetings.parquet")
    (app / "ociforge.toml").write_text(toml)
    digests = []
    for name in ("p1", "p2"):
        code, stdout, stderr = cli("export", app, "-o", f"oci:{tmp_path / name}", "--with-files")
        assert code == 0, stderr
        digests.append(stdout.strip())
    assert digests[0] == digests[1]
    data = layer_members(read_image(f"oci:{tmp_path / 'p1'}:latest"), 3)
    table = pq.read_table(io.BytesIO(data["files/tables/greetings.parquet"]))  # type: ignore[arg-type]
    assert table.column("text").to_pylist()[:2] == ["Hello", "Bonjour"]


def test_postgres_table_in_the_image(cli, app: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                     postgres) -> None:
    require_module("adbc_driver_postgresql")
    from postgres_fixtures import PASSWORD

    postgres.psql("DROP TABLE IF EXISTS scores; CREATE TABLE scores (player text PRIMARY KEY, "
                  "points int); INSERT INTO scores VALUES ('zoe', 3), ('adam', 7); "
                  "ALTER TABLE scores OWNER TO exporter;")
    toml = (app / "ociforge.toml").read_text().replace(
        'source = "sqlite:///data/greetings.db"\ntable = "greetings"',
        f'source = "{postgres.url}"\ntable = "scores"').replace("greetings.csv", "scores.csv")
    (app / "ociforge.toml").write_text(toml)
    report_path = tmp_path / "r.json"
    code, stdout, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'pg'}", "--with-files",
                               "--report", report_path)
    assert code == 0, stderr
    image = read_image(f"oci:{tmp_path / 'pg'}:latest")
    assert layer_members(image, 3)["files/tables/scores.csv"] == \
        b'player,points\n"adam",7\n"zoe",3\n'
    report = report_path.read_text()
    assert json.loads(report)["tables"][0]["source"].startswith("postgresql://exporter:***@")
    assert PASSWORD not in report + stdout + stderr
    assert PASSWORD.encode() not in all_bytes(image)


def test_verbose_logs_never_carry_values(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, stdout, stderr = cli("-vv", "export", app, "-o", tmp_path / "x.tar", "--with-files")
    assert code == 0 and "building runtime layer from app" in stderr
    for value in SECRET_VALUES:
        assert value not in stdout + stderr


def test_several_destinations_get_the_same_image(cli, app: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, stdout, stderr = cli("export", app, "--json", "--platform", "linux/arm64",
                               "-o", f"oci-archive:{tmp_path / 'a.tar'}",
                               "-o", f"docker-archive:{tmp_path / 'd.tar'}:acme/hi:2",
                               "-o", f"oci:{tmp_path / 'l'}:v2")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert len(result["destinations"]) == 3
    arm = Options(platform=Platform.parse("linux/arm64"))
    for location in (f"oci-archive:{tmp_path / 'a.tar'}", f"docker-archive:{tmp_path / 'd.tar'}",
                     f"oci:{tmp_path / 'l'}:v2"):
        image = parse_location(location).read(arm)
        assert isinstance(image, Image) and str(image.digest) == result["digest"]
        assert image.config["architecture"] == "arm64"   # --platform wins over [app] platform
