"""Outputs that cannot be written are refused up front (exit 2) and every error names
the user's path, never the temporary file that atomic_write writes first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ociforge.errors import InvalidInputError
from ociforge.fsutil import atomic_write, check_writable_destination, check_writable_folder


def test_writable_destination_accepts_a_plain_file_and_leaves_no_probe(tmp_path: Path) -> None:
    assert check_writable_destination(tmp_path / "x.tar") == tmp_path / "x.tar"
    assert list(tmp_path.iterdir()) == []


def test_missing_parent_folders_are_fine_and_not_made_by_the_check(tmp_path: Path) -> None:
    """One rule for every output: missing folders are created when writing (mkdir -p)."""
    target = tmp_path / "missing" / "deeper" / "x.tar"
    assert check_writable_destination(target) == target
    assert list(tmp_path.iterdir()) == []
    with atomic_write(target) as out:
        out.write(b"data")
    assert target.read_bytes() == b"data"


def test_folders_made_for_a_failed_write_are_removed_again(tmp_path: Path) -> None:
    target = tmp_path / "new" / "sub" / "x.tar"
    with pytest.raises(RuntimeError), atomic_write(target) as out:
        out.write(b"half")
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case, words", [
    ("parent-is-file", "is not a directory"),
    ("grandparent-is-file", "is not a directory"),
    ("is-dir", "is a directory"),
])
def test_writable_destination_refusals(tmp_path: Path, case: str, words: str) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "adir").mkdir()
    path = {"parent-is-file": tmp_path / "file" / "x.tar",
            "grandparent-is-file": tmp_path / "file" / "sub" / "x.tar",
            "is-dir": tmp_path / "adir"}[case]
    with pytest.raises(InvalidInputError, match=words) as err:
        check_writable_destination(path, "--report")
    assert str(path) in str(err.value) and str(err.value).startswith("--report ")


def test_unwritable_folder_is_refused(unwritable: Path) -> None:
    with pytest.raises(InvalidInputError, match="not writable") as err:
        check_writable_destination(unwritable / "x.tar")
    assert str(unwritable / "x.tar") in str(err.value)
    with pytest.raises(InvalidInputError, match="not writable"):
        check_writable_destination(unwritable / "new" / "x.tar")
    with pytest.raises(InvalidInputError, match="not writable"):
        check_writable_folder(unwritable / "new" / "layout")


def test_writable_folder_may_not_exist_yet(tmp_path: Path) -> None:
    assert check_writable_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="not a directory"):
        check_writable_folder(tmp_path / "file" / "lay")


def test_atomic_write_names_the_final_path_not_the_temp_file(unwritable: Path) -> None:
    target = unwritable / "x.tar"
    with pytest.raises(InvalidInputError) as err, atomic_write(target) as out:
        out.write(b"never")
    message = str(err.value)
    assert str(target) in message and ".tmp" not in message and err.value.exit_code == 2


def test_a_write_that_fails_midway_names_the_final_path(tmp_path: Path) -> None:
    """A file-size limit makes the write fail for real (as a full disk would): exit 1,
    the message names the user's path, and no temporary file is left behind."""
    target = tmp_path / "big.bin"
    script = (
        "import resource, signal, sys\n"
        "from ociforge.fsutil import atomic_write\n"
        "from ociforge.errors import OperationError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))\n"
        "try:\n"
        "    with atomic_write(sys.argv[1]) as out:\n"
        "        for _ in range(64):\n"
        "            out.write(b'x' * 65536)\n"
        "except OperationError as exc:\n"
        "    print(exc, exc.exit_code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(target)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"writing {target} failed: File too large")
    assert done.stdout.strip().endswith(" 1") and ".tmp" not in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_archive_outputs_of_append_are_checked_before_writing(cli, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                             unwritable: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    for dest in (unwritable / "x.tar", f"oci-archive:{unwritable / 'x.tar'}",
                 unwritable / "missing" / "x.tar"):
        code, stdout, stderr = cli("append", "scratch", "--layer", f"{tmp_path / 'a.txt'}:/a",
                                   "-o", dest)
        assert code == 2, (dest, stderr)
        assert "x.tar" in stderr and ".tmp" not in stderr and stdout == ""
        assert len(stderr.strip().splitlines()) == 1
    for dest in (tmp_path / "new" / "x.tar", f"oci-archive:{tmp_path / 'new2' / 'x.tar'}"):
        code, _, stderr = cli("append", "scratch", "--layer", f"{tmp_path / 'a.txt'}:/a",
                              "-o", dest)
        assert code == 0, stderr
    assert (tmp_path / "new" / "x.tar").is_file() and (tmp_path / "new2" / "x.tar").is_file()
