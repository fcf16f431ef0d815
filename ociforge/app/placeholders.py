"""Placeholders: what documentation and templates put where a secret goes.

A secret judged a placeholder is shipped, so a wrong "placeholder" leaks a secret,
while a wrong "secret" only leaves out a harmless file or drops a variable the
report names.  The judgement therefore never rests on a few letters that random
text holds by chance: a 40-character random token contains "xxXx" or "your",
ignoring case, about once in 20,000 draws, a 14-character password "pwd" or
"xxx" once in a few thousand.  A placeholder word counts only as a word, written
in one case (``your``, ``YOUR``, ``Your``; never ``yOuR``), and only where random
text practically never writes it: standing alone between the ends of the secret
and characters that are no letter or digit (``YOUR_TOKEN_HERE``,
``your-api-key``), or, for words of six letters and more, anywhere
(``AKIAI44QH8DHBEXAMPLE``).  Template syntax (``<token>``, ``${TOKEN}``) marks any
secret.  A password someone chose is a placeholder only when
all of it is a word documentation uses (``tiger``, ``password123``): people put
dictionary words into real passwords (``Pass2024!``).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

# Words that mark a placeholder anywhere, glued to other letters too: six letters or
# more in one case, which random base62 text holds about once in 10^10 characters.
_LONG_WORDS = ("example", "sample", "placeholder", "redacted", "changeme", "replace",
               "insert")
# Words that mark a placeholder only standing alone: between an end of the secret
# and a character that is neither letter nor digit (_ALONE).
_SHORT_WORDS = ("your", "dummy")
# Runs of characters documentation writes in place of a token.
_RUNS = ("0000000000", "1234567890")
# Tokens printed in vendors' documentation (jwt.io's example signature, AWS's example keys).
_DOCUMENTED_EXAMPLES = ("SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c", "AKIAIOSFODNN7",
                        "wJalrXUtnFEMI/K7MDENG")


def _one_case(word: str) -> str:
    return "|".join(re.escape(form) for form in dict.fromkeys(
        (word.lower(), word.upper(), word.capitalize())))


_ALONE = r"(?<![A-Za-z0-9])(?:{})(?![A-Za-z0-9])"
# Where a token (random by nature) reads as a placeholder.
_TOKEN_PLACEHOLDER_RE = re.compile("|".join((
    *(_one_case(word) for word in _LONG_WORDS),
    *(re.escape(run) for run in _RUNS),
    *(re.escape(example) for example in _DOCUMENTED_EXAMPLES),
    _ALONE.format("|".join(_one_case(word) for word in _SHORT_WORDS)),
    _ALONE.format("x{3,}|X{3,}"),            # xoxb-xxxx-xxxx
    r"x{6,}|X{6,}|[xX]{8,}",                 # ghp_xxxxxxxx..., hf_XXXXxxxx...
    # a variable anywhere ($NPM_USER:$NPM_PASS): no token alphabet holds a '$'
    r"\$[A-Za-z_]",
)))
# Template syntax, in any secret: <token>, {token}, ${TOKEN}, $(cmd), %s, %(name)s, ...,
# …, *** (a masked value), and a whole $TOKEN or %TOKEN% (a password may hold a '$').
_TEMPLATE_RE = re.compile(r"[<>{}…]|\$[{(]|%[s(]|\.\.\.|\*\*\*"
                          r"|^(?:\$[A-Za-z_][A-Za-z0-9_]*|%[A-Za-z_][A-Za-z0-9_]*%)$")

# A password that, all of it, is a word documentation uses: [prefix...] base [here].
_PASSWORD_PREFIXES = ("your", "my", "the", "some", "db", "database", "app", "user", "secret",
                      "super", "test", "example", "sample", "dummy", "fake", "default", "new",
                      "insert", "enter", "put", "replace")
_PASSWORD_BASES = ("pass", "passwd", "password", "passphrase", "pwd", "pw", "secret", "token",
                   "apikey", "key")
# ... or one of these (scott:tiger is SQLAlchemy's, changeit Java's keystore default)
_PASSWORD_WORDS = ("tiger", "changeme", "changeit", "test", "testing", "demo", "example",
                   "sample", "dummy", "placeholder", "redacted", "foo", "foobar", "x{3,}")
_PASSWORD_RE = re.compile(
    r"(?:{})*(?:{})(?:here|goeshere)?|{}".format(
        "|".join(_PASSWORD_PREFIXES), "|".join(_PASSWORD_BASES), "|".join(_PASSWORD_WORDS)))
# What may stand around that word: punctuation, and digits counted up from 0 or 1
# ("password123!"; a year or other digits make a real password: "Pass2024!").
_PUNCTUATION_RE = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")
_LEADING_DIGITS_RE = re.compile(r"^[0-9]+")
_TRAILING_DIGITS_RE = re.compile(r"[0-9]+$")
_SEPARATORS_RE = re.compile(r"[-_. ]")
# A CVS root's method and user read as a URL's user info (cvs://:pserver:anoncvs@host):
# no password there.
_CVS_ROOT_RE = re.compile(r"(?:pserver|gserver|kserver|ext|server|fork|sspi|extssh):[^:]*")

# A user name documentation uses (https://user:he%2F%2Fo@pypi.company.com).
_REAL_PASSWORD = 8     # characters: a password this long is real, whoever the user is
_PLACEHOLDER_USERS = frozenset({"user", "username", "name", "login", "foo", "me", "anon",
                                "anonymous", "someone", "somebody"})


def looks_like_placeholder(secret: str, password: bool = False) -> bool:
    """``secret`` is what documentation writes where a secret goes, not a secret.

    ``password``: the secret is a password someone typed (in a URL's user info),
    a placeholder only when all of it is a documentation word."""
    if _TEMPLATE_RE.search(secret) is not None:
        return True
    if password:
        return len(secret) < 4 or _placeholder_password(secret)
    if _TOKEN_PLACEHOLDER_RE.search(secret) is not None:
        return True
    core = secret.split("_", 1)[-1] if "_" in secret[:12] else secret
    return len(set(core)) < 6  # a real token is random: many distinct characters


def _placeholder_password(secret: str) -> bool:
    if _CVS_ROOT_RE.fullmatch(secret) is not None:
        return True
    core = _strip_around(secret)
    return bool(core) and _PASSWORD_RE.fullmatch(
        _SEPARATORS_RE.sub("", core.lower())) is not None


def _strip_around(secret: str) -> str:
    """The secret without punctuation and counting digits ("123") at either end."""
    core = _PUNCTUATION_RE.sub("", secret)
    for digits in (_LEADING_DIGITS_RE, _TRAILING_DIGITS_RE):
        core = digits.sub(lambda run: "" if _counting(run.group()) else run.group(), core)
    return _PUNCTUATION_RE.sub("", core)


def _counting(digits: str) -> bool:
    return len(digits) >= 3 and ("0123456789".startswith(digits)
                                 or "1234567890".startswith(digits))


def placeholder_user(user: str, password: str | None = None) -> bool:
    """A URL's user name that documentation uses (or one written as a template), with a
    password too short to be anyone's real one (pip's ``user:he%2F%2Fo``): a
    documentation user name with a password of ``_REAL_PASSWORD`` characters or more is
    somebody's credential."""
    if _TEMPLATE_RE.search(user) is not None:
        return True
    if user.lower() not in _PLACEHOLDER_USERS:
        return False
    return password is None or len(unquote(password)) < _REAL_PASSWORD
