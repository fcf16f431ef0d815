"""What stays out of an exported image: license material and secrets.

The rules are data with names, so the report can say which rule dropped a
variable or left out a file.  Bring-your-own-license: license keys and
license-server settings never leave with the application; the recipient
supplies their own.  Open-source license *texts* (LICENSE, COPYING, NOTICE,
``licenses/`` folders) are not license material and always stay.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import stat
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import cast

from . import tokens
from .dburl import has_credential_url
from .spec import ExtraPatterns


@dataclass(frozen=True)
class EnvRule:
    """Drops a variable whose name (upper-cased) or value matches the rule's regex."""

    name: str
    kind: str                   # "license" or "secret"
    description: str
    name_regex: str | None = None
    value_regex: str | None = None
    value_test: Callable[[str], bool] | None = None   # a value check too costly as a regex

    def matches(self, var: str, value: str) -> bool:
        if self.name_regex and re.search(self.name_regex, var.upper()):
            return True
        if self.value_test is not None and self.value_test(value):
            return True
        return bool(self.value_regex and re.search(self.value_regex, value))


@dataclass(frozen=True)
class FileRule:
    """Leaves out a file whose path matches one of ``globs``.

    A glob without '/' is matched (case-insensitively) against the file name;
    one with '/' against the whole path relative to the layer root, where a
    leading ``**/`` also matches at the top.  ``scope`` is "all" (every layer)
    or "files" (only the project-files layer).
    """

    name: str
    kind: str
    description: str
    globs: tuple[str, ...]
    scope: str = "all"
    keep: tuple[str, ...] = ()  # file names that are never matched (e.g. public keys)
    # the globs as one regex per kind (name, path), built once: matched for every entry
    _names: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _paths: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _keep: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [fnmatch.translate(g.lower()) for g in self.globs if "/" not in g]
        # "**/x" matches x at the top or after any '/'; other path globs the whole path
        # (with or without a leading '/')
        paths = [("(?s:.*/)?" + fnmatch.translate(g[3:].lower())) if g.startswith("**/")
                 else "/?" + fnmatch.translate(g.lower().lstrip("/")) if g.startswith("/")
                 else fnmatch.translate(g.lower()) for g in self.globs if "/" in g]
        keep = [fnmatch.translate(k.lower()) for k in self.keep]
        for attr, parts in (("_names", names), ("_paths", paths), ("_keep", keep)):
            object.__setattr__(self, attr, re.compile("|".join(parts)) if parts else None)

    def matches(self, rel_path: str) -> bool:
        path = rel_path.strip("/")
        base = path.rpartition("/")[2].lower()
        if self._keep is not None and self._keep.match(base):
            return False
        if self._names is not None and self._names.match(base):
            return True
        return self._paths is not None and self._paths.match(path.lower()) is not None


# A connection string with a password: libpq's keyword form (a password= next to another
# libpq keyword), ADO.NET/ODBC/JDBC's ;-separated form, Azure storage and service-bus keys.
CREDENTIAL_DSN_REGEX = (
    r"(?is)^(?=.*\b(?:host|hostaddr|dbname|user|port|service|sslmode)\s*=)"
    r"(?=(?:.*\s)?password\s*=\s*(?:'[^']|[^\s']))"
    r"|(?:^|;)\s*(?:password|pwd|accountkey|sharedaccesskey|sharedaccesssignature)"
    r"\s*=\s*[^;\s]")

# A Sentry DSN: the project's key as the URL's user (an older form adds a secret key).
SENTRY_DSN_REGEX = r"^https?://[0-9a-f]{32}(?::[0-9a-f]{32})?@[^/\s]+/(?:[^/\s]+/)*[0-9]+/?$"

# Names are matched upper-cased.  Order matters: the first matching rule is reported.
LICENSE_ENV_RULES: tuple[EnvRule, ...] = (
    EnvRule("license-manager-variable", "license",
            "a known license-manager setting (FlexLM, RLM, Gurobi, MOSEK, ...)",
            name_regex=r"^(LM_LICENSE_FILE|MLM_LICENSE_FILE|RLM_LICENSE|RLM_LICENSE_PASSWORD|"
                       r"GRB_LICENSE_FILE|GRB_WLSACCESSID|GRB_WLSSECRET|GRB_LICENSEID|"
                       r"MOSEKLM_LICENSE_FILE|ARMLMD_LICENSE_FILE|LSTC_LICENSE_SERVER|"
                       r"ANSYSLMD_LICENSE_FILE|ANSYSLI_SERVERS|CPLEX_STUDIO_KEY|XPRESS)$"),
    EnvRule("license-name", "license", "the name contains LICENSE or LICENCE",
            name_regex=r"LICEN[CS]E"),
    EnvRule("license-suffix", "license", "the name ends in _LIC",
            name_regex=r"_LIC$"),
)

