"""The exported image runs: busybox base built by ociforge, umoci unpack, runc run.

Also: the same export pushed to the real test registry and pulled back keeps its
digest.  Needs root (umoci unpack, runc) and Debian's busybox-static, umoci,
runc and skopeo; skipped outside CI when missing, failed in CI (tests/tools.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from tools import require_module, require_root, require_tool, run, run_bundle

from ociforge.layers.build import BuildSettings, LayerSource, build_layer
from ociforge.model.image import Image
from ociforge.model.mutate import ConfigChanges, append_layers, configure, scratch
from ociforge.model.platform import Platform
from ociforge.options import Options, RegistryOptions
from ociforge.stores.locations import parse_location

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello"
PLATFORM = Platform.host()


def build_busybox_base(tmp: Path) -> str:
    """A tiny runnable base: /bin/busybox with sh, cat, env and ls links, made by ociforge."""
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        require_tool("busybox")
        busybox = Path(shutil.which("busybox") or "")
    tree = tmp / "busybox-root"
    (tree / "bin").mkdir(parents=True)
    shutil.copy2(busybox, tree / "bin" / "busybox")
    for name in ("sh", "cat", "env", "ls"):
        os.symlink("busybox", tree / "bin" / name)
    result = build_layer([LayerSource(tree, "/")], BuildSettings())
    image = append_layers(scratch(PLATFORM), [result.layer], created_by=["busybox-static"])
    image = configure(image, ConfigChanges(
        env={"PATH": "/bin", "VENDOR_PASSWORD": "base-password-value"}))
    location = f"oci:{tmp / 'busybox-layout'}:latest"
    parse_location(location).write(image, Options(platform=PLATFORM))
    return location


@pytest.fixture
def app_on_busybox(tmp_path: Path) -> Path:
    base = build_busybox_base(tmp_path)
    app = tmp_path / "hello"
    shutil.copytree(EXAMPLE, app, symlinks=True)
    toml = (app / "ociforge.toml").read_text()
    toml = toml.replace('base = "scratch"', f'base = "{base}"')
    toml = toml.replace('platform = "linux/amd64"', f'platform = "{PLATFORM}"')
    (app / "ociforge.toml").write_text(toml)
    return app


def test_exported_image_runs_with_files_env_and_without_secrets(
        cli, app_on_busybox: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    require_root("umoci unpack and runc run")
    umoci, runc = require_tool("umoci"), require_tool("runc")
    layout = tmp_path / "exported"
    code, _, stderr = cli("export", app_on_busybox, "-o", f"oci:{layout}:run", "--with-files")
    assert code == 0, stderr
    bundle = tmp_path / "bundle"
    run([umoci, "unpack", "--image", f"{layout}:run", str(bundle)])
    proc = run_bundle(runc, bundle, "ociforge-export", [
        "/bin/sh", "-c",
        "env; echo ---; ls /app /files /files/tables; echo ---; "
        "cat /files/tables/greetings.csv; echo ---; /bin/sh /app/bin/hello tester"])
    env_part, listing, table, greeting = proc.stdout.split("---\n")
    env = dict(line.split("=", 1) for line in env_part.splitlines() if "=" in line)
    assert env["HELLO_MODE"] == "demo" and env["HELLO_LANG"] == "en"
    assert env["HELLO_GREETING"] == "Hello from ociforge"
    for dropped in ("LM_LICENSE_FILE", "HELLO_API_TOKEN", "HELLO_SEAT_POOL", "VENDOR_PASSWORD"):
        assert dropped not in env
    for value in ("27000@license", "tok_demo", "base-password-value"):
        assert value not in proc.stdout
    names = listing.split()
    assert "LICENSE" in names and "licenses" in names and "bin" in names
    assert "solver.lic" not in names and ".env.local" not in names
    assert "README.md" in names and "inputs.csv" in names and "greetings.csv" in names
    assert table.startswith('id,lang,text\n1,"en","Hello"\n')
    assert greeting.splitlines()[0] == "Hello from ociforge, tester! (mode: demo, lang: en)"
    assert "config: greeting = friendly" in greeting


def test_push_and_pull_back_keeps_the_digest(cli, app_on_busybox: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                              registry) -> None:
    from ociforge.trust.keys import write_key_pair
    from ociforge.trust.referrers import REPORT_ARTIFACT_TYPE, list_referrers
    from ociforge.trust.sign import verify_location

    ref = f"{registry.host}/export/hello:run"
    local = tmp_path / "local"
    keys = write_key_pair(tmp_path / "signer")
    code, stdout, stderr = cli("export", app_on_busybox, "--with-files", "-o", ref,
                               "-o", f"oci:{local}:run", "--json", "--sign", keys.private,
                               "--attach-report")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert verify_location(ref, keys.public, digest=result["digest"])
    _, referrers = list_referrers(ref, artifact_type=REPORT_ARTIFACT_TYPE,
                                  digest=result["digest"])
    assert len(referrers) == 1
    pulled = parse_location(ref).read(Options(platform=PLATFORM))
    assert isinstance(pulled, Image)
    assert str(pulled.digest) == result["digest"]
    assert read_local(local).digest == pulled.digest
    skopeo = require_tool("skopeo")
    out = run([skopeo, "inspect", "--tls-verify=false", f"docker://{ref}"]).stdout
    assert json.loads(out)["Digest"] == result["digest"]


def read_local(layout: Path) -> Image:
    image = parse_location(f"oci:{layout}:run").read(Options(platform=PLATFORM))
    assert isinstance(image, Image)
    return image


def test_secret_sweep_with_registry_credentials_and_database_password(
        cli, app_on_busybox: Path, tmp_path: Path, tls_registry, postgres,  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing written or printed by an export carries a secret."""
    import io

    registry = tls_registry
    require_module("adbc_driver_postgresql")
    from postgres_fixtures import PASSWORD as DB_PASSWORD

    postgres.psql("DROP TABLE IF EXISTS sweep; CREATE TABLE sweep (k int PRIMARY KEY, v text); "
                  "INSERT INTO sweep VALUES (1, 'visible'); ALTER TABLE sweep OWNER TO exporter;")
    toml = (app_on_busybox / "ociforge.toml").read_text().replace(
        'source = "sqlite:///data/greetings.db"\ntable = "greetings"',
        f'source = "{postgres.url}"\ntable = "sweep"')
    (app_on_busybox / "ociforge.toml").write_text(toml)
    monkeypatch.setattr("sys.stdin", io.StringIO(registry.password + "\n"))
    code, _, stderr = cli("login", registry.host, "-u", registry.username, "--password-stdin",
                          "--ca-cert", registry.ca_path)
    assert code == 0, stderr
    ref = f"{registry.host}/sweep/hello:1"
    report_path = tmp_path / "report.json"
    code, stdout, stderr = cli("-vv", "export", app_on_busybox, "--with-files", "-o", ref,
                               "--ca-cert", registry.ca_path, "--report", report_path)
    assert code == 0, stderr
    pulled = parse_location(ref).read(Options(platform=PLATFORM, registry=RegistryOptions(
        ca_cert=str(registry.ca_path))))
    assert isinstance(pulled, Image)
    from test_export import all_bytes

    written = all_bytes(pulled).decode("utf-8", "replace") + report_path.read_text()
    printed = stdout + stderr
    import base64

    basic = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    secrets = [registry.password, basic, DB_PASSWORD, "tok_demo_not_a_real_secret",
               "27000@license.example.com", "not-a-real-password", "base-password-value"]
    for secret in secrets:
        assert secret not in written, secret
        assert secret not in printed, secret
    assert "visible" in written   # the table really is in the image
