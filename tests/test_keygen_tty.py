"""``keygen`` on a terminal asks for the password twice (as cosign does); tests drive a
real pseudo-terminal, so getpass reads from a tty exactly as it does for a user."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

from ociforge.trust.keys import load_private_key

ROOT = Path(__file__).resolve().parent.parent


def _run_on_tty(args: list[str], answers: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run ``ociforge ARGS`` with a pty as its controlling terminal; type each answer
    when a prompt ending in ': ' has appeared.  Returns (exit code, all output)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is stdin, stdout, stderr and /dev/tty
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        env.pop("OCIFORGE_KEY_PASSWORD", None)
        os.execve(sys.executable, [sys.executable, "-m", "ociforge", *args], env)
    output = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if pending and output.endswith(b": "):
                os.write(fd, pending.pop(0).encode() + b"\n")
    else:
        os.kill(pid, 9)  # still waiting for input after the deadline: the test fails
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_keygen_asks_twice_on_a_terminal(tmp_path: Path) -> None:
    code, output = _run_on_tty(["keygen", str(tmp_path / "k")], ["s3cret", "s3cret"])
    assert code == 0, output
    assert output.count("Enter password for private key") == 2
    assert "s3cret" not in output                         # never echoed
    assert load_private_key(tmp_path / "k.key", b"s3cret")
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "k.key").read_bytes()


def test_keygen_refuses_passwords_that_differ(tmp_path: Path) -> None:
    code, output = _run_on_tty(["keygen", str(tmp_path / "k")], ["one", "two"])
    assert code == 2 and "do not match" in output
    assert list(tmp_path.iterdir()) == []


def test_keygen_no_password_does_not_ask(tmp_path: Path) -> None:
    code, output = _run_on_tty(["keygen", str(tmp_path / "k"), "--no-password"], [])
    assert code == 0, output
    assert "Enter password" not in output
    assert load_private_key(tmp_path / "k.key", None)


def test_keygen_checks_the_files_before_asking(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_text("keep")
    code, output = _run_on_tty(["keygen", str(tmp_path / "k")], ["x", "x"])
    assert code == 2 and "already exists" in output and "Enter password" not in output


def test_keygen_without_a_terminal_needs_a_way_to_get_a_password(cli, tmp_path: Path,
                                                                 monkeypatch) -> None:
    import io

    monkeypatch.delenv("OCIFORGE_KEY_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = cli("keygen", tmp_path / "k")
    assert code == 2 and "--no-password" in err and "--password-stdin" in err
    assert list(tmp_path.iterdir()) == []
    code, _, err = cli("keygen", tmp_path / "sub" / "dir" / "k", "--no-password")
    assert code == 0, err                      # missing folders are created
    assert (tmp_path / "sub" / "dir" / "k.key").stat().st_mode & 0o777 == 0o600
