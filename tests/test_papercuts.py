"""What a new user tripped over: each papercut, checked the way the user met it."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from registry_fixtures import make_image

from ociforge.cli import build_parser
from ociforge.stores.layout import Layout

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello"


@pytest.fixture
def hello(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of examples/hello, with the working directory next to it."""
    app = tmp_path / "apps" / "hello"
    shutil.copytree(HELLO, app)
    monkeypatch.chdir(tmp_path)
    return app


def test_export_takes_the_toml_file_itself(cli, hello: Path, tmp_path: Path) -> None:
    code, out, err = cli("export", "apps/hello/ociforge.toml", "-o", "oci:lay:1", "--json")
    assert code == 0, err
    code, out2, _ = cli("export", "apps/hello", "-o", "oci:lay:2", "--json")
    assert json.loads(out)["digest"] == json.loads(out2)["digest"]
    (hello / "other.toml").write_text("[app]\nname = 'x'\n")
    code, _, err = cli("export", "apps/hello/other.toml")
    assert code == 2 and "ociforge.toml" in err


def test_toml_errors_name_the_file_as_given_and_the_line(cli, hello: Path) -> None:
    spec = hello / "ociforge.toml"
    text = spec.read_text()
    spec.write_text(text.replace("[[layers]]", "[[layer]]", 1))
    code, _, err = cli("export", "apps/hello")
    line = text.splitlines().index("[[layers]]                   # the program; its own "
                                   "layer so config edits don't re-push it") + 1
    assert code == 2
    assert f"apps/hello/ociforge.toml:{line}: unknown section [[layer]] (did you mean " \
           "[[layers]]?)" in err
    assert str(hello.resolve()) not in err


def test_a_missing_table_names_its_line_and_the_one_meant(cli, hello: Path) -> None:
    spec = hello / "ociforge.toml"
    text = spec.read_text().replace('table = "greetings"', 'table = "greetngs"')
    spec.write_text(text)
    line = text.splitlines().index('table = "greetngs"') + 1
    code, _, err = cli("export", "apps/hello", "--with-files", "-o", "out.tar")
    assert code == 2
    assert f"apps/hello/ociforge.toml:{line}: tables[0].table: no table 'greetngs'" in err
    assert "(did you mean 'greetings'?)" in err
    assert not Path("out.tar").exists()


def test_allow_env_is_in_the_report_and_the_summary(cli, hello: Path) -> None:
    code, _out, err = cli("export", "apps/hello", "--allow-env", "HELLO_SEAT_POOL",
                         "--report", "r.json", "-o", "out.tar")
    assert code == 0, err
    report = json.loads(Path("r.json").read_text())
    assert report["overridden"] == [{"name": "HELLO_SEAT_POOL", "rule": "license-env-config",
                                     "kind": "license", "origin": "env_file",
                                     "allowed_by": "--allow-env"}]
    assert "HELLO_SEAT_POOL" not in {d["name"] for d in report["dropped_env"]}
    assert "license-env-config" in report["rules"]
    assert "kept     variables: HELLO_SEAT_POOL (--allow-env, overrides " \
           "license-env-config)" in err
    code, _, err = cli("verify", "out.tar", "--report", "r.json")
    assert code == 0, err
    # without --allow-env the report has no such key (and older reports keep their digests)
    assert cli("export", "apps/hello", "--report", "r2.json", "-o", "out2.tar")[0] == 0
    assert "overridden" not in json.loads(Path("r2.json").read_text())


def test_file_counts_count_files_with_the_right_plural(cli, hello: Path) -> None:
    code, _, err = cli("export", "apps/hello", "--with-files", "--report", "r.json",
                       "-o", "out.tar", "--progress", "plain", "--no-cache")
    assert code == 0, err
    layers = {e["source"]: e["files"] for e in json.loads(Path("r.json").read_text())["layers"]}
    # app/: bin/hello, LICENSE, licenses/THIRD-PARTY-NOTICES.txt (solver.lic left out);
    # no folder is a file
    assert layers == {"app": 3, "config": 1, "project": 3, "greetings": 1}
    assert "config                   1 file, " in err and "1 files" not in err
    # the progress lines count as the summary does (app/ holds 3 folders as well)
    built = {line.split(" (")[0]: line for line in err.splitlines()
             if line.startswith("built ")}
    assert ", 3 files, " in built["built runtime layer app"], built
    assert ", 1 file, " in built["built runtime layer config"], built
    code, _, events = cli("export", "apps/hello", "-o", "out2.tar", "--progress", "json",
                          "--no-cache")
    assert code == 0, events
    ends = [e for e in map(json.loads, (x for x in events.splitlines() if x.startswith("{")))
            if e["event"] == "end" and e["phase"] == "build"]
    assert sorted((e["files"], e["files_total"]) for e in ends) == [(1, 1), (3, 3)], ends
    assert "left out 2 files:" in err and "5 rows ->" in err
    # a folder left out whole is said to be one (not counted as a file)
    (hello / "project" / "nb" / ".ipynb_checkpoints").mkdir(parents=True)
    (hello / "project" / "nb" / ".ipynb_checkpoints" / "a-checkpoint.ipynb").write_text("{}")
    (hello / "project" / "nb" / "a.ipynb").write_text("{}")
    for run, cache in enumerate(("--no-cache", "--cache-dir=cache", "--cache-dir=cache")):
        code, _, err = cli("export", "apps/hello", "--with-files", "--report", "r3.json",
                           "-o", "out3.tar", cache, "--progress", "plain")
        assert code == 0, err
        reused = [line for line in err.splitlines()
                  if line.startswith("built files layer project (from the cache")]
        assert bool(reused) == (run == 2), err    # the third run replays the cache's record
        assert "left out 2 files and 1 folder: " in err, err
        assert "/files/nb/.ipynb_checkpoints/ (jupyter-checkpoints)" in err, err
        left = json.loads(Path("r3.json").read_text())["left_out_files"]
        assert {"path": "/files/nb/.ipynb_checkpoints", "rule": "jupyter-checkpoints",
                "layer": "files", "folder": True} in left, left
        assert sum(1 for e in left if "folder" in e) == 1, left


