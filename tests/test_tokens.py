"""Secrets found by content and by value: token formats, private keys, data-science leaks.

Every token is generated at random in each run (tests/secretgen.py), so no rule can
pass by knowing a value; the negative cases (mentions, placeholders, identifiers,
base64 images) are what keeps false positives low.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
import secretgen as sg
from hypothesis import given, settings
from hypothesis import strategies as st

from ociforge.app import tokens
from ociforge.app.policy import Policy
from ociforge.app.spec import ExtraPatterns


@pytest.fixture
def policy() -> Policy:
    return Policy.for_app(ExtraPatterns(), ExtraPatterns())


def rule_for(policy: Policy, tmp_path: Path, rel: str, content: str | bytes,
             files_layer: bool = True, read_os_trees: bool = True) -> str | None:
    host = tmp_path / "f" / rel.replace("/", "_")
    host.parent.mkdir(exist_ok=True)
    host.write_bytes(content if isinstance(content, bytes) else content.encode())
    found = policy.host_file_rule(rel, host, files_layer=files_layer,
                                  read_os_trees=read_os_trees)
    return found.name if found is not None else None


CONTEXTS = [
    ("app/settings.py", 'GITHUB = "{t}"\n'),
    ("files/notes.md", "my key: {t} (do not share)\n"),
    ("files/analysis.ipynb", None),          # printed in a notebook cell's output
    ("app/run.sh", "curl -H 'Authorization: Bearer {t}' https://api.example.com\n"),
    ("app/config.json", '{{"token": "{t}"}}'),
]


@pytest.mark.parametrize("kind", sorted(sg.TOKENS))
@pytest.mark.parametrize(("rel", "template"), CONTEXTS)
def test_every_token_format_is_found_in_text_and_notebooks(
        policy: Policy, tmp_path: Path, kind: str, rel: str, template: str | None) -> None:
    token = sg.TOKENS[kind]()
    if template is None:
        content = sg.notebook([("import os\n", "hello\n"),
                               ("print(get_token())\n", f"token is\n{token}\n")])
    else:
        content = template.format(t=token)
    assert rule_for(policy, tmp_path, rel, content) == sg.rule_of(kind)


@pytest.mark.parametrize("kind", sorted(sg.TOKENS))
def test_every_token_format_drops_a_variable_by_value(policy: Policy, kind: str) -> None:
    token = sg.TOKENS[kind]()
    rule = policy.env_rule("SETTING", token)
    assert rule is not None and rule.name == "secret-token-value"
    rule = policy.env_rule("HEADER", f"Bearer {token}")
    assert rule is not None


@pytest.mark.parametrize("text", [
    "Personal access tokens start with the ghp_ prefix; GitLab's with glpat-.\n",
    "GITHUB_TOKEN=ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\n",
    "token = 'ghp_<your-token-here>'\n",
    "export HF_TOKEN=hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
    "from huggingface_hub import hf_hub_download, snapshot_download\n",
    "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"
    "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
    "url = 'postgresql://user:password@localhost:5432/db'\n",
    "engine = create_engine('postgresql://scott:tiger@localhost/test')\n",
    "see https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX\n",
    "stripe.api_key = 'sk_live_...'\n",
    "A PEM key begins with -----BEGIN RSA PRIVATE KEY----- and ends with its END line.\n",
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ3Jf" + "A" * 60
    + "\n-----END CERTIFICATE-----\n",
    "https://registry.example.com:8443/v2/_catalog and ssh://git@github.com/org/repo\n",
    "jwt = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6Ikpva"
    "G4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c'\n",
    "client_secret = os.environ['CLIENT_SECRET']\n",
    # from real documentation: pip's authentication page, binutils' copyright, PyJWT's README
    "https://user:he%2F%2Fo@pypi.company.com/simple\n",
    "  cvs://:pserver:anoncvs@sources.redhat.com:/cvs/src\n",
    ">>> encoded = jwt.encode({'some': 'payload'}, 'secret', algorithm='HS256')\n"
    "'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzb21lIjoicGF5bG9hZCJ9."
    "4twFt5NiznN84AWoo1d7KO1T_yoc0Z6XOpOVswacPZg'\n",
])
def test_mentions_placeholders_and_identifiers_ship(policy: Policy, tmp_path: Path,
                                                   text: str) -> None:
    assert rule_for(policy, tmp_path, "files/README.md", text) is None
    assert tokens.find_in_text(text.strip()) is None


def test_base64_images_in_notebook_outputs_are_no_tokens(policy: Policy, tmp_path: Path) -> None:
    image = base64.b64encode(os.urandom(3 << 20)).decode()
    content = sg.notebook([("plot()\n", "")]).replace(
        '"outputs": [', f'"outputs": [{{"data": {{"image/png": "{image}"}}, '
                        '"output_type": "display_data"}, ', 1)
    assert rule_for(policy, tmp_path, "files/plots.ipynb", content) is None


def test_aws_keys_with_their_secret_and_credentials_files(policy: Policy, tmp_path: Path) -> None:
    key_id, secret = sg.aws_pair()
    creds = f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
    assert rule_for(policy, tmp_path, "files/aws.ini", creds) == "aws-credentials"
    code = f's3 = boto3.client("s3", aws_access_key_id="{key_id}",\n    "{secret}")\n'
    assert rule_for(policy, tmp_path, "app/load.py", code) == "aws-access-key"
    # a key id alone is an identifier in a file; as a variable's value it is dropped
    assert rule_for(policy, tmp_path, "app/ids.txt", f"bucket owner {key_id}\n") is None
    rule = policy.env_rule("S3_OWNER", key_id)
    assert rule is not None and rule.name == "secret-token-value"


@pytest.mark.parametrize("prefix", ["\ufeff", "Here is the deploy key:\n", "  # key\n\n"])
def test_private_keys_after_a_bom_or_prose(policy: Policy, tmp_path: Path, prefix: str) -> None:
    assert rule_for(policy, tmp_path, "files/notes.txt",
                    prefix + sg.pem_private_key()) in ("private-key-in-text",
                                                        "private-key-content")
    assert rule_for(policy, tmp_path, "files/notes.txt",
                    "Key follows.\n" + sg.pem_private_key()) == "private-key-in-text"


def test_pgp_and_putty_private_keys(policy: Policy, tmp_path: Path) -> None:
    body = "\n".join(sg.rand(64, sg.ALNUM + "+/") for _ in range(6))
    pgp = f"-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\n{body}\n=abcd\n" \
          "-----END PGP PRIVATE KEY BLOCK-----\n"
    assert rule_for(policy, tmp_path, "files/key.asc", pgp) == "private-key-in-text"
    putty = (f"PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: me\n"
             f"Public-Lines: 2\n{body[:130]}\nPrivate-Lines: 1\n{sg.rand(44, sg.ALNUM + '+/')}\n"
             f"Private-MAC: {sg.rand(64, '0123456789abcdef')}\n")
    assert rule_for(policy, tmp_path, "files/me.ppk", putty) == "private-key-in-text"


def test_service_account_and_oauth_client_files(policy: Policy, tmp_path: Path) -> None:
    key = sg.service_account(sg.pem_private_key())
    assert rule_for(policy, tmp_path, "files/gcp/sa-key.json", key) == "service-account-key"
    client = sg.oauth_client(sg.rand(24, sg.ALNUM + "_-"))
    assert rule_for(policy, tmp_path, "files/client_secret_123.json", client) \
        == "oauth-client-secret"
    # a service-account description without the key is no credential
    assert rule_for(policy, tmp_path, "files/sa.json",
                    '{"type": "service_account", "client_email": "svc@p.iam"}') is None


@pytest.mark.parametrize(("name", "dirty", "clean"), [
    ("pip.conf", "[global]\nindex-url = https://bob:{pw}@pypi.acme.internal/simple\n",
     "[global]\nindex-url = https://pypi.acme.internal/simple\ntimeout = 60\n"),
    (".condarc", "channels:\n  - https://conda.anaconda.org/t/{tok}/acme\n  - defaults\n",
     "channels:\n  - conda-forge\n  - defaults\nchannel_priority: strict\n"),
    (".yarnrc.yml", 'npmRegistryServer: "https://npm.acme.io"\nnpmAuthToken: "{tok}"\n',
     'npmRegistryServer: "https://npm.acme.io"\nnodeLinker: node-modules\n'),
    # Yarn v1: "key value", the key or the value quoted or not
    (".yarnrc", 'registry "https://npm.acme.io/"\n_authToken "{tok}"\n',
     'registry "https://npm.acme.io/"\nsave-prefix "~"\n'),
    (".yarnrc", 'registry "https://registry.acme.io/"\n'
                '"//registry.acme.io/:_authToken" "{tok}"\n',
     'registry "https://registry.acme.io/"\n"--install.frozen-lockfile" true\n'),
    (".yarnrc", "//registry.acme.io/:_authToken {tok}\n",
     "# the _authToken line is set by CI\nnetwork-timeout 600000\n"),
    (".Rprofile", 'options(repos = c(ACME = "https://r:{pw}@cran.acme.io"))\n',
     'options(repos = c(CRAN = "https://cloud.r-project.org"))\n'),
])
def test_package_manager_configs_are_judged_by_content(policy: Policy, tmp_path: Path,
                                                       name: str, dirty: str, clean: str) -> None:
    text = dirty.format(pw=sg.password(), tok=sg.rand(30, sg.ALNUM + "-"))
    assert rule_for(policy, tmp_path, f"root/{name}", text) == "package-manager-credentials"
    assert rule_for(policy, tmp_path, f"root/{name}", clean) is None


@pytest.mark.parametrize(("path", "rule"), [
    ("root/.bash_history", "shell-history"), ("home/u/.zsh_history", "shell-history"),
    ("home/u/.python_history", "shell-history"), ("files/.Rhistory", "shell-history"),
    ("root/.psql_history", "shell-history"), ("root/.sqlite_history", "shell-history"),
    ("root/.node_repl_history", "shell-history"),
    ("home/u/.ipython/profile_default/history.sqlite", "shell-history"),
    ("home/u/.Renviron", "r-environ"), ("files/app/.streamlit/secrets.toml", "streamlit-secrets"),
    ("files/nb/.ipynb_checkpoints", "jupyter-checkpoints"),
])
def test_data_science_leaks_by_name(policy: Policy, path: str, rule: str) -> None:
    found = policy.file_rule(path, files_layer=False)
    assert found is not None and found.name == rule


@pytest.mark.parametrize("path", [
    "files/app/.streamlit/config.toml", "etc/R/Renviron.site", "files/history.csv",
    "files/nb/analysis.ipynb", "usr/lib/R/etc/Renviron",
])
def test_neighbours_of_those_leaks_ship(policy: Policy, path: str) -> None:
    assert policy.file_rule(path, files_layer=True) is None


@pytest.mark.parametrize(("value", "rule"), [
    ("host=db.internal port=5432 dbname=app user=etl password={pw}", "credential-in-dsn"),
    ("host=db user=etl password='{pw} x' sslmode=require", "credential-in-dsn"),
    ("Server=tcp:sql.acme.net,1433;Database=app;User ID=etl;Password={pw};",
     "credential-in-dsn"),
    ("DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={b64};"
     "EndpointSuffix=core.windows.net", "credential-in-dsn"),
    ("Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=Root;"
     "SharedAccessKey={b64}", "credential-in-dsn"),
    ("https://{hex}@o12345.ingest.sentry.io/6789", "sentry-dsn"),
    ("https://{hex}:{hex}@sentry.acme.io/12", "credential-in-url"),  # the old form
    ("postgres://u:{pw}@db/app", "credential-in-url"),
])
def test_variables_are_judged_by_value_whatever_their_name(policy: Policy, value: str,
                                                            rule: str) -> None:
    text = value.format(pw=sg.password(), b64=base64.b64encode(os.urandom(64)).decode(),
                        hex=os.urandom(16).hex())
    found = policy.env_rule("APP_SETTING", text)
    assert found is not None and found.name == rule


@pytest.mark.parametrize("value", [
    "host=db.internal port=5432 dbname=app user=etl", "sslmode=require",
    "Server=tcp:sql.acme.net;Database=app;Integrated Security=true;",
    "https://sentry.io/organizations/acme/", "https://abc@example.com/path",
    "the password= option is documented", "Bearer", "ghp_", "/opt/conda/bin:/usr/bin",
])
def test_ordinary_values_stay(policy: Policy, value: str) -> None:
    assert policy.env_rule("APP_SETTING", value) is None


def test_allow_files_keeps_a_named_file_from_secret_rules_only(tmp_path: Path) -> None:
    policy = Policy.for_app(ExtraPatterns(),
                            ExtraPatterns(allow_files=("**/fixtures/*.json", ".bash_history",
                                                       "*.lic")))
    token = sg.TOKENS["github-token"]()
    assert rule_for(policy, tmp_path, "files/fixtures/fake.json", f'{{"t": "{token}"}}') is None
    assert rule_for(policy, tmp_path, "files/other.json", f'{{"t": "{token}"}}') == "github-token"
    assert policy.file_rule("root/.bash_history", files_layer=False) is None
    assert policy.file_rule("root/.zsh_history", files_layer=False) is not None
    # license material is not a secret: allow_files does not bring it back
    found = policy.file_rule("opt/solver.lic", files_layer=False)
    assert found is not None and found.kind == "license"


def _csv(size: int) -> str:
    """CSV rows adding up to ``size`` characters (or a few more)."""
    row = "2024-05-01T10:00:00Z,station-17,12.5,ok\n"
    return "taken,station,value,status\n" + row * (size // len(row) + 1)


def rule_and_warnings(policy: Policy, tmp_path: Path, rel: str, content: str
                      ) -> tuple[str | None, list[str]]:
    host = tmp_path / "f" / rel.replace("/", "_")
    host.parent.mkdir(exist_ok=True)
    host.write_text(content)
    warnings: list[str] = []
    found = policy.host_file_rule(rel, host, files_layer=True, warn=warnings.append)
    return (found.name if found is not None else None), warnings


def test_text_files_are_read_in_windows_to_the_cap(policy: Policy, tmp_path: Path) -> None:
    token = sg.TOKENS["github-token"]()
    # past the first MiB: at ~5 MiB of a CSV, and of a log
    late = _csv(5 << 20) + f"2024-05-01T10:00:01Z,station-17,{token},ok\n" + _csv(1 << 20)
    assert rule_for(policy, tmp_path, "files/data/events.csv", late) == "github-token"
    assert rule_for(policy, tmp_path, "files/logs/app.log", late.replace(",", " ")) \
        == "github-token"
    # across each window's edge, and at each next window's first bytes: never cut in two
    window, span = tokens.TEXT_WINDOW, tokens.TOKEN_SPAN
    step = window - span
    for at in (window - 20, window - span - 1, window - span, window + step - 30,
               window + step - span - 1):
        text = "x" * (at - 1) + " " + token + " " + "y" * (window // 2)
        assert text.index(token) == at
        assert rule_for(policy, tmp_path, "files/edge.txt", text) == "github-token", at
        # the byte before a window's first byte still decides whether a token starts there
        glued = "x" * at + token + " " + "y" * (window // 2)
        assert rule_for(policy, tmp_path, "files/glued.txt", glued) is None, at
    # a long token (a JWT with many claims, ~5 KiB) across the edge: the overlap holds it
    claims = {"sub": sg.rand(12), "iat": 1_700_000_000, "scope": " ".join(
        sg.rand(12) for _ in range(300))}
    jwt = ".".join([sg.jwt().split(".")[0],
                    base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("="),
                    sg.jwt().split(".")[2]])
    assert len(jwt) > 4000
    text = "x" * (window - 3000) + " " + jwt + " " + "y" * (window // 2)
    assert rule_for(policy, tmp_path, "files/jwt.txt", text) == "jwt"
    # a notebook's output far down
    notebook = sg.notebook([("x = 1\n", "y\n" * (3 * tokens.TEXT_WINDOW)),
                            ("show()\n", token + "\n")])
    assert rule_for(policy, tmp_path, "files/big.ipynb", notebook) == "github-token"
    # binary files are not read for tokens
    binary = b"\x89PNG\r\n\x1a\n\0\0\0" + token.encode()
    assert rule_for(policy, tmp_path, "files/img.png", binary) is None
    assert rule_for(policy, tmp_path, "files/big.bin", b"\0" + b"x" * (3 << 20) + b" "
                    + token.encode()) is None


def test_past_the_cap_a_file_is_named_not_passed_in_silence(policy: Policy,
                                                           tmp_path: Path) -> None:
    token = sg.TOKENS["gitlab-token"]()
    body = _csv(tokens.TEXT_SCAN_CAP)
    assert rule_and_warnings(policy, tmp_path, "files/data/all.csv",
                             body[:tokens.TEXT_SCAN_CAP - 200] + f" {token}\n") \
        == ("gitlab-token", [])
    rule, warnings = rule_and_warnings(policy, tmp_path, "files/data/all.csv",
                                       body + f" {token}\n")
    assert rule is None
    assert warnings == [f"/files/data/all.csv was read for tokens up to "
                        f"{tokens.TEXT_SCAN_CAP >> 20} MiB only: the rest of it was not "
                        "scanned (leave it out, or split it, if it may hold secrets)"]
    # a file of exactly the cap was read to its end: nothing to say
    assert rule_and_warnings(policy, tmp_path, "files/data/all.csv",
                             body[:tokens.TEXT_SCAN_CAP]) == (None, [])


def test_installed_software_and_the_base_os_are_not_read_for_tokens(policy: Policy,
                                                                     tmp_path: Path) -> None:
    text = f'EXAMPLE_TOKEN = "{sg.TOKENS["github-token"]()}"\n'
    for rel in ("opt/venv/lib/python3.11/site-packages/pkg/tests/test_auth.py",
                "app/node_modules/lib/README.md", "usr/local/lib/R/site-library/x/doc/a.R"):
        assert rule_for(policy, tmp_path, rel, text) is None
    # /usr of a base image belongs to its packages; the app's own layers are read everywhere
    assert rule_for(policy, tmp_path, "usr/share/app/conf.py", text,
                    read_os_trees=False) is None
    assert rule_for(policy, tmp_path, "usr/share/app/conf.py", text) == "github-token"
    assert rule_for(policy, tmp_path, "usr/local/bin/tool", text,
                    read_os_trees=False) == "github-token"
    assert rule_for(policy, tmp_path, "root/notes.txt", text,
                    read_os_trees=False) == "github-token"


def test_every_new_rule_is_described(policy: Policy) -> None:
    described = policy.describe()
    for name in ("github-token", "private-key-in-text", "shell-history", "credential-in-dsn",
                 "secret-token-value", "package-manager-credentials", "jupyter-checkpoints"):
        assert described.get(name), name


def _reference_match(rule_globs: tuple[str, ...], keep: tuple[str, ...], rel: str) -> bool:
    """FileRule's documented semantics, written the slow obvious way."""
    import fnmatch

    path = rel.strip("/")
    base = path.rpartition("/")[2].lower()
    if any(fnmatch.fnmatchcase(base, k.lower()) for k in keep):
        return False
    for glob in rule_globs:
        if "/" not in glob:
            if fnmatch.fnmatchcase(base, glob.lower()):
                return True
            continue
        candidates = [path, "/" + path]
        if glob.startswith("**/"):
            parts = path.split("/")
            candidates = ["/".join(parts[i:]) for i in range(len(parts))]
            glob = glob[3:]
        if any(fnmatch.fnmatchcase(c.lower(), glob.lower()) for c in candidates):
            return True
    return False


_SEGMENTS = ["a", "B", ".ssh", ".aws", "credentials", "id_rsa", "x.pub", ".git", "vault",
             ".streamlit", "secrets.toml", "profile_1", ".ipython", "history.sqlite", "\n", ""]


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(st.sampled_from(_SEGMENTS), min_size=1, max_size=6),
       leading=st.booleans())
def test_file_rules_match_as_documented(parts: list[str], leading: bool) -> None:
    rel = ("/" if leading else "") + "/".join(parts)
    policy = Policy.for_app(ExtraPatterns(), ExtraPatterns())
    extra = Policy.for_app(ExtraPatterns(files=("/opt/*.key", "vault/**")),
                           ExtraPatterns(files=("**/secrets/*", "*.token")))
    for rule in (*policy.file_rules, *extra.file_rules):
        assert rule.matches(rel) == _reference_match(rule.globs, rule.keep, rel), (rule.name, rel)
