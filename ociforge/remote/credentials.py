"""Registry credentials from Docker's config.json, podman's auth.json and credential helpers.

Read order: $DOCKER_AUTH_CONFIG (inline JSON), $DOCKER_CONFIG/config.json (default
~/.docker/config.json), then podman's $REGISTRY_AUTH_FILE,
${XDG_RUNTIME_DIR}/containers/auth.json and ${XDG_CONFIG_HOME:-~/.config}/containers/auth.json.
In each file ``credHelpers`` wins over ``credsStore``, which wins over ``auths``
(Docker writes only empty markers in ``auths`` when a store is configured).
Docker Hub lives under ``https://index.docker.io/v1/``.  Helpers speak the
docker-credential-helpers protocol (``get``/``store``/``erase`` on stdin/stdout).
No secret read here ever reaches a message, log or repr.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigFileError, InvalidInputError, OperationError
from ..fsutil import read_regular
from ..model.jsonutil import loads
from ..model.reference import credential_key, normalize_registry
from ..options import environ_value
from .auth import Credentials

if TYPE_CHECKING:
    import subprocess

NOT_FOUND = "credentials not found in native keychain"
TOKEN_USERNAME = "<token>"
_HELPER_TIMEOUT = 60


def docker_config_path() -> Path:
    base = environ_value("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def podman_auth_paths() -> list[Path]:
    paths = []
    auth_file = environ_value("REGISTRY_AUTH_FILE")
    if auth_file:
        paths.append(Path(auth_file))
    runtime = environ_value("XDG_RUNTIME_DIR")
    paths.append(Path(runtime) / "containers" / "auth.json" if runtime
                 else Path(f"/run/containers/{os.getuid()}/auth.json"))
    config_home = environ_value("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    paths.append(Path(config_home) / "containers" / "auth.json")
    return paths


def credential_sources() -> tuple[object, ...]:
    """Where credentials come from right now (the files lookup reads, their stat, and
    $DOCKER_AUTH_CONFIG): what a run keys its remembered clients and lookups by, so a
    login or logout in between is seen."""
    state: list[object] = [environ_value("DOCKER_AUTH_CONFIG")]
    for path in [docker_config_path(), *podman_auth_paths()]:
        try:
            st = path.stat()
            state.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            state.append((str(path), None))
    return tuple(state)


def lookup(registry: str, repository: str | None = None) -> Credentials | None:
    """Credentials for ``registry`` (a normalised host such as docker.io), or None."""
    registry = normalize_registry(registry)
    inline = environ_value("DOCKER_AUTH_CONFIG")
    if inline:
        inline_doc = _parse(inline.encode(), "$DOCKER_AUTH_CONFIG")
        found = _from_auths(inline_doc, registry, repository, "$DOCKER_AUTH_CONFIG")
        if found is not None:
            return found
    for path in [docker_config_path(), *podman_auth_paths()]:
        doc = _load(path)
        if doc is None:
            continue
        helper = _helper_for(doc, registry)
        if helper:
            creds = helper_get(helper, credential_key(registry), str(path))
            if creds is not None:
                return creds
            continue
        found = _from_auths(doc, registry, repository, str(path))
        if found is not None:
            return found
    return None


def _load(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data = read_regular(path, "credentials file")  # a FIFO there must not hang every pull
    if not data.strip():
        return None
    return _parse(data, str(path))


def _parse(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = loads(data, f"credentials file {where}")
    except InvalidInputError as exc:
        raise ConfigFileError(str(exc)) from None
    if not isinstance(doc, dict):
        raise ConfigFileError(f"credentials file {where} is not a JSON object")
    return doc


def _host_of_key(key: str) -> str:
    """A config key as host[/namespace]: URLs reduce to their host (Docker's rule)."""
    if "://" in key:
        key = key.split("://", 1)[1].split("/", 1)[0]
    key = key.rstrip("/")
    host, slash, rest = key.partition("/")
    return normalize_registry(host) + (slash + rest if rest else "")


def _helper_for(doc: dict[str, Any], registry: str) -> str | None:
    helpers = doc.get("credHelpers")
    if isinstance(helpers, dict):
        for key, suffix in helpers.items():
            if isinstance(key, str) and _host_of_key(key) == registry and isinstance(suffix, str):
                return suffix or None
    store = doc.get("credsStore")
    return store if isinstance(store, str) and store else None


def _from_auths(doc: dict[str, Any], registry: str, repository: str | None,
                where: str) -> Credentials | None:
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return None
    wanted = [registry]
    if repository:
        parts = repository.split("/")
        wanted = [f"{registry}/{'/'.join(parts[:i])}" for i in range(len(parts), 0, -1)] + wanted
    by_key: dict[str, Any] = {}
    for key, entry in auths.items():
        if isinstance(key, str):
            by_key.setdefault(_host_of_key(key), entry)
    exact = auths.get(credential_key(registry))
    if exact is not None:
        by_key[registry] = exact
    for name in wanted:
        entry = by_key.get(name)
        if isinstance(entry, dict):
            creds = _entry_credentials(entry, registry, where)
            if creds is not None:
                return creds
    return None


def _entry_credentials(entry: dict[str, Any], registry: str, where: str) -> Credentials | None:
    username = entry.get("username") if isinstance(entry.get("username"), str) else ""
    password = entry.get("password") if isinstance(entry.get("password"), str) else ""
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=False).decode()
        except ValueError:  # binascii.Error, UnicodeDecodeError, and a non-ASCII str
            raise ConfigFileError(f"the auth entry for {registry} in {where} is not valid "
                                  "base64") from None
        user, sep, secret = decoded.partition(":")
        if not sep or not user:
            raise ConfigFileError(f"the auth entry for {registry} in {where} has no user name")
        username, password = user, secret.rstrip("\x00")
    identity = entry.get("identitytoken") if isinstance(entry.get("identitytoken"), str) else ""
    registry_token = (entry.get("registrytoken")
                      if isinstance(entry.get("registrytoken"), str) else "")
    if not (password or identity or registry_token):
        return None
    return Credentials(username or "", password or "", identity or "", registry_token or "")