SECRET_ENV_RULES: tuple[EnvRule, ...] = (
    EnvRule("secret-name", "secret",
            "the name looks like a credential (TOKEN, SECRET, PASSWORD, API_KEY, ...)",
            name_regex=r"(^|_)(TOKENS?|PASS|PASSPHRASE|SESSION_KEY|CLIENT_KEY|SIGNING_KEY|"
                       r"ENCRYPTION_KEY)(_|$)|TOKEN$|_PWD$|_KEYS?$|_AUTH$|AUTH_CONFIG|SECRET|"
                       r"PASSWORD|PASSWD|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY"),
    # in the user info (the user may be empty, as in redis://:pw@h; the password may
    # hold '/', ':' or spaces) or in a password-like query parameter (?password=...)
    EnvRule("credential-in-url", "secret", "the value is a URL carrying a password",
            value_test=has_credential_url),
    EnvRule("credential-in-dsn", "secret",
            "the value is a connection string with a password (host=... password=..., "
            "...;Password=...;, AccountKey=, SharedAccessKey=)", value_regex=CREDENTIAL_DSN_REGEX),
    EnvRule("sentry-dsn", "secret", "the value is a Sentry DSN (https://<key>@host/<project>)",
            value_regex=SENTRY_DSN_REGEX),
    EnvRule("secret-token-value", "secret",
            "the value holds a well-known token (GitHub, GitLab, AWS, Slack, Hugging Face, "
            "Google, Stripe, a JWT, a private key, ...)", value_test=tokens.holds_token),
)

LICENSE_FILE_RULES: tuple[FileRule, ...] = (
    FileRule("license-key-file", "license",
             "a license key or license-server file (*.lic, license.dat, ...)",
             ("*.lic", "license.dat", "licence.dat", "license.key", "licence.key",
              "*.lic.bak", "mosek.lic", "gurobi.lic", "rlm*.lic", "*.licf")),
)

SECRET_FILE_RULES: tuple[FileRule, ...] = (
    FileRule("ssh-key", "secret", "an SSH private key or a file in a .ssh folder",
             ("id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk", "id_ed25519_sk",
              "**/.ssh/*"), keep=("*.pub",)),
    FileRule("credential-file", "secret", "a file that stores credentials",
             (".netrc", "_netrc", ".git-credentials", ".pypirc", ".npmrc", ".pgpass",
              "**/.aws/credentials", "**/.docker/config.json", "**/.kube/config",
              "**/.config/gcloud/*", "*.keystore", "*.jks", "*.p12", "*.pfx")),
    FileRule("dotenv-file", "secret", "a .env file (only the env_file is read, into the config)",
             (".env", ".env.*", "*.env")),
    # A checkout's .git folder holds remote URLs with tokens (.git/config) and the whole
    # history (secrets removed from the work tree included); the application needs neither.
    FileRule("git-folder", "secret", "a .git folder (remote URLs with tokens, history)",
             (".git",), scope="files"),
    # What people type at a prompt: passwords, tokens, connection strings.
    FileRule("shell-history", "secret", "a shell or REPL history file",
             (".bash_history", ".zsh_history", ".zhistory", ".sh_history", ".ash_history",
              ".histfile", ".python_history", ".Rhistory", ".psql_history", ".sqlite_history",
              ".mysql_history", ".node_repl_history", ".rediscli_history", ".dbshell",
              ".irb_history", ".duckdb_history", "mongosh_repl_history", ".lesshst",
              "**/.ipython/profile_*/history.sqlite", "**/.julia/logs/repl_history.jl",
              "**/.local/share/fish/fish_history")),
    FileRule("r-environ", "secret", "R's per-user environment file (.Renviron: tokens, keys)",
             (".Renviron",)),
    FileRule("streamlit-secrets", "secret", "Streamlit's secrets file (.streamlit/secrets.toml)",
             ("**/.streamlit/secrets.toml",)),
    FileRule("jupyter-checkpoints", "secret",
             "Jupyter's .ipynb_checkpoints folder (stale copies of notebooks, outputs included)",
             (".ipynb_checkpoints",)),
)

