"""Secrets recognised by what they are, whatever the file or variable is called.

Each TokenFormat is named data, so the report names the rule that left a file out
or dropped a variable.  A format matches a whole token only: its fixed prefix, its
alphabet and length, and no token character right before or after it.  So the text
"ghp_ prefix" in documentation, an identifier such as ``hf_hub_download`` or a run
of base64 in a notebook's image output is no token.  The secret part must also not
be a placeholder (placeholders.py: ``EXAMPLE``, ``xxxxxxxx``, ``<your-token>``,
``${TOKEN}``): real tokens are random, documentation examples are not.

Reading is bounded.  A file (the app's own, or a base layer's as the layer streams
by) is read in windows of ``TEXT_WINDOW`` that overlap by ``TOKEN_SPAN`` (longer than
any token a format matches, so none is cut in two) up to ``TEXT_SCAN_CAP``; a file
longer than that is reported, not silently shipped (``Policy.judge_content``).  A file
with a NUL byte in its first 8 KiB is binary and not read for tokens.  Literal
markers are looked for first, all of them in one Aho-Corasick pass over a window
(``MarkerIndex``); a format's regex runs only on text that holds one of its markers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .placeholders import looks_like_placeholder, placeholder_user

TEXT_HEAD = 1 << 20           # bytes of an environment variable's value read for tokens
BINARY_PROBE = 8 << 10        # a NUL byte in these first bytes: a binary file
TEXT_WINDOW = 1 << 20         # a text file is read for tokens one window at a time
TOKEN_SPAN = 64 << 10         # windows overlap by this: more than any format's longest match
TEXT_SCAN_CAP = 64 << 20      # bytes of a text file read for tokens; past them, a warning

_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")

# Claims every real access token carries one of (a documentation example often has none:
# PyJWT's {"some": "payload"}).
_JWT_CLAIMS = ("exp", "iat", "nbf", "iss", "aud", "jti")


@dataclass(frozen=True)
class TokenFormat:
    """One way a secret is written.  ``regex`` is ASCII; its group ``s`` (and ``s2``
    when present) is the secret part that must not be a placeholder."""

    rule: str                       # the rule the report names (formats may share one)
    regex: str
    markers: tuple[str, ...]        # literal text, one of which must be present
    files: bool = True              # looked for in files
    env: bool = True                # looked for in environment values
    ignore_case: bool = False       # markers and regex match case-insensitively
    password: bool = False          # the secret is a password someone typed (stricter check)
    # The token starts with one of ``starts`` (default: the markers) at the start of a
    # word, and only there is the regex tried; False: the regex scans the text itself.
    word_start: bool = True
    starts: tuple[str, ...] = ()
    whole: bool = False             # the value must be this token and nothing else
    # A further test of the whole match.  Not in the repr: a function's repr holds its
    # address, and the repr of the rules keys the cache (the code of this module does).
    check: Callable[[bytes], bool] | None = field(default=None, repr=False)
    once: bool = False              # the regex is tried once, at the start of the text
    inside: str = ""                # characters that, right before a start, mean "inside"
    compiled: re.Pattern[bytes] = field(init=False, repr=False, compare=False)
    marker_bytes: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    start_bytes: tuple[bytes, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        flags = re.IGNORECASE if self.ignore_case else 0
        object.__setattr__(self, "compiled", re.compile(self.regex.encode(), flags))
        markers = [m.lower() if self.ignore_case else m for m in self.markers]
        object.__setattr__(self, "marker_bytes", tuple(m.encode() for m in markers))
        object.__setattr__(self, "start_bytes",
                           tuple(s.encode() for s in self.starts or self.markers))

    def has_marker(self, head: bytes, lowered: bytes) -> bool:
        """One of the markers is in the text (``lowered`` is the text lower-cased)."""
        where = lowered if self.ignore_case else head
        return any(m in where for m in self.marker_bytes)


def _fmt(rule: str, regex: str, *markers: str, starts: tuple[str, ...] = (),
         inside: str = "", check: Callable[[bytes], bool] | None = None,
         **kw: bool) -> TokenFormat:
    return TokenFormat(rule, regex, markers, starts=starts, inside=inside, check=check, **kw)


def _jwt_claims(token: bytes) -> bool:
    """A JWT whose payload is a JSON object with a registered claim a real token has."""
    import base64
    import binascii

    from ..errors import InvalidInputError
    from ..model.jsonutil import loads

    parts = token.split(b".")
    try:
        payload = loads(base64.urlsafe_b64decode(parts[1] + b"=" * (-len(parts[1]) % 4)),
                        "JWT payload")
    except (ValueError, binascii.Error, IndexError, InvalidInputError):
        return False
    return isinstance(payload, dict) and any(claim in payload for claim in _JWT_CLAIMS)


_PEM_BODY = r"(?:\s{1,8}[A-Za-z0-9-]{1,40}:[^\n]{0,200}){0,8}\s{1,8}[A-Za-z0-9+/=]{40}"

# Order matters: the first format that matches names the rule.
TOKEN_FORMATS: tuple[TokenFormat, ...] = (
    _fmt("service-account-key",
         r'(?=[\s\S]*?"type"\s*:\s*"service_account")'
         r'(?=[\s\S]*?"private_key"\s*:\s*"-----BEGIN)',
         "service_account", env=False, once=True),
    _fmt("private-key-in-text", r"-----BEGIN (?:[A-Z0-9]+ ){0,4}PRIVATE KEY-----" + _PEM_BODY,
         "PRIVATE KEY-----", word_start=False),
    _fmt("private-key-in-text", r"-----BEGIN PGP PRIVATE KEY BLOCK-----" + _PEM_BODY,
         "PGP PRIVATE KEY BLOCK", word_start=False),
    _fmt("private-key-in-text", r"PuTTY-User-Key-File-[23]: [^\n]*\n[\s\S]{0,8192}?"
                        r"Private-Lines: \d+\s+[A-Za-z0-9+/=]{20,}", "PuTTY-User-Key-File-"),
    _fmt("github-token", r"(?P<s>gh[pousr]_[A-Za-z0-9]{36,251}+)(?![A-Za-z0-9_])",
         "ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    _fmt("github-token", r"(?P<s>github_pat_[A-Za-z0-9_]{60,251}+)(?![A-Za-z0-9_])",
         "github_pat_"),
    _fmt("gitlab-token", r"(?P<s>gl(?:pat|dt|rt|ptt)-[A-Za-z0-9_-]{20,255}+)(?![A-Za-z0-9_-])",
         "glpat-", "gldt-", "glrt-", "glptt-", inside="-"),
    # aws_secret_access_key = ... (an aws-credentials or boto config, code, a notebook)
    _fmt("aws-credentials",
         r"(?:aws_?secret_?(?:access_?)?key|secret_?access_?key)[\"']?\s*[:=]\s*[\"']?"
         r"(?P<s>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
         "secret_access_key", "secretaccesskey", "aws_secret_key", "awssecretkey",
         ignore_case=True, word_start=False),
    # An access key id with its secret key near it (a key id alone is an identifier).
    _fmt("aws-access-key",
         r"(?P<s2>(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16})(?![A-Za-z0-9])[\s\S]{1,300}?"
         r"(?<![A-Za-z0-9/+])(?P<s>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
         "AKIA", "ASIA", "ABIA", "ACCA", env=False),
    _fmt("aws-access-key", r"(?P<s>(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16})",
         "AKIA", "ASIA", "ABIA", "ACCA", files=False, whole=True),
    _fmt("slack-token", r"(?P<s>xox[abposrce]-[A-Za-z0-9-]{10,255}+)(?![A-Za-z0-9_-])",
         "xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-", "xoxc-", "xoxe-", inside="-"),
    _fmt("slack-token",
         r"(?P<s>xapp-\d-[A-Z0-9]{8,32}-\d{6,20}-[a-z0-9]{32,128}+)(?![A-Za-z0-9])",
         "xapp-", inside="-"),
    _fmt("slack-webhook",
         r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<s>[A-Za-z0-9_/-]{20,255})",
         "hooks.slack.com/"),
    _fmt("huggingface-token", r"(?P<s>hf_[A-Za-z0-9]{34,40}+)(?![A-Za-z0-9_])", "hf_"),
    _fmt("google-api-key", r"(?P<s>AIza[0-9A-Za-z_-]{35})(?![A-Za-z0-9_-])", "AIza",
         inside="-"),
    _fmt("oauth-client-secret", r"(?P<s>GOCSPX-[A-Za-z0-9_-]{28})(?![A-Za-z0-9_-])", "GOCSPX-",
         inside="-"),
    _fmt("oauth-client-secret", r'"client_secret"\s*:\s*"(?P<s>[^"\\\s]{8,255})"',
         '"client_secret"', env=False),
    _fmt("stripe-key", r"(?P<s>[rs]k_live_[0-9A-Za-z]{20,255}+)(?![A-Za-z0-9_])", "k_live_",
         starts=("sk_live_", "rk_live_")),
    _fmt("openai-api-key",
         r"(?P<s>sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{16,255}?T3BlbkFJ"
         r"[A-Za-z0-9_-]{16,255}+)(?![A-Za-z0-9_-])", "T3BlbkFJ", starts=("sk-",),
         inside="-"),
    _fmt("anthropic-api-key",
         r"(?P<s>sk-ant-[a-z]{3,8}\d{2}-[A-Za-z0-9_-]{80,255}+)(?![A-Za-z0-9_-])",
         "sk-ant-", inside="-"),
    _fmt("npm-token", r"(?P<s>npm_[A-Za-z0-9]{36})(?![A-Za-z0-9_])", "npm_"),
    _fmt("pypi-token", r"(?P<s>pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,512}+)(?![A-Za-z0-9_-])",
         "pypi-AgEIcHlwaS5vcmc", inside="-"),
    _fmt("jwt", r"(?P<s>eyJ[A-Za-z0-9_-]{10,4096}\.eyJ[A-Za-z0-9_-]{10,8192}\."
                r"[A-Za-z0-9_-]{16,1024})"
                r"(?![A-Za-z0-9_.-])", "eyJ", inside="-.", check=_jwt_claims),
    # A URL with a password (files; the env rule credential-in-url covers values).
    _fmt("credential-url",
         r"://(?P<u>[^\s/:@\"'<>()\[\]{}\\]*):(?P<s>[^\s/@\"'<>()\[\]{}\\]{3,255})@"
         r"[A-Za-z0-9_.-]+",
         "://", env=False, password=True, word_start=False),
    # An anaconda token in a channel URL: https://conda.anaconda.org/t/<token>/channel
    _fmt("credential-url", r"anaconda\.(?:org|cloud|com)/t/(?P<s>[A-Za-z0-9-]{20,255})/",
         "anaconda.org/t/", "anaconda.cloud/t/", "anaconda.com/t/"),
)

_PM_KEY = (r"(?:_authToken|npmAuthToken|npmAuthIdent|_auth|_password|"
           r"//[^\s=\"']{1,255}:_authToken)")

# Package-manager settings: credentials in these keys as well as in URLs and tokens.
# ``key = value`` or ``key: value`` (.npmrc, .yarnrc.yml) anywhere; Yarn v1's .yarnrc
# writes ``key value``, either quoted, and only at the start of a line is that read so.
PACKAGE_MANAGER_FORMATS: tuple[TokenFormat, ...] = (
    _fmt("package-manager-credentials",
         r"(?:^|[\s:])" + _PM_KEY + r"\s*[:=]\s*[\"']?(?P<s>[^\s\"']{6,255})",
         "_auth", "npmAuth", "_password", ignore_case=True, word_start=False),
    _fmt("package-manager-credentials",
         r"(?:^|\n)[ \t]*[\"']?" + _PM_KEY + r"[\"']?[ \t]+[\"']?(?P<s>[^\s\"']{6,255})",
         "_auth", "npmAuth", "_password", ignore_case=True, word_start=False),
)


def is_binary(head: bytes) -> bool:
    return b"\0" in head[:BINARY_PROBE]


def prepare(head: bytes) -> bytes:
    """Text as a token regex reads it: JSON and string-literal escapes (``\\n``) become
    spaces, so a token right after one (a notebook output line) still starts a word."""
    if b"\\" not in head:
        return head
    return head.replace(b"\\n", b"  ").replace(b"\\r", b"  ").replace(b"\\t", b"  ")


def _real(fmt: TokenFormat, match: re.Match[bytes]) -> bool:
    groups = fmt.compiled.groupindex
    for name in ("s", "s2"):
        if name in groups:
            value = match.group(name)
            if value is not None and looks_like_placeholder(
                    value.decode("ascii", "replace"), fmt.password):
                return False
    user = match.group("u") if "u" in groups else None
    password = match.group("s") if "s" in groups else None
    if user is not None and placeholder_user(
            user.decode("ascii", "replace"),
            None if password is None else password.decode("ascii", "replace")):
        return False
    return fmt.check is None or fmt.check(match.group(0))


def _matches(fmt: TokenFormat, text: bytes, begin: int = 0) -> bool:
    """A real token of this format in the text, starting at ``begin`` or later (the
    bytes before it are context: whether a token there starts a word).

    Word-start formats are tried only where one of their start literals begins a
    word, so a crafted file ("eyJeyJeyJ...") costs one bounded attempt per word,
    not one per position: scanning stays linear in the bytes read.
    """
    if fmt.whole or fmt.once:
        match = fmt.compiled.fullmatch(text.strip()) if fmt.whole else fmt.compiled.match(text)
        return match is not None and _real(fmt, match)
    if not fmt.word_start:
        return any(_real(fmt, match) for match in fmt.compiled.finditer(text))
    inside = _WORD | frozenset(fmt.inside.encode())
    for start in fmt.start_bytes:
        pos = text.find(start, begin)
        while pos != -1:
            if pos == 0 or text[pos - 1] not in inside:
                match = fmt.compiled.match(text, pos)
                if match is not None and _real(fmt, match):
                    return True
            pos = text.find(start, pos + 1)
    return False


def _find(data: bytes, formats: Sequence[TokenFormat], env: bool) -> TokenFormat | None:
    lowered = b""
    text: bytes | None = None
    for fmt in formats:
        if not (fmt.env if env else fmt.files):
            continue
        if fmt.ignore_case and not lowered:
            lowered = data.lower()
        if not fmt.has_marker(data, lowered):
            continue
        text = prepare(data) if text is None else text
        if _matches(fmt, text):
            return fmt
    return None


class MarkerIndex:
    """Which of the formats' markers a text holds, all found in one pass.

    One substring search per marker (49 of them) reads each byte 49 times (about
    30 MB/s); an Aho-Corasick automaton (ahocorasick_rs, in Rust) reads it once.  It
    looks for every marker lower-cased in the lower-cased text: a prefilter may say
    yes too often (the format's own pattern decides on the text as it is), never no.
    The markers are short, so its overlapping search is linear in the text.
    """

    def __init__(self, formats: Iterable[TokenFormat]):
        self._markers = sorted({m.lower() for f in formats for m in f.marker_bytes})
        from ahocorasick_rs import BytesAhoCorasick

        self._automaton = BytesAhoCorasick(self._markers) if self._markers else None

    def window(self, data: bytes, first: bool) -> Window:
        """``data`` as a window of a file: the first, or a later one whose first byte is
        context only (a token starting there was judged in the window before)."""
        return Window(data, self.present(data), first)

    def present(self, data: bytes) -> frozenset[bytes]:
        """The markers (lower-cased) in ``data``, whatever their case there."""
        if self._automaton is None:
            return frozenset()
        markers = self._markers
        return frozenset(markers[i] for i, _, _ in
                         self._automaton.find_matches_as_indexes(data.lower(), overlapping=True))


class Window:
    """One window of a text file, its markers found once for every format asked about."""

    def __init__(self, data: bytes, markers: frozenset[bytes], first: bool):
        self._data = data
        self._first = first
        self._markers = markers
        self._text: bytes | None = None

    def find(self, formats: Sequence[TokenFormat]) -> TokenFormat | None:
        """The first format (in order) with a real token in this window."""
        for fmt in formats:
            if not fmt.files or (fmt.once and not self._first):
                continue
            if not any(m.lower() in self._markers for m in fmt.marker_bytes):
                continue
            if self._text is None:
                self._text = prepare(self._data)
            if _matches(fmt, self._text, 0 if self._first else 1):
                return fmt
        return None


def find_in_bytes(head: bytes, formats: Sequence[TokenFormat] = TOKEN_FORMATS
                  ) -> TokenFormat | None:
    """The first format (in order) with a real token in these first bytes of a file."""
    if is_binary(head):
        return None
    return _find(head, formats, env=False)


def find_in_text(value: str, formats: Sequence[TokenFormat] = TOKEN_FORMATS
                 ) -> TokenFormat | None:
    """The first format with a real token in an environment variable's value (its first
    MiB: a value longer than that is read no further)."""
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape, not from a file name
        data = value.encode("utf-8", "surrogatepass")
    return _find(data[:TEXT_HEAD], formats, env=True)


def holds_token(value: str) -> bool:
    """Whether an environment variable's value holds a real token (see find_in_text)."""
    return find_in_text(value) is not None


