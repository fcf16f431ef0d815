"""Fixture secrets generated at random in each run, so no value can be allow-listed.

Each generator returns a token in the real format of its service (prefix,
alphabet, length); nothing here is a real credential.
"""

from __future__ import annotations

import base64
import json
import secrets
import string

ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits


def rand(n: int, alphabet: str = ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt() -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps({"sub": rand(12), "iat": secrets.randbelow(10**9)}).encode())
    return f"{header}.{payload}.{_b64url(secrets.token_bytes(32))}"


def aws_pair() -> tuple[str, str]:
    return "AKIA" + rand(16, UPPER_DIGITS), rand(40, ALNUM + "/+")


# rule name -> a fresh token of that format
TOKENS = {
    "github-token": lambda: secrets.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + rand(36),
    "github-token-fine": lambda: "github_pat_" + rand(22) + "_" + rand(59),
    "gitlab-token": lambda: "glpat-" + rand(20, ALNUM + "_-"),
    "slack-token": lambda: f"xoxb-{rand(12, string.digits)}-{rand(12, string.digits)}-{rand(24)}",
    "slack-webhook": lambda: (f"https://hooks.slack.com/services/T{rand(8, UPPER_DIGITS)}/"
                              f"B{rand(8, UPPER_DIGITS)}/{rand(24)}"),
    "huggingface-token": lambda: "hf_" + rand(34, string.ascii_letters),
    "google-api-key": lambda: "AIza" + rand(35, ALNUM + "_-"),
    "oauth-client-secret": lambda: "GOCSPX-" + rand(28, ALNUM + "_-"),
    "stripe-key": lambda: "sk_live_" + rand(24),
    "openai-api-key": lambda: "sk-proj-" + rand(24) + "T3BlbkFJ" + rand(24),
    "npm-token": lambda: "npm_" + rand(36),
    "jwt": jwt,
}


def rule_of(kind: str) -> str:
    return "github-token" if kind == "github-token-fine" else kind


def password() -> str:
    """A password as people make them: letters, digits and a symbol, no dictionary word."""
    return rand(10) + secrets.choice("!#%^&")  + rand(3, string.digits)


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