# Where installed software lives.  Token rules do not read files there: packages' tests
# and docs are full of example tokens, and leaving one of their files out breaks them.
# Credential files by name and private keys at the start of a file are caught there too.
PACKAGE_TREES = frozenset({"site-packages", "dist-packages", "node_modules", "site-library",
                           "bower_components", "__pycache__"})
# (folder, its parent) pairs: R/library, renv/library, .julia/packages, <conda root>/pkgs
PACKAGE_TREE_PAIRS = frozenset({
    ("library", "R"), ("library", "renv"), ("packages", ".julia"), ("pkgs", "conda"),
    ("pkgs", ".conda"), ("pkgs", "miniconda3"), ("pkgs", "anaconda3"), ("pkgs", "miniforge3"),
    ("pkgs", "mambaforge")})
# The operating system's own trees in a base image (not /usr/local): read for tokens only
# in layers ociforge builds from the application's folders.
OS_TREES = ("usr/", "lib/", "lib32/", "lib64/", "libx32/", "bin/", "sbin/", "boot/",
            "var/lib/dpkg/", "var/lib/apt/", "var/lib/rpm/", "var/cache/", "etc/ssl/",
            "etc/ca-certificates/", "etc/pki/")


def in_package_tree(rel_path: str) -> bool:
    """The path is inside installed third-party software (site-packages, node_modules, ...)."""
    parts = rel_path.strip("/").split("/")[:-1]
    for i, part in enumerate(parts):
        if part in PACKAGE_TREES or (i and (part, parts[i - 1]) in PACKAGE_TREE_PAIRS):
            return True
    return False


def in_os_tree(rel_path: str) -> bool:
    path = rel_path.strip("/")
    return path.startswith(OS_TREES) and not path.startswith("usr/local/")


@dataclass(frozen=True)
class ContentRule:
    """Leaves out a file named like ``globs`` whose first ``head`` bytes contain ``marker``,
    or (with ``formats``) one holding a real token of one of those formats (a text file is
    read for them in windows: ``Policy.judge_content``).

    For names that are ambiguous (a ``.pem`` may be a certificate or a private
    key), only the content decides; symlinks are never opened.
    """

    name: str
    kind: str
    description: str
    globs: tuple[str, ...]
    marker: bytes = b""
    head: int = 64 << 10        # bytes a marker rule reads (token rules: judge_content)
    at_start: bool = False      # the first line (after blanks) is a PEM "-----BEGIN ...marker"
    formats: tuple[tokens.TokenFormat, ...] = ()
    in_packages: bool = True    # False: files inside installed software are not read
    # the globs as one regex (None: "*", every name), built once: asked for every entry
    _names: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = None if "*" in self.globs else \
            re.compile("|".join(fnmatch.translate(g) for g in self.globs))
        object.__setattr__(self, "_names", names)

    def name_wanted(self, base: str) -> bool:
        """The file name (lower-cased) is one of the globs'."""
        return self._names is None or self._names.match(base) is not None

    def wants(self, rel_path: str) -> bool:
        """True when the name is one whose content must be looked at."""
        if not self.name_wanted(PurePosixPath(rel_path).name.lower()):
            return False
        return self.in_packages or not in_package_tree(rel_path)

    def matches_head(self, head: bytes) -> bool:
        """Decide on the file's first bytes (at least ``head`` of them, or all; a token
        rule on the bytes given)."""
        if self.formats:
            return tokens.find_in_bytes(head, self.formats) is not None
        if self.at_start:
            first_line = head[:self.head].lstrip().split(b"\n", 1)[0]
            return first_line.startswith(b"-----BEGIN ") and self.marker in first_line
        return self.marker in head[:self.head]


# A content judgement as a coroutine (Policy.judging): yields a byte count, is sent bytes.
Judging = Generator[int, bytes, ContentRule | None]

