"""Fixture secrets generated at random in each run, so no value can be allow-listed.

Each generator returns a token in the real format of its service (prefix,
alphabet, length); nothing here is a real credential.
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import string
from collections.abc import Callable

ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits


def _source(rng: random.Random | None) -> random.Random:
    """The generator to draw from: ``rng`` (seeded, for tests that must repeat
    exactly), else the operating system's randomness."""
    return rng if rng is not None else secrets.SystemRandom()


def rand(n: int, alphabet: str = ALNUM, rng: random.Random | None = None) -> str:
    choice = _source(rng).choice
    return "".join(choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: random.Random | None = None) -> str:
    source = _source(rng)
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps({"sub": rand(12, rng=rng),
                                  "iat": source.randrange(10**9)}).encode())
    return f"{header}.{payload}.{_b64url(source.randbytes(32))}"


def aws_pair(rng: random.Random | None = None) -> tuple[str, str]:
    return "AKIA" + rand(16, UPPER_DIGITS, rng), rand(40, ALNUM + "/+", rng)


def _github(rng: random.Random | None = None) -> str:
    return _source(rng).choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + rand(36, rng=rng)


# rule name -> a fresh token of that format (from ``rng`` when one is given)
TOKENS: dict[str, Callable[..., str]] = {
    "github-token": _github,
    "github-token-fine": lambda rng=None: ("github_pat_" + rand(22, rng=rng) + "_"
                                           + rand(59, rng=rng)),
    "gitlab-token": lambda rng=None: "glpat-" + rand(20, ALNUM + "_-", rng),
    "slack-token": lambda rng=None: (f"xoxb-{rand(12, string.digits, rng)}-"
                                     f"{rand(12, string.digits, rng)}-{rand(24, rng=rng)}"),
    "slack-webhook": lambda rng=None: (f"https://hooks.slack.com/services/"
                                       f"T{rand(8, UPPER_DIGITS, rng)}/"
                                       f"B{rand(8, UPPER_DIGITS, rng)}/{rand(24, rng=rng)}"),
    "huggingface-token": lambda rng=None: "hf_" + rand(34, string.ascii_letters, rng),
    "google-api-key": lambda rng=None: "AIza" + rand(35, ALNUM + "_-", rng),
    "oauth-client-secret": lambda rng=None: "GOCSPX-" + rand(28, ALNUM + "_-", rng),
    "stripe-key": lambda rng=None: "sk_live_" + rand(24, rng=rng),
    "openai-api-key": lambda rng=None: ("sk-proj-" + rand(24, rng=rng) + "T3BlbkFJ"
                                        + rand(24, rng=rng)),
    "npm-token": lambda rng=None: "npm_" + rand(36, rng=rng),
    "jwt": jwt,
}


def rule_of(kind: str) -> str:
    return "github-token" if kind == "github-token-fine" else kind


def password(rng: random.Random | None = None) -> str:
    """A password as people make them: letters, digits and a symbol, no dictionary word."""
    return (rand(10, rng=rng) + _source(rng).choice("!#%^&")
            + rand(3, string.digits, rng))


def pem_private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def service_account(key_pem: str) -> str:
    return json.dumps({
        "type": "service_account", "project_id": "proj-" + rand(6).lower(),
        "private_key_id": secrets.token_hex(20), "private_key": key_pem,
        "client_email": f"svc@proj-{rand(6).lower()}.iam.gserviceaccount.com",
        "client_id": rand(21, string.digits),
    }, indent=2)


def oauth_client(client_secret: str) -> str:
    return json.dumps({"installed": {
        "client_id": f"{rand(12, string.digits)}-{rand(32).lower()}.apps.googleusercontent.com",
        "project_id": "proj", "client_secret": client_secret,
        "redirect_uris": ["http://localhost"]}})


def notebook(cells: list[tuple[str, str]]) -> str:
    """A Jupyter notebook: (source, printed output) per code cell."""
    return json.dumps({
        "cells": [{"cell_type": "code", "execution_count": i + 1, "metadata": {},
                   "source": source.splitlines(keepends=True),
                   "outputs": [{"name": "stdout", "output_type": "stream",
                                "text": output.splitlines(keepends=True)}]}
                  for i, (source, output) in enumerate(cells)],
        "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5,
    }, indent=1)
