"""ECDSA P-256 signing keys as PEM files, the kind ``cosign verify --key`` reads.

The private key is PKCS#8 PEM (encrypted with a password when one is given),
the public key SubjectPublicKeyInfo PEM (``-----BEGIN PUBLIC KEY-----``, the
format of ``cosign.pub``).  ``cryptography`` is imported only inside the
functions so that ``ociforge --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ..fsutil import check_writable_destination, read_regular
from ..options import environ_value

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import (
        EllipticCurvePrivateKey,
        EllipticCurvePublicKey,
    )

PASSWORD_ENV = "OCIFORGE_KEY_PASSWORD"
_COSIGN_ENCRYPTED = (b"ENCRYPTED SIGSTORE PRIVATE KEY", b"ENCRYPTED COSIGN PRIVATE KEY")
MAX_KEY_FILE = 64 << 10


@dataclass(frozen=True)
class KeyPairPaths:
    private: Path
    public: Path


def generate_pem_pair(password: bytes | None = None) -> tuple[bytes, bytes]:
    """A fresh P-256 key pair: (PKCS#8 private PEM, SubjectPublicKeyInfo public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def write_key_pair(prefix: str | Path, password: bytes | None = None) -> KeyPairPaths:
    """Write PREFIX.key (mode 0600) and PREFIX.pub; never overwrite an existing file.

    A PREFIX that names a folder ("", "keys/", ".", an existing folder) is bad input:
    it would write hidden ``.key``/``.pub`` files or files beside the folder, not in it.
    Nothing that exists at either path is written through, whatever it is (file,
    symlink, FIFO, device): a private key goes only into a file we create.
    """
    paths = check_key_destination(prefix)
    private_pem, public_pem = generate_pem_pair(password)
    for path in (paths.private, paths.public):
        path.parent.mkdir(parents=True, exist_ok=True)  # like every output: parents made
    _write_new(paths.private, private_pem, 0o600)
    try:
        _write_new(paths.public, public_pem, 0o644)
    except BaseException:
        paths.private.unlink(missing_ok=True)
        raise
    return paths


def check_key_destination(prefix: str | Path) -> KeyPairPaths:
    """The two key paths for PREFIX, refused (exit 2) when either exists or cannot be
    created; checked before a password is asked for."""
    check_key_prefix(str(prefix))
    prefix = Path(prefix)
    paths = KeyPairPaths(Path(f"{prefix}.key"), Path(f"{prefix}.pub"))
    for path in (paths.private, paths.public):
        if os.path.lexists(path):
            raise InvalidInputError(f"{path} already exists; refusing to overwrite a key file")
    for path in (paths.private, paths.public):  # a folder we cannot write: exit 2 up front
        check_writable_destination(path, "key file")
    return paths


def new_key_password(stdin: bool, no_password: bool) -> bytes | None:
    """The password for a new private key: ``--password-stdin``, else
    $OCIFORGE_KEY_PASSWORD, else ``--no-password`` (None: unencrypted, on purpose), else
    asked twice on the terminal.  Without any of them and no terminal: bad input."""
    if stdin and no_password:
        raise InvalidInputError("--password-stdin and --no-password contradict each other")
    if no_password:
        return None
    given = password_from(stdin)
    if given is not None:
        return given
    if not sys.stdin.isatty():
        raise InvalidInputError(
            "keygen needs a password for the private key and standard input is not a "
            f"terminal: use --password-stdin, set {PASSWORD_ENV}, or --no-password for an "
            "unencrypted key")
    import getpass

    first = getpass.getpass("Enter password for private key: ")
    if not first:
        raise InvalidInputError("the password is empty; use --no-password for an "
                                "unencrypted key")
    if getpass.getpass("Enter password for private key again: ") != first:
        raise InvalidInputError("the passwords do not match; nothing was written")
    return first.encode()


def check_key_prefix(text: str) -> None:
    """Refuse a PREFIX that is empty or names a folder (exit 2)."""
    if not text.strip():
        raise InvalidInputError("keygen PREFIX is empty; give a file prefix such as 'cosign'")
    last = text.replace(os.sep, "/").rsplit("/", 1)[-1]
    if text.endswith(("/", os.sep)) or last in (".", "..") or os.path.isdir(text):
        hint = os.path.join(text, "cosign")
        raise InvalidInputError(
            f"keygen PREFIX {text!r} names a folder; give a file prefix such as {hint!r} "
            f"(writes {hint}.key and {hint}.pub)")


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` exclusively with ``mode`` (no window where it is world-readable)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     mode)
    except FileExistsError:
        raise InvalidInputError(f"{path} already exists; refusing to overwrite it") from None
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits we want (0644 for .pub)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def password_from(stdin: bool, env: str = PASSWORD_ENV) -> bytes | None:
    """The key password: one line from standard input, else the environment, else none."""
    if stdin:
        line = sys.stdin.readline()
        text = line.rstrip("\r\n")
        if not text:
            raise InvalidInputError("--password-stdin given but standard input had no password")
        return text.encode()
    value = environ_value(env)
    return value.encode() if value else None


def _read_key_file(path: str | Path, what: str) -> bytes:
    return read_regular(path, what, limit=MAX_KEY_FILE)


def load_private_key(path: str | Path, password: bytes | None = None) -> EllipticCurvePrivateKey:
    """Load a P-256 private key (PKCS#8 or SEC1 PEM, optionally encrypted)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _read_key_file(path, "private key")
    if any(marker in data for marker in _COSIGN_ENCRYPTED):
        raise InvalidInputError(
            f"{path} is a cosign-encrypted key (scrypt+secretbox); export it as PKCS#8 PEM "
            "or create one with `ociforge keygen`"
        )
    encrypted = b"ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data
    if encrypted and not password:
        raise InvalidInputError(
            f"private key {path} is encrypted; give its password with --password-stdin "
            f"or {PASSWORD_ENV}"
        )
    try:
        key = serialization.load_pem_private_key(data, password=password if encrypted else None)
    except (ValueError, TypeError) as exc:
        reason = "wrong password or corrupt key" if encrypted else _first_line(exc)
        raise InvalidInputError(f"cannot load private key {path}: {reason}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise InvalidInputError(f"private key {path} is not an ECDSA P-256 key")
    return key


def load_public_key(path: str | Path) -> EllipticCurvePublicKey:
    """Load a P-256 public key from SubjectPublicKeyInfo PEM (``cosign.pub``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _read_key_file(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"cannot load public key {path}: {_first_line(exc)}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise InvalidInputError(f"public key {path} is not an ECDSA P-256 key")
    return key


def public_pem_of(private_key: EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


__all__ = [
    "PASSWORD_ENV",
    "KeyPairPaths",
    "generate_pem_pair",
    "load_private_key",
    "load_public_key",
    "password_from",
    "public_pem_of",
    "write_key_pair",
]
