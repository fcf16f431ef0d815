"""Secrets never leak; Authorization stays on its host; TLS is verified (issue 6 item 5).

The sweep runs login, export, push and pull with real credentials (htpasswd
over TLS, and Docker-Hub-like bearer tokens) at -vv, then searches everything
ociforge printed or wrote -- stdout, stderr, the export report, every file of
every output, gzip layers decompressed and tar members opened -- for the
passwords, their base64 ``user:password`` forms, every token the token server
minted, and the values of the variables the export drops.  The credential
store (DOCKER_CONFIG/config.json) is the one place credentials belong and is
not swept.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from fakeregistry import BlobHost, FakeRegistry, loopback_alias
from hypothesis import given, settings
from hypothesis import strategies as st
from imagegen import layout_with_image
from leaksweep import contents, sweep
from progresslines import messages
from tools import ociforge_env

ROOT = Path(__file__).resolve().parent.parent


def _app(tmp: Path, secrets: dict[str, str]) -> Path:
    app = tmp / "app"
    shutil.copytree(ROOT / "examples" / "hello", app)
    lines = ["HELLO_LANG=en", "VISIBLE_SETTING=kept-in-image"]
    lines += [f"{name}={value}" for name, value in secrets.items()]
    (app / "runtime.env").write_text("\n".join(lines) + "\n")
    return app


def test_no_secret_in_anything_ociforge_prints_or_writes(
        tmp_path: Path, tls_registry: Any, token_registry: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    minted: list[str] = []
    real_mint = token_registry.token_server.mint

    def recording_mint(*args: Any, **kwargs: Any) -> str:
        token = real_mint(*args, **kwargs)
        minted.append(token)
        return token

    monkeypatch.setattr(token_registry.token_server, "mint", recording_mint)
    dropped = {"API_TOKEN": "tok-" + uuid.uuid4().hex, "DB_PASSWORD": "pw-" + uuid.uuid4().hex,
               "LM_LICENSE_FILE": "27000@lic-" + uuid.uuid4().hex[:8],
               "SERVICE_SECRET": "sec-" + uuid.uuid4().hex}
    app = _app(tmp_path, dropped)
    out = tmp_path / "out"
    out.mkdir()
    config = tmp_path / "docker"
    env = ociforge_env(DOCKER_CONFIG=str(config))
    keys = tmp_path / "keys"
    keys.mkdir()
    key_password = "kp-" + uuid.uuid4().hex
    ca = ["--ca-cert", str(tls_registry.ca_path)]
    tls_ref = f"{tls_registry.host}/secret/app:t"
    token_ref = f"{token_registry.host}/secret/app:t"
    steps: list[tuple[list[str], str | None]] = [
        (["login", tls_registry.host, "-u", tls_registry.username, "--password-stdin", *ca],
         tls_registry.password + "\n"),
        (["login", token_registry.host, "-u", token_registry.username, "--password-stdin"],
         token_registry.password + "\n"),
        (["export", str(app), "--with-files", "-o", token_ref, "-o", f"oci:{out / 'export'}:t",
          "--report", str(out / "report.json")], None),
        (["copy", f"oci:{out / 'export'}:t", tls_ref, *ca], None),
        (["copy", tls_ref, f"oci:{out / 'pulled'}:t", *ca], None),
        (["copy", token_ref, f"docker-archive:{out / 'pulled.tar'}"], None),
        (["inspect", token_ref, "--config"], None),
        (["verify", tls_ref, *ca], None),
        # signing with an encrypted key: its password is a secret too
        (["keygen", str(keys / "k"), "--password-stdin"], key_password + "\n"),
        (["sign", "--key", str(keys / "k.key"), "--password-stdin", token_ref],
         key_password + "\n"),
        (["verify-signature", "--key", str(keys / "k.pub"), token_ref], None),
        # a failing run prints its error: no secret there either
        (["copy", f"oci:{out / 'export'}:t", f"{tls_registry.host}/secret/app:t"], None),
    ]
    printed: dict[str, bytes] = {}
    for i, (argv, stdin) in enumerate(steps):
        proc = subprocess.run([sys.executable, "-m", "ociforge", "-vv", *argv], env=env,
                              input=stdin, capture_output=True, text=True, timeout=120, cwd=out)
        expected = 1 if i == len(steps) - 1 else 0
        assert proc.returncode == expected, (argv, proc.stderr[-3000:])
        assert "Traceback" not in proc.stderr
        printed[f"stdout of {argv[0]} #{i}"] = proc.stdout.encode()
        printed[f"stderr of {argv[0]} #{i}"] = proc.stderr.encode()

    # the sweep is meaningful: -vv showed the HTTP exchange, tokens were minted and used,
    # the kept variable made it into the image, the dropped ones were named in the report
    stderr = b"".join(v for k, v in printed.items() if k.startswith("stderr")).decode()
    assert "/v2/" in stderr and ("GET" in stderr or "PUT" in stderr)
    assert minted, "the token registry issued tokens"
    report = (out / "report.json").read_text()
    assert all(name in report for name in dropped)
    written = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert any(b"kept-in-image" in part for data in written.values() for part in contents(data))

    needles: dict[str, str] = {
        "TLS registry password": tls_registry.password,
        "token registry password": token_registry.password,
        "base64 user:password (TLS)": base64.b64encode(tls_registry.creds.encode()).decode(),
        "base64 user:password (token)": base64.b64encode(token_registry.creds.encode()).decode(),
        **{f"value of dropped {name}": value for name, value in dropped.items()},
        "signing key password": key_password,
        "private key": "".join((keys / "k.key").read_text().splitlines()[1:3]),
    }
    for i, token in enumerate(minted):
        needles[f"bearer token #{i}"] = token
        needles[f"signature of bearer token #{i}"] = token.rsplit(".", 1)[1]
    leaks = sweep({**printed, **written}, needles)
    assert not leaks, leaks
    assert "eyJ" not in stderr, "nothing that looks like a JWT is logged"
    stored = json.loads((config / "config.json").read_text())
    assert tls_registry.host in stored["auths"], "credentials live in the credential store"
    assert (config / "config.json").stat().st_mode & 0o077 == 0, "and only its owner reads it"


@pytest.mark.parametrize("other", ["alias", "port"])
def test_authorization_never_follows_a_redirect_to_another_host(
        other: str, tmp_path: Path) -> None:
    _, image = layout_with_image(tmp_path / "src", (50 << 10, 10 << 10))
    user, password = "carol", "pw-" + uuid.uuid4().hex
    host = loopback_alias() if other == "alias" else "127.0.0.1"
    cdn = BlobHost(tmp_path / "src" / "blobs" / "sha256", host).start()
    signature = "sig" + uuid.uuid4().hex
    fake = FakeRegistry(tmp_path / "src", "app", user, password, cdn,
                        redirect_query=f"?X-Amz-Credential=AKIA{uuid.uuid4().hex[:8]}"
                        f"&X-Amz-Signature={signature}&X-Amz-Expires=60").start()
    try:
        config = tmp_path / "docker"
        config.mkdir()
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        (config / "config.json").write_text(json.dumps({"auths": {fake.host: {"auth": auth}}}))
        proc = subprocess.run(
            [sys.executable, "-m", "ociforge", "-vv", "copy", f"{fake.host}/app:t",
             f"oci:{tmp_path / 'out'}:t"], env=ociforge_env(DOCKER_CONFIG=str(config)),
            capture_output=True, text=True, timeout=60)
    finally:
        fake.stop()
        cdn.stop()
    assert proc.returncode == 0, proc.stderr
    assert any("authorization" in h for _, _, h in fake.seen), "the registry got credentials"
    assert cdn.seen, "blobs were fetched from the redirect target"
    assert all("authorization" not in h for h in cdn.seen), cdn.seen
    assert password not in proc.stderr and auth not in proc.stderr
    assert cdn.host in proc.stderr, "-vv shows the redirected request"
    assert signature not in proc.stderr, "a signed URL's signature is masked in the log"
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == str(image.digest)


def test_tls_is_verified_unless_the_registry_is_named_insecure(
        tmp_path: Path, tls_registry: Any) -> None:
    src, image = layout_with_image(tmp_path / "src", (20 << 10,))
    config = tmp_path / "docker"
    config.mkdir()
    auth = base64.b64encode(tls_registry.creds.encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {tls_registry.host: {"auth": auth}}}))
    env = ociforge_env(DOCKER_CONFIG=str(config))

    def copy(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ociforge", "copy", src,
                               f"{tls_registry.host}/tls/app:t", *extra], env=env,
                              capture_output=True, text=True, timeout=60)

    refused = copy()
    assert refused.returncode == 1, refused.stderr
    lines = messages(refused.stderr)
    assert len(lines) == 1 and "Traceback" not in refused.stderr
    assert "certificate" in lines[0].lower() or "tls" in lines[0].lower(), lines[0]
    other = copy("--insecure", "example.com")
    assert other.returncode == 1, "naming another registry insecure changes nothing"
    trusted = copy("--ca-cert", str(tls_registry.ca_path))
    assert trusted.returncode == 0, trusted.stderr
    insecure = copy("--insecure", tls_registry.host)
    assert insecure.returncode == 0, insecure.stderr
    assert image.digest


# -- database passwords are masked whatever they contain ------------------------------------

@settings(max_examples=300, deadline=None)
@given(password=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126),
                        min_size=1, max_size=24).map(lambda p: "S3CR" + p),
       scheme=st.sampled_from(["postgresql", "postgres"]),
       tail=st.sampled_from(["db.example:5432/app", "db.example/app?sslmode=require",
                             "[::1]:5432/app", "/app?host=/run/pg"]))
def test_database_password_never_shown(password: str, scheme: str, tail: str) -> None:
    from ociforge.app.dburl import DatabaseURL, mask_url, scrub

    url = f"{scheme}://user:{password}@{tail}"
    assert password not in mask_url(url)
    assert password not in DatabaseURL("postgresql", url).shown
    message = f'connection to "{url}" failed: password authentication failed for "user"'
    assert password not in scrub(message, url)