CONTENT_RULES: tuple[ContentRule, ...] = (
    ContentRule("private-key-file", "secret", "a PEM file holding a private key",
                ("*.pem", "*.key", "*.crt", "*.cer", "*.priv", "*.private"),
                b"PRIVATE KEY-----"),
    # Whatever the name (deploy_key, key.txt, ...): a file that *starts* as a PEM or
    # OpenSSH private key.  Only the first bytes of each file are read.
    ContentRule("private-key-content", "secret",
                "a file that starts with a PEM or OpenSSH private key, whatever its name",
                ("*",), b"PRIVATE KEY-----", head=256, at_start=True),
    # pip.conf, .condarc, ... are judged by content: a clean one ships.
    ContentRule("package-manager-credentials", "secret",
                dict(tokens.RULE_DESCRIPTIONS)["package-manager-credentials"],
                ("pip.conf", "pip.ini", ".condarc", "condarc", ".yarnrc", ".yarnrc.yml",
                 ".rprofile", "rprofile.site", ".gemrc", "bunfig.toml", ".bunfig.toml"),
                formats=tokens.PACKAGE_MANAGER_FORMATS + tokens.TOKEN_FORMATS),
    *(ContentRule(rule, "secret", text, ("*",), in_packages=False,
                  formats=tuple(f for f in tokens.TOKEN_FORMATS if f.rule == rule))
      for rule, text in tokens.RULE_DESCRIPTIONS
      if any(f.rule == rule and f.files for f in tokens.TOKEN_FORMATS)),
)


@dataclass(frozen=True)
class EnvDecision:
    name: str
    rule: str
    kind: str
    origin: str             # base, env_file or config


