"""Credential lookup (docker config.json, podman auth.json) and the credential-helper protocol."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest
from progresslines import messages
from registry_fixtures import docker_auth, write_docker_config

from ociforge.errors import ConfigFileError, InvalidInputError
from ociforge.remote.auth import Credentials
from ociforge.remote.credentials import erase, lookup, store


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A docker-credential-test helper on PATH that keeps its store in a JSON file."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    db = tmp_path / "helper-store.json"
    script = bindir / "docker-credential-test"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, sys
        db = {str(db)!r}
        try:
            data = json.load(open(db))
        except FileNotFoundError:
            data = {{}}
        action = sys.argv[1]
        raw = sys.stdin.read()
        if action == "get":
            url = raw.strip()
            if url not in data:
                print("credentials not found in native keychain")
                sys.exit(1)
            print(json.dumps({{"ServerURL": url, **data[url]}}))
        elif action == "store":
            doc = json.loads(raw)
            data[doc["ServerURL"]] = {{"Username": doc["Username"], "Secret": doc["Secret"]}}
            json.dump(data, open(db, "w"))
        elif action == "erase":
            url = raw.strip()
            if url not in data:
                print("credentials not found in native keychain")
                sys.exit(1)
            del data[url]
            json.dump(data, open(db, "w"))
        elif action == "list":
            print(json.dumps({{k: v["Username"] for k, v in data.items()}}))
        """))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return db


def test_auths_entry_exact_and_url_keys() -> None:
    write_docker_config({"auths": {
        "localhost:5000": {"auth": docker_auth("u1", "p:with:colons")},
        "https://ghcr.io/v2/": {"auth": docker_auth("u2", "p2")},
        "https://index.docker.io/v1/": {"auth": docker_auth("hub", "hubpw")},
    }})
    assert lookup("localhost:5000") == Credentials("u1", "p:with:colons")
    assert lookup("ghcr.io") == Credentials("u2", "p2")
    for hub in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert lookup(hub) == Credentials("hub", "hubpw")
    assert lookup("quay.io") is None


def test_identity_and_registry_tokens() -> None:
    write_docker_config({"auths": {
        "a.example": {"identitytoken": "refresh-1", "auth": docker_auth("me", "")},
        "b.example": {"registrytoken": "bearer-1"},
        "c.example": {},
    }})
    a = lookup("a.example")
    assert a is not None and a.identity_token == "refresh-1" and a.username == "me"
    b = lookup("b.example")
    assert b is not None and b.registry_token == "bearer-1"
    assert lookup("c.example") is None


