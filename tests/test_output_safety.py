"""Outputs the user names are never replaced by a regular file when they are something
else, and two outputs of one run never land on the same file.

- a symlink is followed: its target is replaced atomically, the link stays a link;
- a FIFO or character device (/dev/null, a named pipe, /dev/stdout) is written in place;
- a socket, block device or directory is refused: exit 2, one line, nothing written.

Device nodes are made with os.mknod in tmp (root only); nothing here writes to the
machine's own /dev/null or /dev/stdout.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
from tools import require_root, skip

from ociforge.errors import InvalidInputError
from ociforge.fsutil import output_file, resolve_output

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "hello"


def _mknod(path: Path, kind: int, major: int, minor: int) -> Path:
    require_root("device nodes")
    try:
        os.mknod(path, kind | 0o666, os.makedev(major, minor))
    except PermissionError:
        skip("mknod is not allowed here (a container without CAP_MKNOD)")
    return path


def _read_fifo(path: Path, into: list[bytes]) -> threading.Thread:
    def reader() -> None:
        with open(path, "rb") as handle:
            into.append(handle.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    return thread


# -- symlinks -------------------------------------------------------------------

def test_a_symlinked_tar_output_replaces_the_target_and_keeps_the_link(cli, tmp_path: Path
                                                                       ) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "img.tar"
    target.write_bytes(b"old")
    link = tmp_path / "out.tar"
    link.symlink_to(Path("real") / "img.tar")
    code, _, err = cli("append", "scratch", "-o", link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(Path("real") / "img.tar")
    assert tarfile.is_tarfile(target)
    with tarfile.open(target) as tar:
        assert "manifest.json" in tar.getnames()
    assert [p.name for p in (tmp_path / "real").iterdir()] == ["img.tar"]  # no temp left


def test_a_dangling_symlink_output_creates_its_target(cli, tmp_path: Path) -> None:
    link = tmp_path / "r.json"
    link.symlink_to(tmp_path / "made.json")
    code, _, err = cli("export", EXAMPLE, "-o", f"oci:{tmp_path / 'lay'}", "--report", link)
    assert code == 0, err
    assert link.is_symlink()
    assert json.loads((tmp_path / "made.json").read_text())


def test_a_symlink_loop_is_bad_input(cli, tmp_path: Path) -> None:
    (tmp_path / "a.tar").symlink_to("b.tar")
    (tmp_path / "b.tar").symlink_to("a.tar")
    code, _, err = cli("append", "scratch", "-o", tmp_path / "a.tar")
    assert code == 2 and "symbolic links" in err and err.count("\n") == 1
    assert (tmp_path / "a.tar").is_symlink() and (tmp_path / "b.tar").is_symlink()


def test_login_follows_a_symlinked_config_json(tmp_path: Path, monkeypatch) -> None:
    """Dotfile managers link ~/.docker/config.json; docker follows the link, so do we."""
    from ociforge.remote import credentials

    (tmp_path / "dot").mkdir()
    real = tmp_path / "dot" / "real.json"
    real.write_text('{"auths": {}, "keep": 1}\n')
    (tmp_path / "dc").mkdir()
    link = tmp_path / "dc" / "config.json"
    link.symlink_to(Path("..") / "dot" / "real.json")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    credentials.store("reg.test:5000", "me", "s3cret")
    assert link.is_symlink()
    doc = json.loads(real.read_text())
    assert doc["keep"] == 1 and "reg.test:5000" in doc["auths"]
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert credentials.lookup("reg.test:5000") is not None
    assert credentials.erase("reg.test:5000") is True
    assert link.is_symlink() and json.loads(real.read_text())["auths"] == {}


def test_login_refuses_a_config_json_that_is_a_fifo(tmp_path: Path, monkeypatch) -> None:
    from ociforge.remote import credentials

    os.mkfifo(tmp_path / "config.json")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    with pytest.raises(InvalidInputError, match="not a regular file"):
        credentials.store("reg.test:5000", "me", "s3cret")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "config.json").st_mode)


# -- streams: FIFOs, character devices, our own descriptors ---------------------------

def test_a_fifo_output_is_streamed_into_and_stays_a_fifo(cli, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.tar"
    os.mkfifo(fifo)
    got: list[bytes] = []
    thread = _read_fifo(fifo, got)
    code, _, err = cli("append", "scratch", "-o", fifo)
    thread.join(10)
    assert code == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    (tmp_path / "copy.tar").write_bytes(got[0])
    with tarfile.open(tmp_path / "copy.tar") as tar:
        assert "manifest.json" in tar.getnames()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.tar", "pipe.tar"]


def test_a_report_into_a_fifo_is_the_report(cli, tmp_path: Path) -> None:
    fifo = tmp_path / "report"
    os.mkfifo(fifo)
    got: list[bytes] = []
    thread = _read_fifo(fifo, got)
    code, _, err = cli("export", EXAMPLE, "-o", f"oci:{tmp_path / 'lay'}", "--report", fifo)
    thread.join(10)
    assert code == 0, err
    assert json.loads(got[0]) and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_null_device_output_stays_a_device(cli, tmp_path: Path) -> None:
    null = _mknod(tmp_path / "nulldev", stat.S_IFCHR, 1, 3)
    try:
        code, _, err = cli("append", "scratch", "-o", null)
        assert code == 0, err
        code, _, err = cli("export", EXAMPLE, "-o", null, "--report", null)
        assert code == 0, err  # two writes to a character device do not clobber each other
        info = os.lstat(null)
        assert stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(1, 3)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["nulldev"]
    finally:
        null.unlink()


def test_a_link_to_our_own_stdout_writes_to_that_descriptor_keeping_append_mode(
        tmp_path: Path) -> None:
    """What `--report /dev/stdout >> log` does: the report is appended to the log."""
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    log = tmp_path / "log"
    log.write_bytes(b"BEFORE\n")
    with open(log, "ab") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "ociforge", "export", str(EXAMPLE), "-o",
             f"oci:{tmp_path / 'lay'}", "--report", str(link), "--json"],
            stdout=out, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)},
            cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = log.read_text()
    assert text.startswith("BEFORE\n{") and link.is_symlink()
    report = json.JSONDecoder().raw_decode(text[len("BEFORE\n"):])[0]
    assert report["app"] == "hello" and report["report_digest"].startswith("sha256:")


def test_a_descriptor_not_open_for_writing_is_bad_input(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.write_text("x")
    with open(source, "rb") as handle, pytest.raises(InvalidInputError,
                                                     match="not open for writing"):
        resolve_output(f"/proc/self/fd/{handle.fileno()}")


def test_output_file_streams_without_chmod_or_rename(tmp_path: Path) -> None:
    fifo = tmp_path / "f"
    os.mkfifo(fifo, 0o640)
    got: list[bytes] = []
    thread = _read_fifo(fifo, got)
    with output_file(fifo, 0o444) as out:
        out.write(b"hello")
    thread.join(10)
    assert got == [b"hello"] and stat.S_IMODE(os.lstat(fifo).st_mode) == 0o640


# -- refused: sockets, block devices, directories -------------------------------------

def test_a_socket_output_is_bad_input(cli, tmp_path: Path) -> None:
    path = tmp_path / "s.tar"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        code, _, err = cli("append", "scratch", "-o", path)
        assert code == 2 and "is a socket" in err and err.count("\n") == 1
        code, _, err = cli("export", EXAMPLE, "-o", f"oci:{tmp_path / 'lay'}", "--report", path)
        assert code == 2 and "is a socket" in err
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        assert not (tmp_path / "lay").exists()
    finally:
        server.close()


def test_a_block_device_output_is_bad_input(cli, tmp_path: Path) -> None:
    block = _mknod(tmp_path / "blk", stat.S_IFBLK, 7, 0)  # a loop device node; never opened
    try:
        code, _, err = cli("append", "scratch", "-o", block)
        assert code == 2 and "block device" in err
        code, _, err = cli("copy", "scratch", block)
        assert stat.S_ISBLK(os.lstat(block).st_mode)
    finally:
        block.unlink()


def test_a_symlink_to_a_directory_is_bad_input(cli, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "r.json").symlink_to("d")
    code, _, err = cli("export", EXAMPLE, "-o", f"oci:{tmp_path / 'lay'}",
                       "--report", tmp_path / "r.json")
    assert code == 2 and "directory" in err
    assert not (tmp_path / "lay").exists() and list((tmp_path / "d").iterdir()) == []


# -- two outputs, one file ------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ("append", "scratch", "-o", "x.tar", "-o", "x.tar"),
    ("append", "scratch", "-o", "q.tar", "-o", "oci-archive:q.tar"),
    ("append", "scratch", "-o", "q.tar", "-o", "./sub/../q.tar"),
    ("copy", "oci:src:1", "c.tar", "docker-archive:./c.tar"),
    ("export", str(EXAMPLE), "-o", "same.tar", "--report", "same.tar"),
    ("export", str(EXAMPLE), "-o", "same.tar", "--report", "./same.tar"),
    ("export", str(EXAMPLE), "-o", "oci:lay:v2", "--report", "lay/index.json"),
    ("export", str(EXAMPLE), "-o", "oci:lay:v2", "--report", "lay/../lay/blobs/r.json"),
    ("append", "scratch", "-o", "oci:lay:v2", "-o", "lay/x.tar"),
])
def test_two_outputs_on_one_file_are_refused_before_anything_is_written(
        cli, tmp_path: Path, monkeypatch, argv: tuple[str, ...]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    assert cli("append", "scratch", "-o", "oci:src:1")[0] == 0
    assert cli("append", "scratch", "-o", "oci:lay:v1")[0] == 0
    index = (tmp_path / "lay" / "index.json").read_bytes()
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    code, _, err = cli(*argv)
    assert code == 2, err
    assert ("the same file" in err or "inside the OCI layout" in err) and err.count("\n") == 1
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "lay" / "index.json").read_bytes() == index


def test_outputs_that_are_one_file_by_link_are_refused(cli, tmp_path: Path) -> None:
    (tmp_path / "a.tar").write_bytes(b"keep")
    os.link(tmp_path / "a.tar", tmp_path / "hard.tar")
    (tmp_path / "soft.tar").symlink_to("a.tar")
    for other in ("hard.tar", "soft.tar"):
        code, _, err = cli("append", "scratch", "-o", tmp_path / "a.tar", "-o", tmp_path / other)
        assert code == 2 and "the same file" in err
    assert (tmp_path / "a.tar").read_bytes() == b"keep"


def test_two_tags_in_one_layout_are_fine(cli, tmp_path: Path) -> None:
    lay = tmp_path / "lay"
    code, _, err = cli("append", "scratch", "-o", f"oci:{lay}:a", "-o", f"oci:{lay}:b",
                       "-o", tmp_path / "x.tar")
    assert code == 0, err
    tags = [m["annotations"]["org.opencontainers.image.ref.name"]
            for m in json.loads((lay / "index.json").read_text())["manifests"]]
    assert sorted(tags) == ["a", "b"]


def test_an_image_written_to_stdout_is_the_whole_stream(tmp_path: Path) -> None:
    """`-o /dev/stdout`: stdout carries the archive and nothing else; the result goes to stderr."""
    import subprocess
    import sys
    import tarfile

    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "a").write_text("a\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ociforge", "append", "scratch", "--layer", f"{tree}:/t",
         "-o", "/dev/stdout", "--tag", "me/app:1"],
        capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert b"sha256:" in proc.stderr
    archive = tmp_path / "out.tar"
    archive.write_bytes(proc.stdout)
    with tarfile.open(archive) as tar:
        assert "manifest.json" in tar.getnames()
    assert b"sha256:" not in proc.stdout[-1024:]  # no result line after the archive
    again = subprocess.run([sys.executable, "-m", "ociforge", "verify", str(archive)],
                           capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr


def test_only_the_run_that_writes_to_stdout_prints_its_result_to_stderr(tmp_path: Path) -> None:
    """Two runs in one process: the first writes its archive to stdout (its result goes to
    stderr), the second writes a layout and prints its result on stdout as usual."""
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "a").write_text("a\n")
    layer, layout = f"{tree}:/t", f"oci:{tmp_path / 'lay'}"
    script = (
        "from ociforge.cli import main\n"
        f"assert main(['append', 'scratch', '--layer', {layer!r}, '-o', '/dev/stdout',"
        " '--tag', 'me/app:1']) == 0\n"
        f"assert main(['append', 'scratch', '--layer', {layer!r}, '-o', {layout!r}]) == 0\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(b"sha256:") == 1, proc.stderr      # the first run's result
    result = proc.stdout[proc.stdout.rindex(b"\0") + 1:].decode().strip()
    assert result.startswith("sha256:") and "oci:" in result, result    # the second's
