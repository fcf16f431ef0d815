"""Dropped values leave no trace in the exported image (security review, issue 4).

The base's build leftovers (``container_config``) and history text repeat the
build's environment; the app's ociforge.toml, a .git folder and private keys
with ordinary names could ride along in the files layer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from test_export import EXAMPLE, OPTIONS, all_bytes, env_of, layer_members, read_image

from ociforge.model import mutate
from ociforge.model.descriptor import Descriptor
from ociforge.model.digest import Digest
from ociforge.model.image import Image
from ociforge.model.jsonutil import canonical
from ociforge.model.platform import Platform
from ociforge.stores.locations import parse_location

CC_SECRET = "ccsecret42-only-in-container-config"
HISTORY_TOKEN = "hist-token-5f1c"
DB_PASSWORD = "db/pass@word 99"
CLONE_TOKEN = "ghp_cloneTOKEN77"


def _with_config(image: Image, config: dict[str, Any]) -> Image:
    """The same layers under a hand-written config (as a foreign builder wrote it)."""
    config_bytes = canonical(config)
    manifest = dict(image.manifest)
    manifest["config"] = Descriptor(manifest["config"]["mediaType"],
                                    Digest.of_bytes(config_bytes), len(config_bytes)).to_dict()
    return Image(canonical(manifest), config_bytes, image.layers, None)


def _leaky_base(tmp_path: Path) -> Image:
    from imagegen import make_layer

    layer = make_layer(tmp_path / "layers", content=b"hi", name="etc/x")
    base = mutate.append_layers(mutate.scratch(Platform.parse("linux/amd64")), [layer],
                                created_by=["/bin/sh -c #(nop) ADD file:abc in /"], epoch=0)
    config = dict(base.config)
    db_url = f"postgresql://app:{DB_PASSWORD}@db/app"
    config["config"] = {"Env": ["PATH=/bin", f"API_TOKEN={HISTORY_TOKEN}", f"DB_URL={db_url}"]}
    config["container_config"] = {"Env": [f"BUILD_TOKEN={CC_SECRET}"],
                                  "Cmd": ["/bin/sh", "-c", f"#(nop) ENV BUILD_TOKEN={CC_SECRET}"]}
    config["container"] = "3f2a9c"
    config["docker_version"] = "20.10.7"
    config["history"] = [
        *config["history"],
        {"created_by": f"/bin/sh -c #(nop) ENV API_TOKEN={HISTORY_TOKEN} DB_URL={db_url}",
         "empty_layer": True},
        {"created_by": f"/bin/sh -c git clone https://bob:{CLONE_TOKEN}@github.com/x/y",
         "comment": f"token {HISTORY_TOKEN}", "empty_layer": True},
    ]
    return _with_config(base, config)


def _app(tmp_path: Path, base_location: str) -> Path:
    app = tmp_path / "hello"
    shutil.copytree(EXAMPLE, app, symlinks=True)
    toml = (app / "ociforge.toml").read_text()
    (app / "ociforge.toml").write_text(toml.replace('base = "scratch"',
                                                    f'base = "{base_location}"'))
    return app


def test_dropped_values_are_not_in_any_blob_and_the_image_verifies(  # type: ignore[no-untyped-def]
        cli, tmp_path: Path) -> None:
    base = _leaky_base(tmp_path)
    parse_location(f"oci:{tmp_path / 'base'}:1").write(base, OPTIONS)
    app = _app(tmp_path, f"oci:{tmp_path / 'base'}:1")
    out = tmp_path / "out"
    code, _, stderr = cli("export", app, "-o", f"oci:{out}", "--report", tmp_path / "r.json")
    assert code == 0, stderr
    for blob in (out / "blobs" / "sha256").iterdir():
        data = blob.read_bytes()
        for needle in (CC_SECRET, HISTORY_TOKEN, DB_PASSWORD, "pass@word", CLONE_TOKEN):
            assert needle.encode() not in data, f"{needle} in {blob.name}"
    image = read_image(f"oci:{out}:latest")
    for key in ("container_config", "container", "docker_version"):
        assert key not in image.config
    # History stays one entry per layer (empty_layer flags as they were), values masked.
    history = image.config["history"]
    assert len([h for h in history if not h.get("empty_layer")]) == len(image.layers)
    assert history[0]["created_by"] == "/bin/sh -c #(nop) ADD file:abc in /"
    assert history[1] == {"created_by": "/bin/sh -c #(nop) ENV API_TOKEN=*** DB_URL=***",
                          "empty_layer": True}
    assert history[2]["created_by"] == \
        "/bin/sh -c git clone https://bob:***@github.com/x/y"
    assert history[2]["comment"] == "token ***" and history[2]["empty_layer"] is True
    assert env_of(image)["PATH"] and "API_TOKEN" not in env_of(image)
    code, _, stderr = cli("verify", f"oci:{out}")
    assert code == 0, stderr


def test_history_of_a_clean_base_is_kept_as_written(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from imagegen import make_layer

    layer = make_layer(tmp_path / "layers", content=b"hi", name="etc/x")
    base = mutate.append_layers(mutate.scratch(Platform.parse("linux/amd64")), [layer],
                                created_by=["/bin/sh -c #(nop) ENV LANG=C.UTF-8 A=b"], epoch=0)
    parse_location(f"oci:{tmp_path / 'base'}:1").write(base, OPTIONS)
    app = _app(tmp_path, f"oci:{tmp_path / 'base'}:1")
    code, _, stderr = cli("export", app, "-o", f"oci:{tmp_path / 'out'}")
    assert code == 0, stderr
    image = read_image(f"oci:{tmp_path / 'out'}:latest")
    assert image.config["history"][0]["created_by"] == "/bin/sh -c #(nop) ENV LANG=C.UTF-8 A=b"


def test_spec_git_folder_and_named_keys_stay_out_of_the_files_layer(  # type: ignore[no-untyped-def]
        cli, tmp_path: Path) -> None:
    app = _app(tmp_path, "scratch")
    toml = (app / "ociforge.toml").read_text().replace('src = "project"', 'src = "."')
    toml = toml.replace('HELLO_MODE = "demo"', 'HELLO_MODE = "demo"\nSERVICE_TOKEN = "toml-tok-31"')
    (app / "ociforge.toml").write_text(toml)
    git = app / "project" / ".git"
    git.mkdir()
    (git / "config").write_text(f'[remote "origin"]\n\turl = https://bob:{CLONE_TOKEN}@github.com/x/y\n')
    (app / "project" / "deploy_key").write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----\n")
    (app / "project" / "notes.md").write_text("how to rotate: -----BEGIN PRIVATE KEY----- ...\n")
    report_path = tmp_path / "r.json"
    code, _, stderr = cli("export", app, "--with-files", "-o", f"oci:{tmp_path / 'out'}",
                          "--report", report_path)
    assert code == 0, stderr
    image = read_image(f"oci:{tmp_path / 'out'}:latest")
    files = layer_members(image, 2)
    assert "files/project/notes.md" in files            # a key mentioned in prose stays
    assert not any(name.startswith(("files/ociforge.toml", "files/project/.git",
                                    "files/project/deploy_key")) for name in files)
    report = json.loads(report_path.read_text())
    left_out = {(e["path"], e["rule"]) for e in report["left_out_files"]}
    assert {("/files/ociforge.toml", "spec-file"), ("/files/project/.git", "git-folder"),
            ("/files/project/deploy_key", "private-key-content")} <= left_out
    assert {"spec-file", "git-folder", "private-key-content"} <= set(report["rules"])
    everything = all_bytes(image)
    for needle in (CLONE_TOKEN, "toml-tok-31", "OPENSSH PRIVATE KEY"):
        assert needle.encode() not in everything
