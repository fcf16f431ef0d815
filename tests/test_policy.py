"""License and secret rules: what is dropped, what stays, and the rule that decided."""

from __future__ import annotations

import pytest

from ociforge.app.policy import Policy
from ociforge.app.spec import ExtraPatterns


@pytest.fixture
def policy() -> Policy:
    return Policy.for_app(ExtraPatterns(), ExtraPatterns())


@pytest.mark.parametrize(("name", "rule"), [
    ("LM_LICENSE_FILE", "license-manager-variable"),
    ("MLM_LICENSE_FILE", "license-manager-variable"),
    ("RLM_LICENSE", "license-manager-variable"),
    ("GRB_LICENSE_FILE", "license-manager-variable"),
    ("MOSEKLM_LICENSE_FILE", "license-manager-variable"),
    ("ACME_LICENSE_SERVER_HOST", "license-name"),
    ("MY_LICENCE", "license-name"),
    ("license_path", "license-name"),
    ("SOLVER_LIC", "license-suffix"),
    ("GITHUB_TOKEN", "secret-name"),
    ("TOKEN", "secret-name"),
    ("AWS_SECRET_ACCESS_KEY", "secret-name"),
    ("AWS_ACCESS_KEY_ID", "secret-name"),
    ("DB_PASSWORD", "secret-name"),
    ("PGPASSWD", "secret-name"),
    ("DB_PASS", "secret-name"),
    ("DB_PWD", "secret-name"),
    ("OPENAI_API_KEY", "secret-name"),
    ("APIKEY", "secret-name"),
    ("SSH_PRIVATE_KEY", "secret-name"),
    ("GOOGLE_APPLICATION_CREDENTIALS", "secret-name"),
    ("STRIPE_KEY", "secret-name"),
    ("DEPLOY_KEYS", "secret-name"),
    ("NPM_AUTH", "secret-name"),
    ("DOCKER_AUTH_CONFIG", "secret-name"),
])
def test_dropped_variables(policy: Policy, name: str, rule: str) -> None:
    found = policy.env_rule(name, "value")
    assert found is not None and found.name == rule


@pytest.mark.parametrize("name", [
    "PATH", "HOME", "PWD", "OLDPWD", "LANG", "TOKENIZERS_PARALLELISM", "PASSENGER_COUNT",
    "APP_MODE", "PUBLIC_URL", "KEYBOARD", "LIB_PATH", "SSH_AUTH_SOCK", "KEYCLOAK_URL",
    "AUTHOR_NAME",
])
def test_ordinary_variables_stay(policy: Policy, name: str) -> None:
    assert policy.env_rule(name, "plain") is None


def test_value_with_a_password_in_a_url_is_dropped(policy: Policy) -> None:
    rule = policy.env_rule("DATABASE_URL", "postgresql://app:pw@db:5432/app")
    assert rule is not None and rule.name == "credential-in-url"
    assert policy.env_rule("SERVICE_URL", "https://example.com/path") is None


@pytest.mark.parametrize("value", [
    "redis://:redispw@cache:6379/0",              # empty user
    "postgresql://app:pa/ss@db/app",              # '/' in the password (split on the last '@')
    "postgresql://app:pa@ss@db/app",              # '@' in the password
    "amqp://guest:gu est@mq/",                    # a space in the password
    "postgresql://db/app?user=app&password=qpw",  # password-like query parameters
    "postgresql://db/app?sslpassword=x",
    "https://api.example.com/v1?TOKEN=abc",
])
def test_credential_url_forms_are_dropped(policy: Policy, value: str) -> None:
    rule = policy.env_rule("SERVICE", value)
    assert rule is not None and rule.name == "credential-in-url"


@pytest.mark.parametrize("value", [
    "https://example.com:8443/path", "redis://cache:6379/0", "postgresql://db/app",
    "http://user@host/", "postgresql://db/app?sslmode=require&passfile=/run/pgpass",
    "https://h/?password=", "/usr/local/bin:/usr/bin", "a:b@c",
])
def test_urls_without_credentials_are_kept(policy: Policy, value: str) -> None:
    assert policy.env_rule("SERVICE", value) is None


@pytest.mark.parametrize("head", [
    b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n",
    b"\n  -----BEGIN RSA PRIVATE KEY-----\nMIIE\n",
    b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n",
])
def test_private_keys_are_found_whatever_the_name(policy: Policy, tmp_path, head: bytes  # type: ignore[no-untyped-def]
                                                  ) -> None:
    key = tmp_path / "deploy_key"
    key.write_bytes(head + b"x" * (1 << 20))          # only the first bytes are read
    found = policy.host_file_rule("srv/deploy_key", key, files_layer=False)
    assert found is not None and found.name == "private-key-content"
    cert = tmp_path / "server"
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n")
    assert policy.host_file_rule("srv/server", cert, files_layer=False) is None