def test_podman_auth_files_and_namespaced_keys(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = Path(os.environ["XDG_RUNTIME_DIR"]) / "containers"
    runtime.mkdir(parents=True)
    (runtime / "auth.json").write_text(json.dumps({"auths": {
        "quay.io/team/app": {"auth": docker_auth("team", "tp")},
        "quay.io": {"auth": docker_auth("anyone", "ap")},
    }}))
    assert lookup("quay.io", "team/app") == Credentials("team", "tp")
    assert lookup("quay.io", "other/app") == Credentials("anyone", "ap")
    auth_file = tmp_path / "explicit.json"
    auth_file.write_text(json.dumps({"auths": {"r.example": {"auth": docker_auth("x", "y")}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_file))
    assert lookup("r.example") == Credentials("x", "y")
    config_home = tmp_path / "cfg"
    (config_home / "containers").mkdir(parents=True)
    (config_home / "containers" / "auth.json").write_text(
        json.dumps({"auths": {"s.example": {"auth": docker_auth("s", "t")}}}))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    assert lookup("s.example") == Credentials("s", "t")


def test_docker_auth_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_AUTH_CONFIG",
                       json.dumps({"auths": {"e.example": {"auth": docker_auth("env", "pw")}}}))
    assert lookup("e.example") == Credentials("env", "pw")


def test_broken_files_are_clear_errors() -> None:
    path = write_docker_config({})
    path.write_text("{not json")
    with pytest.raises(ConfigFileError, match="not valid JSON") as info:
        lookup("x.example")
    assert info.value.exit_code == 2
    write_docker_config({"auths": {"x.example": {"auth": base64.b64encode(b"nocolon").decode()}}})
    with pytest.raises(ConfigFileError, match="no user name"):
        lookup("x.example")


@pytest.mark.parametrize("auth", ["\u0080", "user:pässword", "\u00e9\u00e9\u00e9\u00e9"])
def test_auth_that_is_not_ascii_is_a_clear_error(auth: str) -> None:
    """base64.b64decode raises ValueError, not binascii.Error, for a non-ASCII str."""
    write_docker_config({"auths": {"x.example": {"auth": auth}}})
    with pytest.raises(ConfigFileError, match=r"auth entry for x\.example .* not valid base64"
                       ) as info:
        lookup("x.example")
    assert info.value.exit_code == 2


def test_cli_names_the_registry_whose_auth_is_not_base64(tls_registry, cli,  # type: ignore[no-untyped-def]
                                                         tmp_path: Path) -> None:
    host = tls_registry.host
    write_docker_config({"auths": {host: {"auth": "\u0080"}}})
    out = tmp_path / "out"
    code, _, err = cli("copy", f"{host}/a/b:1", f"oci:{out}", "--ca-cert",
                       str(tls_registry.ca_path))
    assert code == 2, err
    assert len(messages(err)) == 1 and "Traceback" not in err, err
    assert f"auth entry for {host}" in err and "not valid base64" in err, err
    assert not out.exists()


def test_secrets_never_in_repr() -> None:
    creds = Credentials("user", "hunter2-secret", "idtok-secret", "regtok-secret")
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert "hunter2" not in text and "idtok" not in text and "regtok" not in text
        assert "user" in text


def test_cred_helpers_and_creds_store(helper: Path) -> None:
    helper.write_text(json.dumps({
        "h.example": {"Username": "hu", "Secret": "hs"},
        "https://index.docker.io/v1/": {"Username": "<token>", "Secret": "identity-xyz"},
    }))
    write_docker_config({"credHelpers": {"h.example": "test"}, "auths": {}})
    assert lookup("h.example") == Credentials("hu", "hs")
    assert lookup("docker.io") is None            # no helper for Hub in credHelpers
    write_docker_config({"credsStore": "test"})
    hub = lookup("docker.io")
    assert hub is not None and hub.identity_token == "identity-xyz" and not hub.password
    assert lookup("nothing.example") is None      # "credentials not found" means none


def test_missing_helper_is_exit_2_naming_it(tls_registry, cli) -> None:  # type: ignore[no-untyped-def]
    write_docker_config({"credsStore": "does-not-exist-xyz"})
    with pytest.raises(InvalidInputError, match="docker-credential-does-not-exist-xyz"):
        lookup("h.example")
    code, _, err = cli("copy", f"{tls_registry.host}/a/b:1", "oci:/tmp/never-written-xyz",
                       "--ca-cert", str(tls_registry.ca_path))
    assert code == 2
    assert "docker-credential-does-not-exist-xyz" in err
    assert not Path("/tmp/never-written-xyz").exists()


def test_store_and_erase_through_helper(helper: Path) -> None:
    config = write_docker_config({"credsStore": "test"})
    where = store("docker.io", "me", "pat-secret")
    assert where == "docker-credential-test"
    data = json.loads(helper.read_text())
    assert data["https://index.docker.io/v1/"] == {"Username": "me", "Secret": "pat-secret"}
    assert "pat-secret" not in config.read_text()
    assert lookup("index.docker.io") == Credentials("me", "pat-secret")
    assert erase("docker.io") is True
    assert json.loads(helper.read_text()) == {}
    assert erase("docker.io") is False


def test_store_in_file_is_atomic_0600_and_keeps_other_keys() -> None:
    config = write_docker_config({"auths": {"other.example": {"auth": docker_auth("o", "p")}},
                             "psFormat": "table"})
    store("index.docker.io", "me", "s3")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    doc = json.loads(config.read_text())
    assert doc["psFormat"] == "table"
    assert doc["auths"]["https://index.docker.io/v1/"] == {"auth": docker_auth("me", "s3")}
    assert doc["auths"]["other.example"] == {"auth": docker_auth("o", "p")}
    assert [p.name for p in config.parent.iterdir()] == ["config.json"]
    assert erase("docker.io") is True
    assert "https://index.docker.io/v1/" not in json.loads(config.read_text())["auths"]


def test_cli_login_through_helper(registry, helper: Path, cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # the plain registry accepts anything: login checks, then stores through the helper
    write_docker_config({"credsStore": "test"})
    monkeypatch.setattr("sys.stdin", io.StringIO("pw-via-stdin\n"))
    code, out, err = cli("login", registry.host, "-u", "someone", "--password-stdin")
    assert code == 0, err
    assert json.loads(helper.read_text())[registry.host]["Secret"] == "pw-via-stdin"
    assert "pw-via-stdin" not in out + err
    code, out, _ = cli("logout", registry.host)
    assert code == 0 and "Removing" in out
    code, _, err = cli("login", "not a host", "-u", "x", "--password-stdin")
    assert code == 2


def test_logins_from_threads_of_one_process_keep_every_entry() -> None:
    """The config lock is an flock per open descriptor: threads exclude each other too."""
    from concurrent.futures import ThreadPoolExecutor

    hosts = [f"reg{i}.example:5000" for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda host: store(host, "u", f"secret-{host}"), hosts))
    auths = json.loads(Path(os.environ["DOCKER_CONFIG"], "config.json").read_text())["auths"]
    assert sorted(auths) == sorted(hosts)
    for host in hosts:
        assert lookup(host) == Credentials("u", f"secret-{host}")