# -- credential helpers -------------------------------------------------------

def _helper_binary(suffix: str, where: str) -> str:
    name = f"docker-credential-{suffix}"
    path = shutil.which(name)
    if path is None:
        raise InvalidInputError(f"credential helper {name} (configured in {where}) is not "
                                "installed or not on PATH")
    return path


def _run_helper(suffix: str, action: str, stdin: str, where: str) -> subprocess.CompletedProcess:
    import subprocess  # only when a helper is configured: keeps it off every push's start-up

    binary = _helper_binary(suffix, where)
    try:
        return subprocess.run([binary, action], input=stdin.encode(), capture_output=True,
                              timeout=_HELPER_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OperationError(f"credential helper docker-credential-{suffix} {action} failed: "
                             f"{type(exc).__name__}") from None


def _helper_message(proc: subprocess.CompletedProcess) -> str:
    """The helper's error text; helpers report errors on stdout, never secrets."""
    text = (proc.stdout or b"").decode("utf-8", "replace").strip() or \
        (proc.stderr or b"").decode("utf-8", "replace").strip()
    return " ".join(text.split())[:200] or f"exit status {proc.returncode}"


def helper_get(suffix: str, server_url: str, where: str = "config") -> Credentials | None:
    proc = _run_helper(suffix, "get", server_url, where)
    if proc.returncode != 0:
        message = _helper_message(proc)
        if NOT_FOUND in message.lower() or "not found" in message.lower():
            return None
        raise OperationError(f"credential helper docker-credential-{suffix} get failed: "
                             f"{message}")
    try:
        doc = loads(proc.stdout, f"the answer of docker-credential-{suffix} get")
    except InvalidInputError as exc:
        raise OperationError(f"credential helper docker-credential-{suffix} sent no "
                             f"JSON ({exc})") from None
    if not isinstance(doc, dict):
        return None
    user = doc.get("Username") if isinstance(doc.get("Username"), str) else ""
    secret = doc.get("Secret") if isinstance(doc.get("Secret"), str) else ""
    if not secret:
        return None
    if user == TOKEN_USERNAME:
        return Credentials("", "", secret, "")
    return Credentials(user or "", secret, "", "")


def helper_store(suffix: str, server_url: str, username: str, secret: str, where: str) -> None:
    payload = json.dumps({"ServerURL": server_url, "Username": username, "Secret": secret})
    proc = _run_helper(suffix, "store", payload, where)
    if proc.returncode != 0:
        raise OperationError(f"credential helper docker-credential-{suffix} store failed: "
                             f"{_helper_message(proc)}")


def helper_erase(suffix: str, server_url: str, where: str) -> bool:
    proc = _run_helper(suffix, "erase", server_url, where)
    if proc.returncode != 0:
        message = _helper_message(proc)
        if "not found" in message.lower():
            return False
        raise OperationError(f"credential helper docker-credential-{suffix} erase failed: "
                             f"{message}")
    return True


# -- login / logout -----------------------------------------------------------

def store(registry: str, username: str, secret: str) -> str:
    """Save credentials (through the configured helper if any); returns where."""
    registry = normalize_registry(registry)
    shown = docker_config_path()
    path = _config_to_write(shown)
    with _config_lock(path):
        doc = _load(path) or {}
        key = credential_key(registry)
        helper = _helper_for(doc, registry)
        if helper:
            helper_store(helper, key, username, secret, str(path))
            return f"docker-credential-{helper}"
        auths = doc.get("auths")
        if not isinstance(auths, dict):
            auths = {}
        for other in [k for k in auths if isinstance(k, str) and _host_of_key(k) == registry]:
            del auths[other]
        encoded = base64.b64encode(f"{username}:{secret}".encode()).decode()
        auths[key] = {"auth": encoded}
        doc["auths"] = auths
        write_config(path, doc)
    return str(shown)


def erase(registry: str) -> bool:
    """Remove stored credentials; True if something was removed."""
    registry = normalize_registry(registry)
    path = _config_to_write(docker_config_path())
    with _config_lock(path):
        doc = _load(path)
        if doc is None:
            return False
        removed = False
        helper = _helper_for(doc, registry)
        if helper:
            removed = helper_erase(helper, credential_key(registry), str(path))
        auths = doc.get("auths")
        if isinstance(auths, dict):
            keys = [k for k in auths if isinstance(k, str) and _host_of_key(k) == registry]
            for key in keys:
                del auths[key]
            if keys:
                removed = True
                write_config(path, doc)
    return removed


@contextlib.contextmanager
def _config_lock(path: Path) -> Iterator[None]:
    """Serialise read-modify-write of config.json across threads and processes, so two
    logins at once both keep their entry.  The lock is the folder's own (flock on its
    descriptor): config.json is replaced by rename, and no lock file is left behind.
    Each call opens its own descriptor, and flock locks belong to open descriptors,
    so threads of one process exclude each other as processes do."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _config_to_write(path: Path) -> Path:
    """The file login/logout really rewrite: a symlinked config.json (dotfile managers)
    is followed, so its target is replaced and the link stays, as the docker CLI does.
    A FIFO or device there is refused (exit 2): the file must be read back."""
    from ..fsutil import resolve_output

    target = resolve_output(path, "credentials file")
    if target.stream:
        raise InvalidInputError(f"credentials file {str(path)!r} is not a regular file")
    return target.path


def write_config(path: Path, doc: dict[str, Any]) -> None:
    """Write config.json atomically with mode 0600 (it holds secrets); a symlink is
    followed and its target replaced (see _config_to_write)."""
    path = _config_to_write(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out, indent="\t")
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