def test_copy_names_the_archive_after_the_source(cli, registry, tmp_path: Path) -> None:
    repo = f"{registry.host}/team/web-{secrets.token_hex(3)}"
    src = tmp_path / "src"
    Layout(src).put(make_image(tmp_path), "x")
    assert cli("copy", f"oci:{src}:x", f"{repo}:1.2")[0] == 0
    code, out, err = cli("copy", f"{repo}:1.2", tmp_path / "out.tar", "--json")
    assert code == 0, err
    assert json.loads(out)["destinations"][0]["name"] == f"{repo}:1.2"
    with tarfile.open(tmp_path / "out.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == [f"{repo}:1.2"]
    # an archive named in the archive keeps its name when copied to another file
    code, out, err = cli("copy", tmp_path / "out.tar", tmp_path / "again.tar", "--json")
    assert code == 0 and json.loads(out)["destinations"][0]["name"] == f"{repo}:1.2"
    # --tag still decides; an oci: source without a name: the file's own name
    code, out, _ = cli("copy", f"{repo}:1.2", tmp_path / "t.tar", "--tag", "me/app:3", "--json")
    assert json.loads(out)["destinations"][0]["name"] == "me/app:3"
    code, out, _ = cli("copy", f"oci:{src}:x", tmp_path / "plain.tar", "--json")
    assert json.loads(out)["destinations"][0]["name"] == "plain:latest"


# -- help and options -----------------------------------------------------------------------

TRANSPORT_USERS = {"--jobs": {"append", "copy", "export", "verify", "diff"},
                   "--chunk-size": {"append", "copy", "export", "sign"},
                   "--platform": {"append", "copy", "export", "inspect", "verify", "diff"}}


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_option_is_explained_and_only_where_it_applies() -> None:
    for name, parser in _commands().items():
        for action in parser._actions:
            if action.option_strings and action.dest != "debug":
                assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
        options = set(parser._option_string_actions)
        for option, users in TRANSPORT_USERS.items():
            assert (option in options) == (name in users), (name, option)


def test_a_bad_option_points_to_that_command_s_help(cli) -> None:
    code, _, err = cli("copy", "a.tar", "b.tar", "--with-referers")
    assert code == 2
    assert "(did you mean --with-referrers?)" in err and "`ociforge copy --help`" in err
    code, _, err = cli("tags", "oci:x", "--jobs", "2")
    assert code == 2 and "`ociforge tags --help`" in err
    code, out, err = cli("--json", "rm", "oci:x:1", "--bogus")
    assert code == 2 and "`ociforge rm --help`" in json.loads(out)["error"]
    # a command's option before the command: said so, not "did you mean" itself
    code, _, err = cli("--with-files", "export", "app")
    assert (code, err) == (2, "ociforge export: error: --with-files is an option of "
                              "`ociforge export`: put it after the command "
                              "(see `ociforge export --help`)\n")
    code, _, err = cli("--jobs", "3", "copy", "a.tar", "b.tar")
    assert (code, err) == (2, "ociforge copy: error: --jobs is an option of `ociforge copy`: "
                              "put it after the command (see `ociforge copy --help`)\n")
    code, _, err = cli("--jobs=3", "-v", "copy", "a.tar", "b.tar")
    assert code == 2 and "--jobs is an option of `ociforge copy`: put it after" in err
    code, _, err = cli("--with-files", "copy", "a.tar", "b.tar")
    assert code == 2 and "--with-files is not an option of `ociforge copy` (it is one of " \
        "`ociforge export`)" in err


def test_every_command_has_its_help(cli) -> None:
    for name in _commands():
        with pytest.raises(SystemExit):
            build_parser().parse_args([name, "--help"])
    code, out, _err = cli("--help")
    assert code == 0
    assert all(name in out for name in ("diff", "tags", "rm", "export"))


def test_outputs_make_missing_folders(cli, tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    dests = [tmp_path / "x" / "1" / "a.tar", f"oci-archive:{tmp_path / 'x' / '2' / 'a.tar'}",
             f"oci:{tmp_path / 'x' / '3' / 'lay'}"]
    args: list[Any] = []
    for dest in dests:
        args += ["-o", dest]
    code, _, err = cli("append", "scratch", "--layer", f"{tmp_path / 'a'}:/a", *args)
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "x")) == ["1", "2", "3"]
