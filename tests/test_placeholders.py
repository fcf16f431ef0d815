"""Documentation placeholders ship; random secrets are never taken for one.

A secret judged a placeholder is shipped (ociforge/app/placeholders.py), so the
judgement is tested both ways.  The property tests draw over 200,000 secrets from
fixed seeds (every run the same draws, so a failure reproduces and nothing is
flaky): every token format of secretgen.py, AWS secret keys, passwords as people
make them, and passwords built around the very words placeholders use ("pwd",
"pass", "xxx", "Test", "your").  A judgement by letters found anywhere, in any
case, ships about one random token in 10,000 and nearly every such password.
"""

from __future__ import annotations

import random
import string

import pytest
import secretgen as sg

from ociforge.app import tokens
from ociforge.app.placeholders import looks_like_placeholder
from ociforge.app.policy import Policy
from ociforge.app.spec import ExtraPatterns

PER_FORMAT = 13_000     # tokens of each of the 12 formats, and AWS secret keys
PASSWORDS = 25_000      # of each kind of password
WORDS = ("pwd", "pass", "xxx", "Test", "your", "PASS", "Pwd", "XXX", "test", "YOUR", "Your",
         "demo", "secret", "tiger", "user", "Password", "example", "dummy", "changeme")


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.for_app(ExtraPatterns(), ExtraPatterns())


def found_in_file(text: str) -> str | None:
    """The rule the content scanner names for a file holding ``text``."""
    found = tokens.find_in_bytes(text.encode(),
                                 tokens.PACKAGE_MANAGER_FORMATS + tokens.TOKEN_FORMATS)
    return found.rule if found is not None else None


def in_url(password: str) -> str:
    return ("from sqlalchemy import create_engine\nengine = create_engine("
            f"'postgresql://analyst:{password}@warehouse.internal/prod')\n")


@pytest.mark.parametrize("kind", sorted(sg.TOKENS))
def test_random_tokens_are_never_placeholders(policy: Policy, kind: str) -> None:
    rng = random.Random(f"token:{kind}")
    shipped = [token for token in (sg.TOKENS[kind](rng) for _ in range(PER_FORMAT))
               if policy.env_rule("APP_SETTING", token) is None]
    assert shipped == []


def test_random_aws_secret_keys_are_never_placeholders() -> None:
    rng = random.Random("aws")
    shipped = [secret for _, secret in (sg.aws_pair(rng) for _ in range(PER_FORMAT))
               if found_in_file(f"aws_secret_access_key = {secret}\n") != "aws-credentials"]
    assert shipped == []


def test_random_passwords_in_urls_are_never_placeholders() -> None:
    rng = random.Random("password")
    shipped = [password for password in (sg.password(rng) for _ in range(PASSWORDS))
               if found_in_file(in_url(password)) != "credential-url"]
    assert shipped == []


def _around_a_word(rng: random.Random) -> str:
    """A password with a placeholder word inside random text (four or more random
    characters around it), sometimes with a symbol and digits after."""
    before = rng.randrange(0, 7)
    after = rng.randrange(max(0, 4 - before), 9)
    tail = rng.choice(["", rng.choice("!#%^&") + sg.rand(rng.randrange(1, 5), string.digits,
                                                          rng)])
    return sg.rand(before, rng=rng) + rng.choice(WORDS) + sg.rand(after, rng=rng) + tail


def test_passwords_holding_placeholder_words_are_no_placeholders(policy: Policy) -> None:
    rng = random.Random("password-with-word")
    passwords = [_around_a_word(rng) for _ in range(PASSWORDS)]
    assert sum(any(w.lower() in p.lower() for w in ("pwd", "pass", "xxx", "test", "your"))
               for p in passwords) > PASSWORDS // 3
    shipped = [password for password in passwords
               if found_in_file(in_url(password)) != "credential-url"]
    assert shipped == []
    # as a variable, any URL with a password is dropped
    assert all(policy.env_rule("APP_SETTING", f"postgresql://app:{p}@db/app") is not None
               for p in passwords[:1000])


@pytest.mark.parametrize("token", [
    # drawn by secretgen.py, each holding letters the judgement once took for a placeholder
    "ghp_UynF3116EhUBc8jZ7LvZSQbw6JxxXxBOiici", "hf_jLlbDfIrclpaCCkhoclhCDXxxXoylCjzkm",
    "sk_live_HbCTyouROH84XvHv6RXe5mmQ", "npm_QANuyf51A9WbuzFzCXJgOMTipuLyOuroqag2",
    "gho_kMY8VslY8kMznMIcOe3tgHrKifYOUrr5pLm8", "GOCSPX-5xXXx65Hx4erzzelpDyr7xbmV_Fq",
    "glpat-Xy7yOuRq9_Kd2LmnbVcZ", "AIzaSyB2_dummyXk9sl2mQp4Rt7Lw0Vb3Nc6Zx1",
])
def test_chance_letters_do_not_make_a_placeholder(policy: Policy, token: str) -> None:
    assert not looks_like_placeholder(token)
    assert policy.env_rule("APP_SETTING", token) is not None


