"""ociforge.toml loading: defaults, types, and errors that name the key and the line."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ociforge.app.envfile import parse_env_text, read_env_file
from ociforge.app.spec import load_spec
from ociforge.app.tomlpos import KeyLines
from ociforge.errors import ConfigFileError

FULL = """\
[app]
name = "acme/solver"
base = "oci:base:1.0"
platform = "linux/amd64"
licensed = false

[config]
entrypoint = ["/app/bin/run"]
cmd = "--port 8080 --verbose"
env = { MODE = "prod", WORKERS = 4 }
env_file = "runtime.env"
workdir = "/app"
user = "1000:1000"
ports = [8080, "9090/udp"]
labels = { "org.example.team" = "ops" }
volumes = ["/data"]
stop_signal = "SIGTERM"

[[layers]]
src = "runtime"
dest = "/app"
exclude = ["*.pyc"]

[[layers]]
src = "conf/app.ini"
dest = "/etc/app.ini"

[files]
src = "project"

[[tables]]
source = "sqlite:///data.db"
table = "orders"
format = "csv"

[[tables]]
name = "totals"
source = "postgresql://u:pw@127.0.0.1/db"
query = "SELECT 1 ORDER BY 1"
dest = "/srv/totals.parquet"

[licenses]
env = ["ACME_*"]
files = ["*.acmekey"]
"""


def make_app(root: Path, toml: str) -> Path:
    (root / "runtime").mkdir(parents=True, exist_ok=True)
    (root / "conf").mkdir(exist_ok=True)
    (root / "conf" / "app.ini").write_text("x=1\n")
    (root / "project").mkdir(exist_ok=True)
    (root / "runtime.env").write_text("A=1\n")
    (root / "ociforge.toml").write_text(textwrap.dedent(toml))
    return root


def test_full_spec_loads(tmp_path: Path) -> None:
    spec = load_spec(make_app(tmp_path, FULL))
    assert spec.name == "acme/solver" and spec.base == "oci:base:1.0"
    assert spec.platform == "linux/amd64" and spec.licensed is False
    assert spec.config.entrypoint == ("/app/bin/run",)
    assert spec.config.cmd == ("--port", "8080", "--verbose")
    assert spec.config.env == {"MODE": "prod", "WORKERS": "4"}
    assert spec.config.env_file_path == tmp_path.resolve() / "runtime.env"
    assert spec.config.ports == ("8080", "9090/udp")
    assert spec.config.labels == {"org.example.team": "ops"}
    assert [(x.src, x.dest, x.exclude) for x in spec.layers] == [
        ("runtime", "/app", ("*.pyc",)), ("conf/app.ini", "/etc/app.ini", ())]
    assert spec.files is not None and spec.files.dest == "/files"
    orders, totals = spec.tables
    assert (orders.name, orders.format, orders.dest) == ("orders", "csv", "/data/orders.csv")
    assert (totals.name, totals.format, totals.query) == ("totals", "parquet",
                                                          "SELECT 1 ORDER BY 1")
    assert spec.licenses.env == ("ACME_*",) and spec.licenses.files == ("*.acmekey",)


def test_minimal_spec_defaults(tmp_path: Path) -> None:
    spec = load_spec(make_app(tmp_path, '[app]\nname = "hello"\n'))
    assert spec.base == "scratch" and spec.layers == () and spec.files is None
    assert spec.config.entrypoint is None and spec.tables == ()


@pytest.mark.parametrize(("broken", "message", "line"), [
    ('[app]\nname = "x"\ncolour = "red"\n', r"app\.colour: unknown key", 3),
    ('[app]\nname = "x"\n[config]\nworkdir = 5\n', r"config\.workdir: must be a string", 4),
    ('[app]\nname = "x"\n\n[[layers]]\ndest = "/a"\n', r"layers\[0\]\.src: is required", 4),
    ('[app]\nname = "x"\n[[layers]]\nsrc = "runtime"\ndest = "/a"\n[[layers]]\nsrc = 3\n',
     r"layers\[1\]\.src: must be a string", 7),
    ('[app]\nname = "x"\n[[layers]]\nsrc = "../outside"\ndest = "/a"\n',
     r"layers\[0\]\.src: '\.\./outside' leaves the application folder", 4),
    ('[app]\nname = "x"\n[[layers]]\nsrc = "runtime"\ndest = "relative"\n',
     r"layers\[0\]\.dest: 'relative' must be an absolute path", 5),
    ('[app]\nname = "Not Valid"\n', r"app\.name: 'Not Valid' is not a valid image name", 2),
    ('[app]\nname = "x"\nlicensed = "yes"\n', r"app\.licensed: must be true or false", 3),
    ('[app]\nname = "x"\n[config]\nentrypoint = [1, 2]\n',
     r"config\.entrypoint: must be an array of strings", 4),
    ('[app]\nname = "x"\n[config.env]\nGOOD = "1"\nBAD = [1]\n',
     r"config\.env\.BAD: must be a string", 5),
    ('[app]\nname = "x"\n[config]\nports = ["http"]\n', r"config\.ports: port 'http'", 4),
    ('[app]\nname = "x"\n[[tables]]\nsource = "sqlite:///d.db"\ntable = "t"\nquery = "q"\n',
     r"tables\[0\]: give exactly one of 'table' or 'query'", 3),
    ('[app]\nname = "x"\n[[tables]]\nsource = "mysql://h/db"\ntable = "t"\n',
     r"tables\[0\]\.source: must be a database URL", 4),
    ('[app]\nname = "x"\n[[tables]]\nsource = "sqlite:///d.db"\ntable = "t"\nformat = "xlsx"\n',
     r"tables\[0\]\.format: must be one of parquet, csv", 6),
    ('[app]\nname = "x"\n[frobnicate]\na = 1\n', r"unknown section \[frobnicate\];", 3),
    ('[app]\nname = "x"\n\n[[layer]]\nsrc = "."\n',
     r"unknown section \[\[layer\]\] \(did you mean \[\[layers\]\]\?\)", 4),
    ('[app]\nname = "x"\n[confg]\nuser = "u"\n',
     r"unknown section \[confg\] \(did you mean \[config\]\?\)", 3),
    ('[app]\nname = "x"\n[config]\nentrypont = ["/x"]\n',
     r"config\.entrypont: unknown key \(did you mean 'entrypoint'\?\)", 4),
    ('[config]\nuser = "u"\n', r"section \[app\] is missing", 1),
    ('[app]\nname = "x"\n[config]\nenv_file = "missing.env"\n',
     r"config\.env_file: 'missing.env' does not exist", 4),
    ('[app]\nname = "x"\nplatform = "linux/notanarch"\n', r"app\.platform:", 3),
    ('[app]\nname = "x"\nbase = "ftp://host/img"\n', r"app\.base: unknown location scheme", 3),
])
def test_errors_name_key_and_line(tmp_path: Path, broken: str, message: str, line: int) -> None:
    make_app(tmp_path, broken)
    with pytest.raises(ConfigFileError, match=message) as info:
        load_spec(tmp_path)
    assert f"ociforge.toml:{line}:" in str(info.value)
    assert info.value.exit_code == 2


def test_query_table_name_defaults_to_the_stem_of_dest(tmp_path: Path) -> None:
    make_app(tmp_path, '[app]\nname = "x"\n[[tables]]\nsource = "sqlite:///d.db"\n'
             'query = "SELECT 1 ORDER BY 1"\ndest = "/files/tables/totals.csv"\nformat = "csv"\n'
             '[[tables]]\nsource = "adbc:sqlite:/srv/d.db"\nquery = "SELECT 2"\n'
             'dest = "/data/by-region.parquet"\n')
    first, second = load_spec(tmp_path).tables
    assert (first.name, first.dest, first.format) == ("totals", "/files/tables/totals.csv", "csv")
    assert (second.name, second.source) == ("by-region", "adbc:sqlite:/srv/d.db")


def test_query_table_needs_a_name_or_a_dest(tmp_path: Path) -> None:
    make_app(tmp_path, '[app]\nname = "x"\n[[tables]]\nsource = "sqlite:///d.db"\n'
             'query = "SELECT 1"\n')
    with pytest.raises(ConfigFileError,
                       match=r"tables\[0\]\.name: is required when 'query' is used without"):
        load_spec(tmp_path)
    make_app(tmp_path, '[app]\nname = "x"\n[[tables]]\nsource = "sqlite:///d.db"\n'
             'query = "SELECT 1"\ndest = "/data/bad name.csv"\n')
    with pytest.raises(ConfigFileError, match=r"'bad name' is not a usable file name"):
        load_spec(tmp_path)


def test_missing_toml_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"has no ociforge\.toml"):
        load_spec(tmp_path)
    with pytest.raises(ConfigFileError, match="does not exist"):
        load_spec(tmp_path / "nope")


def test_invalid_toml_reports_position(tmp_path: Path) -> None:
    (tmp_path / "ociforge.toml").write_text('[app]\nname = "x\n')
    with pytest.raises(ConfigFileError, match=r"invalid TOML.*line 2"):
        load_spec(tmp_path)


def test_symlinked_src_leading_outside_is_refused(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink("../outside", app / "runtime")
    (app / "ociforge.toml").write_text('[app]\nname = "x"\n[[layers]]\nsrc = "runtime"\n'
                                       'dest = "/a"\n')
    with pytest.raises(ConfigFileError, match=r"ociforge.toml:4: .*leads out"):
        load_spec(app)


def test_keylines_follow_arrays_and_multiline_values() -> None:
    lines = KeyLines('[app]\nname = "x"\ndesc = """\nname = "fake"\n"""\n'
                     'list = [\n  "a",\n]\n[[layers]]\nsrc = "a"\n[[layers]]\n\nsrc = "b"\n')
    assert lines.line_of(("app", "name")) == 2
    assert lines.line_of(("app", "list")) == 6
    assert lines.line_of(("layers", 1, "src")) == 13
    assert lines.line_of(("layers", 1, "missing")) == 11
    assert lines.line_of(("nothing",)) is None


def test_dotenv_forms() -> None:
    env = parse_env_text(
        "# captured\nexport A=1\nB='single $x # kept'\nC=\"dq \\\"in\\\" \\n\" # c\n"
        "D=plain value # comment\nE=\n\nA=2\n", "app.env")
    assert env == {"A": "2", "B": "single $x # kept", "C": 'dq "in" \n', "D": "plain value",
                   "E": ""}


def test_dotenv_errors_never_show_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"app.env:2: expected NAME=VALUE") as info:
        parse_env_text("OK=1\nthis-is-Secret-Value\n", "app.env")
    assert "Secret" not in str(info.value)
    with pytest.raises(ConfigFileError, match=r"app.env:1: unterminated double quote") as info:
        parse_env_text('PW="hunter2\n', "app.env")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigFileError, match="does not exist"):
        read_env_file(tmp_path / "none.env", "none.env")


def test_documented_example_loads(tmp_path: Path) -> None:
    """docs/export.md's complete ociforge.toml is valid."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "export.md").read_text()
    toml = doc.split("## A complete `ociforge.toml`", 1)[1].split("```toml\n", 1)[1]
    toml = toml.split("```", 1)[0]
    for folder in ("runtime/python", "app", "project", "data"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "runtime.env").write_text("A=1\n")
    (tmp_path / "ociforge.toml").write_text(toml)
    spec = load_spec(tmp_path)
    assert spec.name == "acme/solver" and spec.licensed and len(spec.layers) == 2
    assert [t.name for t in spec.tables] == ["runs", "totals"]
    assert spec.secrets.env == ("*_SEED",)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_dotenv_parser_raises_only_config_errors(text: str) -> None:
    try:
        env = parse_env_text(text, "fuzz.env")
    except ConfigFileError as exc:
        assert "fuzz.env:" in str(exc)
    else:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