@dataclass(frozen=True)
class Policy:
    """The rule set of one export: defaults plus the app's additions and allowances."""

    env_rules: tuple[EnvRule, ...]
    file_rules: tuple[FileRule, ...]
    allow_env: frozenset[str] = field(default_factory=frozenset)
    content_rules: tuple[ContentRule, ...] = CONTENT_RULES
    allow_files: FileRule | None = None     # [secrets] allow_files: kept whatever secret rule
    # the markers of every token format of the content rules, found in one pass a window
    _markers: tokens.MarkerIndex = field(init=False, repr=False, compare=False)
    # asked for every entry of every layer: what can rule a name out at once, built once
    _file_screens: dict[bool, tuple[re.Pattern[str] | None, re.Pattern[str] | None]] = field(
        init=False, repr=False, compare=False)
    _content_screens: dict[tuple[bool, bool], _ContentScreen] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_markers", tokens.MarkerIndex(
            f for rule in self.content_rules for f in rule.formats))
        screens = {}
        for files_layer in (False, True):
            rules = [rule for rule in self.file_rules if rule.scope != "files" or files_layer]
            screens[files_layer] = (_union(rule._names for rule in rules),
                                    _union(rule._paths for rule in rules))
        object.__setattr__(self, "_file_screens", screens)
        content = {}
        for skip_packages in (False, True):
            for skip_tokens in (False, True):
                content[(skip_packages, skip_tokens)] = _ContentScreen.of(tuple(
                    rule for rule in self.content_rules
                    if (rule.in_packages or not skip_packages)
                    and (not skip_tokens or not rule.formats or rule.in_packages)))
        object.__setattr__(self, "_content_screens", content)

    @classmethod
    def for_app(cls, licenses: ExtraPatterns, secrets: ExtraPatterns,
                allow_env: Iterable[str] = ()) -> Policy:
        env_rules = [*LICENSE_ENV_RULES]
        if licenses.env:
            env_rules.append(EnvRule("license-env-config", "license",
                                     "matches [licenses] env in ociforge.toml",
                                     name_regex=_globs_regex(licenses.env)))
        env_rules.extend(SECRET_ENV_RULES)
        if secrets.env:
            env_rules.append(EnvRule("secret-env-config", "secret",
                                     "matches [secrets] env in ociforge.toml",
                                     name_regex=_globs_regex(secrets.env)))
        file_rules = [*LICENSE_FILE_RULES]
        if licenses.files:
            file_rules.append(FileRule("license-file-config", "license",
                                       "matches [licenses] files in ociforge.toml",
                                       licenses.files))
        file_rules.extend(SECRET_FILE_RULES)
        if secrets.files:
            file_rules.append(FileRule("secret-file-config", "secret",
                                       "matches [secrets] files in ociforge.toml", secrets.files))
        allow_files = (FileRule("secret-allow-files", "secret",
                                "matches [secrets] allow_files in ociforge.toml",
                                secrets.allow_files) if secrets.allow_files else None)
        return cls(tuple(env_rules), tuple(file_rules), frozenset(allow_env),
                   allow_files=allow_files)

    def _allowed(self, rule: FileRule | ContentRule, rel_path: str) -> bool:
        """[secrets] allow_files keeps this file from this (secret) rule."""
        return (self.allow_files is not None and rule.kind == "secret"
                and self.allow_files.matches(rel_path))

    def env_rule(self, name: str, value: str) -> EnvRule | None:
        """The rule that drops this variable, or None to keep it."""
        if name in self.allow_env:
            return None
        return self.rule_for(name, value)

    def rule_for(self, name: str, value: str) -> EnvRule | None:
        """The rule that would drop this variable without any --allow-env."""
        for rule in self.env_rules:
            if rule.matches(name, value):
                return rule
        return None

    def filter_env(self, env: Sequence[tuple[str, str, str]]
                   ) -> tuple[dict[str, str], list[EnvDecision]]:
        """Split (name, value, origin) triples into kept variables and dropped names."""
        kept: dict[str, str] = {}
        dropped: dict[str, EnvDecision] = {}
        for name, value, origin in env:
            rule = self.env_rule(name, value)
            if rule is None:
                kept[name] = value
                dropped.pop(name, None)
            else:
                kept.pop(name, None)
                dropped[name] = EnvDecision(name, rule.name, rule.kind, origin)
        return kept, sorted(dropped.values(), key=lambda d: d.name)

    def file_rule(self, rel_path: str, files_layer: bool) -> FileRule | None:
        """The rule that leaves this file out, or None to keep it."""
        names, paths = self._file_screens[files_layer]
        path = rel_path.strip("/")
        if (names is None or names.match(path.rpartition("/")[2].lower()) is None) \
                and (paths is None or paths.match(path.lower()) is None):
            return None                 # no rule's glob matches the name or the path
        for rule in self.file_rules:
            if rule.scope == "files" and not files_layer:
                continue
            if rule.matches(rel_path) and not self._allowed(rule, rel_path):
                return rule
        return None

    def host_file_rule(self, rel_path: str, host_path: Path, files_layer: bool,
                       read_os_trees: bool = True, warn: Callable[[str], None] | None = None
                       ) -> FileRule | ContentRule | None:
        """Like file_rule, then the content rules (``judge_content``), which read the file
        once, never through a symlink."""
        rule = self.file_rule(rel_path, files_layer)
        if rule is not None:
            return rule
        wanting = self.content_rules_for(rel_path, read_os_trees=read_os_trees)
        if not wanting:
            return None
        try:
            fd = os.open(host_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return self.judge_content(rel_path, wanting, functools.partial(os.read, fd), warn)
        except OSError:
            return None
        finally:
            os.close(fd)

    def judge_content(self, rel_path: str, wanting: tuple[ContentRule, ...],
                      read: Callable[[int], bytes], warn: Callable[[str], None] | None
                      ) -> ContentRule | None:
        """The first rule of ``wanting`` (in order) the file's content matches, reading it
        through ``read(n)`` (up to n more bytes, b"" at its end); see ``judging``."""
        judging = self.judging(rel_path, wanting, warn)
        try:
            want = next(judging)
            while True:
                want = judging.send(read(want))
        except StopIteration as done:
            return cast("ContentRule | None", done.value)

    def judging(self, rel_path: str, wanting: tuple[ContentRule, ...],
                warn: Callable[[str], None] | None) -> Judging:
        """The one judgement of a file's content (an app's file, a base layer's entry), as
        a coroutine for whoever has the bytes: it yields how many more it wants (at most
        1 MiB), is sent up to that many (b"" at the file's end) and returns the first rule
        of ``wanting`` (in order) the content matches, or None.

        Every rule decides on the first window, the token rules on each later one: a text
        file is read in windows of ``tokens.TEXT_WINDOW`` overlapping by
        ``tokens.TOKEN_SPAN`` up to ``tokens.TEXT_SCAN_CAP``; a longer one is ``warn``-ed
        about (the rest was not read), never passed in silence.  Token rules skip binary
        files (a NUL in the first ``tokens.BINARY_PROBE`` bytes), so a binary file's first
        8 KiB are all that is read (a folder of Parquet files is not read a MiB at a time);
        without token rules, only the rules' heads.  It holds one window at a time.
        """
        token_rules = []
        head = 0                            # what every rule reads first
        for rule in wanting:
            if rule.formats:
                token_rules.append(rule)
                head = max(head, tokens.BINARY_PROBE)
            else:
                head = max(head, rule.head)
        first = yield head                  # most often all of it, from a tar entry's read
        if 0 < len(first) < head:
            first += yield from _take(head - len(first))
        if not token_rules or tokens.is_binary(first):
            for rule in wanting:
                if rule.matches_head(first):
                    return rule
            return None
        data = first                        # a short file's whole text, or a window's start
        if len(first) == head:
            data += yield from _take(tokens.TEXT_WINDOW - head)
        window = self._markers.window(data, first=True)
        found = next((r for r in wanting if (window.find(r.formats) is not None if r.formats
                                             else r.matches_head(data))), None)
        end = len(data)                     # the file's bytes read so far
        more_to_read = end == tokens.TEXT_WINDOW
        step = tokens.TEXT_WINDOW - tokens.TOKEN_SPAN
        while found is None and more_to_read:
            if end >= tokens.TEXT_SCAN_CAP:
                if warn is not None and (yield from _take(1)):
                    warn(f"/{rel_path.lstrip('/')} was read for tokens up to "
                         f"{tokens.TEXT_SCAN_CAP >> 20} MiB only: the rest of it was not "
                         "scanned (leave it out, or split it, if it may hold secrets)")
                return None
            want = min(step, tokens.TEXT_SCAN_CAP - end)
            more = yield from _take(want)
            if not more:
                return None
            more_to_read = len(more) == want
            # one byte before the overlap: the context of a token that starts the window
            data = data[-(tokens.TOKEN_SPAN + 1):] + more
            end += len(more)
            window = self._markers.window(data, first=False)
            found = next((r for r in token_rules if window.find(r.formats) is not None), None)
        return found

    def content_rules_for(self, rel_path: str, read_os_trees: bool = False
                          ) -> tuple[ContentRule, ...]:
        """The content rules that must read this file to decide (``judge_content``).

        Token rules skip installed software, and in a base image the operating system's
        own trees (``read_os_trees`` False), which belong to its packages.
        """
        # where installed software lives, the rules that do not read there are skipped
        # (decided once per path, not once per rule)
        skip_packages = in_package_tree(rel_path)
        skip_tokens = not read_os_trees and in_os_tree(rel_path)
        screen = self._content_screens[(skip_packages, skip_tokens)]
        base = rel_path.rpartition("/")[2].lower()
        if screen.named is None or screen.named.match(base) is None:
            wanting = list(screen.every_name)   # no rule that names files wants this one
        else:
            wanting = [rule for rule in screen.rules if rule.name_wanted(base)]
        if self.allow_files is not None:
            wanting = [rule for rule in wanting if not self._allowed(rule, rel_path)]
        return tuple(wanting)

    def describe(self) -> Mapping[str, str]:
        out = {r.name: r.description for r in self.env_rules}
        out.update({r.name: r.description for r in self.file_rules})
        out.update({r.name: r.description for r in self.content_rules})
        return out


@dataclass(frozen=True)
class _ContentScreen:
    """Content rules that may read a file (those its tree allows), in order: the ones
    for every name, and one regex for the names the others want."""

    rules: tuple[ContentRule, ...]
    every_name: tuple[ContentRule, ...]
    named: re.Pattern[str] | None

    @classmethod
    def of(cls, rules: tuple[ContentRule, ...]) -> _ContentScreen:
        return cls(rules, tuple(rule for rule in rules if rule._names is None),
                   _union(rule._names for rule in rules))


def _union(patterns: Iterable[re.Pattern[str] | None]) -> re.Pattern[str] | None:
    """One regex matching where any of ``patterns`` matches (None: there are none)."""
    parts = [f"(?:{pattern.pattern})" for pattern in patterns if pattern is not None]
    return re.compile("|".join(parts)) if parts else None


def _globs_regex(globs: Sequence[str]) -> str:
    # anchored: a glob names the whole variable (and re.search stops at once elsewhere
    # instead of trying the glob from every position of a long hostile name)
    return "^(?:" + "|".join(f"(?:{fnmatch.translate(g.upper())})" for g in globs) + ")"


def _take(size: int) -> Generator[int, bytes, bytes]:
    """``size`` bytes from whoever drives the coroutine (fewer only at the end), asked for
    at most 1 MiB at a time."""
    parts: list[bytes] = []
    while size > 0:
        chunk = yield min(size, 1 << 20)
        if not chunk:
            break
        parts.append(chunk)
        size -= len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)