def test_git_folder_is_left_out_of_the_files_layer_only(policy: Policy) -> None:
    found = policy.file_rule("files/project/.git", files_layer=True)
    assert found is not None and found.name == "git-folder"
    assert policy.file_rule("files/project/.gitignore", files_layer=True) is None
    assert policy.file_rule("app/.git", files_layer=False) is None


def test_allow_env_keeps_one_named_variable() -> None:
    policy = Policy.for_app(ExtraPatterns(), ExtraPatterns(), allow_env=["LM_LICENSE_FILE"])
    assert policy.env_rule("LM_LICENSE_FILE", "27000@server") is None
    assert policy.env_rule("GRB_LICENSE_FILE", "/x") is not None


def test_extra_patterns_from_the_app() -> None:
    policy = Policy.for_app(ExtraPatterns(env=("ACME_*",), files=("*.acmekey",)),
                            ExtraPatterns(env=("*_SEED",), files=("vault/*",)))
    assert policy.env_rule("ACME_SERVER", "x").name == "license-env-config"  # type: ignore[union-attr]
    assert policy.env_rule("RANDOM_SEED", "x").name == "secret-env-config"  # type: ignore[union-attr]
    assert policy.file_rule("opt/a.acmekey", False).name == "license-file-config"  # type: ignore[union-attr]
    assert policy.file_rule("vault/key", True).name == "secret-file-config"  # type: ignore[union-attr]


def test_filter_env_reports_names_and_origin_only(policy: Policy) -> None:
    kept, dropped = policy.filter_env([
        ("PATH", "/bin", "base"), ("LM_LICENSE_FILE", "27000@lic", "base"),
        ("API_TOKEN", "tok-123", "env_file"), ("MODE", "prod", "config")])
    assert kept == {"PATH": "/bin", "MODE": "prod"}
    assert [(d.name, d.rule, d.origin) for d in dropped] == [
        ("API_TOKEN", "secret-name", "env_file"),
        ("LM_LICENSE_FILE", "license-manager-variable", "base")]
    assert "tok-123" not in repr(dropped) and "27000@lic" not in repr(dropped)


@pytest.mark.parametrize(("path", "rule"), [
    ("opt/solver/solver.lic", "license-key-file"),
    ("license.dat", "license-key-file"),
    ("etc/flexlm/LICENSE.DAT", "license-key-file"),
    ("network.lic", "license-key-file"),
    ("home/user/.ssh/id_ed25519", "ssh-key"),
    ("id_rsa", "ssh-key"),
    (".ssh/authorized_keys", "ssh-key"),
    (".netrc", "credential-file"),
    ("home/u/.git-credentials", "credential-file"),
    (".aws/credentials", "credential-file"),
    ("root/.docker/config.json", "credential-file"),
    (".pypirc", "credential-file"),
    ("app/.env", "dotenv-file"),
    (".env.production", "dotenv-file"),
])
def test_files_left_out(policy: Policy, path: str, rule: str) -> None:
    found = policy.file_rule(path, files_layer=True)
    assert found is not None and found.name == rule
    # The same rules apply to runtime layers: a key file never ships anywhere.
    assert policy.file_rule(path, files_layer=False) is not None


@pytest.mark.parametrize("path", [
    "LICENSE", "LICENSE.txt", "LICENSE.md", "COPYING", "NOTICE", "licenses/MIT.txt",
    "usr/share/doc/pkg/copyright", "lib/python3/site-packages/x-1.0.dist-info/LICENSE",
    "home/.ssh/id_ed25519.pub", "docs/license-faq.md", "config.json", "app/environment.yml",
])
def test_open_source_texts_and_ordinary_files_stay(policy: Policy, path: str) -> None:
    assert policy.file_rule(path, files_layer=True) is None


def test_every_rule_is_described(policy: Policy) -> None:
    described = policy.describe()
    assert "license-key-file" in described and "secret-name" in described
    assert all(text for text in described.values())


def test_private_keys_are_found_by_content(policy: Policy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    key = tmp_path / "server.key"
    key.write_text("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n")
    cert = tmp_path / "ca.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(cert.read_text()
                      + "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
    link = tmp_path / "link.pem"
    os.symlink(key, link)
    found = policy.host_file_rule("etc/tls/server.key", key, files_layer=False)
    assert found is not None and found.name == "private-key-file"
    assert policy.host_file_rule("etc/tls/bundle.pem", bundle, files_layer=False) is not None
    assert policy.host_file_rule("etc/tls/ca.pem", cert, files_layer=False) is None
    # A symlink is never opened (it is stored as a link, its target is not shipped).
    assert policy.host_file_rule("etc/tls/link.pem", link, files_layer=False) is None
    plain = tmp_path / "notes.txt"
    plain.write_text("rotate it like this: -----BEGIN PRIVATE KEY-----")  # prose, not a key
    assert policy.host_file_rule("notes.txt", plain, files_layer=True) is None