@pytest.mark.parametrize("value", [
    "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "YOUR_TOKEN_HERE", "your-api-key", "<token>",
    "${TOKEN}", "$NPM_TOKEN", "%(token)s", "sk-...EXAMPLE", "AKIAIOSFODNN7EXAMPLE",
    "AKIAI44QH8DHBEXAMPLE", "xoxb-xxxx-xxxx", "changeme", "dummy", "redacted", "********",
    "Your_Token", "DUMMY-KEY", "sk_live_1234567890abcdefghijklmn", "hf_xXxXxXxXxXxXxXxXxX",
])
def test_documentation_placeholders_are_placeholders(value: str) -> None:
    assert looks_like_placeholder(value)


@pytest.mark.parametrize("text", [
    "export GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
    "SLACK_BOT_TOKEN=xoxb-xxxx-xxxx-xxxx\n",
    "SLACK_BOT_TOKEN=xoxb-123456789012-123456789012-XXXXXXXXXXXXXXXXXXXXXXXX\n",
    "key = 'AIzaSyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX'\n",
    "CLIENT_SECRET=GOCSPX-xxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
    "token: glpat-xxxxxxxxxxxxxxxxxxxx\n",
    "stripe.api_key = 'sk_live_1234567890abcdefghijklmn'\n",
    "aws_access_key_id = AKIAI44QH8DHBEXAMPLE\n"
    "aws_secret_access_key = je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY\n",
    "//registry.npmjs.org/:_authToken=YOUR_TOKEN_HERE\n",
    "//registry.npmjs.org/:_authToken=your-api-key\n",
    "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n",
    "//registry.npmjs.org/:_authToken=$NPM_TOKEN\n",
    "_password=changeme\n",
    'npmAuthIdent: "$NPM_USER:$NPM_PASS"\n',
    '{"installed": {"client_secret": "<client-secret>"}}',
    '{"installed": {"client_secret": "DUMMY_CLIENT_SECRET"}}',
    '{"installed": {"client_secret": "redacted"}}',
    '{"installed": {"client_secret": "********"}}',
    # passwords in URLs that are, all of them, words documentation uses
    "engine = create_engine('postgresql://scott:tiger@localhost/test')\n",
    "url = 'postgresql://user:pass@localhost/db'\n",
    "url = 'postgresql://user:password@localhost/db'\n",
    "DATABASE_URL=postgresql://app:password123@localhost/app\n",
    "DATABASE_URL=mysql://app:your_password@db/app\n",
    "DATABASE_URL=mysql://app:YOUR-PASSWORD@db/app\n",
    "DATABASE_URL=postgresql://app:changeme@db/app\n",
    "REDIS_URL=redis://app:xxxxxxxx@cache:6379/0\n",
    "DATABASE_URL=postgresql://app:$DB_PASSWORD@db/app\n",
    "BROKER=amqp://app:****@mq/vhost\n",
    "DATABASE_URL=postgresql://test:test@localhost/test\n",
    "DATABASE_URL=postgresql://app:secret@localhost/app\n",
    "DATABASE_URL=postgresql://app:demo@localhost/app\n",
    "DATABASE_URL=postgresql://app:mypassword!@localhost/app\n",
])
def test_documentation_placeholders_in_files_ship(text: str) -> None:
    assert found_in_file(text) is None


@pytest.mark.parametrize(("password"), [
    "Pass2024!", "Xy7pwdQ9k!", "hunter2", "Sample#Tree77", "Password1", "TestDrive#88",
    "yourself4Ever", "pass_7Kq9", "xxx8Lm2q", "postgres", "Pa$$word7", "My$ecret!",
])
def test_real_passwords_with_words_are_caught(password: str) -> None:
    assert not looks_like_placeholder(password, password=True)
    assert found_in_file(in_url(password)) == "credential-url"


def test_a_cvs_root_has_no_password_unless_it_writes_one() -> None:
    assert found_in_file("  cvs://:pserver:anoncvs@sources.redhat.com:/cvs/src\n") is None
    assert found_in_file("  cvs://:pserver:bob:Xk9sl2mQ@cvs.acme.io:/cvs/src\n") \
        == "credential-url"


@pytest.mark.parametrize(("url", "rule"), [
    ("https://user:he%2F%2Fo@pypi.company.com/simple\n", None),       # pip's documentation
    ("git clone https://me:abc1@git.acme.io/app.git\n", None),
    ("https://user:Kx9mQ2vLp7@git.acme.io/org/app.git\n", "credential-url"),
    ("pip install --index-url https://anonymous:s3cr%21tLongPass@pypi.acme.io/simple\n",
     "credential-url"),
    ("git clone https://login:%24uperS3cret@git.acme.io/app.git\n", "credential-url"),
])
def test_a_documentation_user_name_does_not_excuse_a_real_password(url: str,
                                                                   rule: str | None) -> None:
    """A URL whose user name documentation uses is a placeholder only with a password too
    short to be real: ``user:<10 random characters>`` is somebody's credential."""
    assert found_in_file(url) == rule
