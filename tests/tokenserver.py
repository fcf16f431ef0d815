"""A small token server that behaves like Docker Hub's auth service (auth.docker.io).

It signs ES256 JWTs (raw r||s signature, ``x5c`` header) that the real
distribution registry validates against ``cert_pem``.  GET /token with Basic
credentials (or none: anonymous gets pull only), and POST /token with the OAuth2
``refresh_token`` / ``password`` grants.  It records every scope asked for, so
tests can check which tokens a client requested.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from httpserver import LoopbackServer, QuietHandler


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class TokenRequest:
    method: str
    user: str | None
    scopes: list[str]


@dataclass
class TokenServer:
    service: str = "registry.docker.io"
    issuer: str = "fake-auth.example"
    users: dict[str, str] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)   # refresh token -> user
    expires_in: int = 300
    requests: list[TokenRequest] = field(default_factory=list)   # granted requests
    denied: int = 0                                          # refused requests
    issued: list[str] = field(default_factory=list)      # every token handed out

    def __post_init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake token signer")])
        now = dt.datetime.now(dt.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self._httpd: LoopbackServer | None = None
        self._lock = threading.Lock()

    @property
    def cert_pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def mint(self, user: str | None, scopes: list[str], expires_in: int | None = None) -> str:
        """A JWT granting the requested actions (anonymous users get pull only)."""
        now = int(time.time())
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            granted = sorted(a for a in actions if a and (user is not None or a == "pull"))
            access.append({"type": kind, "name": name, "actions": granted})
        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self._cert.public_bytes(
                      serialization.Encoding.DER)).decode()]}
        claims = {"iss": self.issuer, "aud": self.service, "sub": user or "",
                  "exp": now + (self.expires_in if expires_in is None else expires_in),
                  "nbf": now - 1, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = (_b64url(json.dumps(header).encode()) + "."
                         + _b64url(json.dumps(claims).encode())).encode()
        der = self._key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input.decode() + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    # -- HTTP ---------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                user = self._basic_user()
                if user is False:
                    return self._deny()
                scopes = [s for item in query.get("scope", []) for s in item.split(" ") if s]
                self._grant("GET", user or None, scopes)

            def do_POST(self) -> None:
                form = parse_qs(self.read_body().decode())
                grant = form.get("grant_type", [""])[0]
                scopes = [s for item in form.get("scope", []) for s in item.split(" ") if s]
                if grant == "refresh_token":
                    user = server.refresh_tokens.get(form.get("refresh_token", [""])[0])
                elif grant == "password":
                    name = form.get("username", [""])[0]
                    ok = server.users.get(name) == form.get("password", [""])[0]
                    user = name if ok else None
                else:
                    user = None
                if user is None or not form.get("client_id"):
                    return self._deny()
                self._grant("POST", user, scopes)

            def _basic_user(self) -> str | bool:
                header = self.headers.get("Authorization", "")
                if not header:
                    return ""
                if not header.lower().startswith("basic "):
                    return False
                try:
                    name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                except ValueError:
                    return False
                return name if server.users.get(name) == password and name else False

            def _deny(self) -> None:
                with server._lock:
                    server.denied += 1
                self.reply(401, b'{"details":"incorrect username or password"}',
                           {"Content-Type": "application/json"})

            def _grant(self, method: str, user: str | None, scopes: list[str]) -> None:
                with server._lock:
                    server.requests.append(TokenRequest(method, user, scopes))
                token = server.mint(user, scopes)
                with server._lock:
                    server.issued.append(token)
                body = json.dumps({
                    "token": token, "access_token": token, "expires_in": server.expires_in,
                    "issued_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }).encode()
                self.reply(200, body, {"Content-Type": "application/json"})

        self._httpd = LoopbackServer(Handler, host, port=port)
        return f"http://{self._httpd.host}/token"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.stop()
            self._httpd = None
