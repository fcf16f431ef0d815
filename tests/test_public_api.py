"""The package as its users get it: a wheel with py.typed, real types for mypy, a fast import.

The wheel is built from a copy of the sources and installed into a fresh
virtual environment; mypy (strict) then checks a small user script against
that installed package, as it would in a user's project: without py.typed it
would refuse the import, and with a module ``__getattr__`` returning Any
every ``reveal_type`` would say Any.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

USER_SCRIPT = '''
import ociforge
from ociforge import AppendRequest, Options, append_image, inspect_image, parse_location

reveal_type(ociforge.Image)
reveal_type(ociforge.__version__)
reveal_type(parse_location)
reveal_type(append_image)
reveal_type(ociforge.copy_image)
reveal_type(ociforge.export_app)
reveal_type(ociforge.sign_location)
reveal_type(ociforge.RegistryClient.list_tags)
reveal_type(inspect_image("oci:x", view="raw"))
reveal_type(inspect_image("oci:x"))
reveal_type(Options().registry.timeout)
reveal_type(ociforge.Digest.parse("sha256:" + "0" * 64).new_hasher())
request = AppendRequest(destinations=["oci:out"], compression="gzip")
reveal_type(request.compression)
bad = AppendRequest(destinations=["oci:out"], compression="lz4")
'''

B = r"(builtins\.)?"   # mypy versions differ in whether they print the builtins prefix
EXPECTED = [
    rf'Revealed type is "def \(manifest_bytes: {B}bytes, config_bytes: {B}bytes, '
    rf'layers: {B}tuple\[ociforge.model.layer.Layer, \.\.\.\], .*-> ociforge.model.image.Image"',
    rf'Revealed type is "{B}str"',
    rf'Revealed type is "def \(text: {B}str, \*, role: {B}str \| None =, base_dir: '
    rf'{B}str \| os.PathLike\[{B}str\] \| None =\) -> ociforge.stores.locations.Location"',
    r'Revealed type is "def \(request: ociforge.pipeline.append.AppendRequest\) -> '
    r'ociforge.pipeline.append.AppendOutcome"',
    r'-> ociforge.pipeline.copy.CopyOutcome"',
    r'-> ociforge.app.export.api.ExportOutcome"',
    r'options: ociforge.options.Options \| None =.*-> ociforge.trust.sign.SignatureInfo"',
    rf'-> {B}list\[{B}str\]"',
    rf'Revealed type is "{B}bytes"',
    rf'Revealed type is "{B}dict\[{B}str, {B}str \| {B}int \| {B}float \| {B}bool \| ',
    rf'Revealed type is "{B}float"',
    r'Revealed type is "ociforge.model.digest.Hasher"',
    r"Revealed type is \"Literal\['gzip'\] \| Literal\['zstd'\] \| Literal\['none'\]\"",
    r'Argument "compression" to "AppendRequest" has incompatible type "Literal\[.lz4.\]"',
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (nothing is written into the repo)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "ociforge", src / "ociforge",
                    ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(out), str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheels = list(out.glob("ociforge-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_the_wheel_ships_py_typed_and_every_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ociforge/py.typed" in names
    packages = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "ociforge").rglob("*.py")}
    assert {f"{p}/__init__.py" for p in packages} <= names


def test_mypy_sees_real_types_through_the_installed_package(
        wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True).stdout
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    site.strip(), str(wheel)], check=True, timeout=300)
    script = tmp_path / "user.py"
    script.write_text(USER_SCRIPT)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--python-executable",
         str(python), "--follow-imports=silent", str(script)],
        capture_output=True, text=True, cwd=tmp_path, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(str(script.name))]
    assert len(lines) == len(EXPECTED), proc.stdout
    for line, pattern in zip(lines, EXPECTED, strict=True):
        assert re.search(pattern, line), f"{line!r} does not match {pattern!r}"
    assert "Any" not in "\n".join(lines[:-1]), proc.stdout
    assert "py.typed" not in proc.stdout and "missing library stubs" not in proc.stdout


def test_import_ociforge_is_cheap() -> None:
    """`import ociforge` loads no submodule until a name is used (the CLI starts fast)."""
    code = ("import sys, ociforge; print(sorted(m for m in sys.modules "
            "if m.startswith('ociforge')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, timeout=60).stdout
    assert out.strip() == "['ociforge']"
    code = "import ociforge; print(ociforge.Image.__module__, 'build_layer' in dir(ociforge))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, timeout=60).stdout
    assert out.split() == ["ociforge.model.image", "True"]