RULE_DESCRIPTIONS: tuple[tuple[str, str], ...] = (
    ("service-account-key", "a Google service-account key file (\"type\": \"service_account\" "
                            "with a private key)"),
    ("private-key-in-text", "a PEM, PGP or PuTTY private key anywhere in a text file "
                            "(after a BOM or a line of prose too)"),
    ("github-token", "a GitHub token (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_)"),
    ("gitlab-token", "a GitLab token (glpat-, gldt-, glrt-, glptt-)"),
    ("aws-credentials", "an AWS secret access key assigned in a file "
                        "(aws_secret_access_key = ...)"),
    ("aws-access-key", "an AWS access key id (AKIA..., ASIA...) with its secret key"),
    ("slack-token", "a Slack token (xoxb-, xoxp-, xapp-, ...)"),
    ("slack-webhook", "a Slack webhook URL (hooks.slack.com/services/...)"),
    ("huggingface-token", "a Hugging Face token (hf_...)"),
    ("google-api-key", "a Google API key (AIza...)"),
    ("oauth-client-secret", "an OAuth client secret (\"client_secret\": ..., GOCSPX-...)"),
    ("stripe-key", "a Stripe live secret or restricted key (sk_live_, rk_live_)"),
    ("openai-api-key", "an OpenAI API key (sk-...T3BlbkFJ...)"),
    ("anthropic-api-key", "an Anthropic API key (sk-ant-...)"),
    ("npm-token", "an npm access token (npm_...)"),
    ("pypi-token", "a PyPI API token (pypi-AgEIcHlwaS5vcmc...)"),
    ("jwt", "a signed JSON Web Token (eyJ....eyJ....sig)"),
    ("credential-url", "a URL with a password (scheme://user:password@host) or an "
                       "anaconda.org token URL (/t/<token>/)"),
    ("package-manager-credentials", "a package-manager setting holding credentials "
                                    "(a URL with a password, a token, _authToken, ...)"),
)
