"""What stays out of an exported image: license material and secrets.

The rules are data with names, so the report can say which rule dropped a
variable or left out a file.  Bring-your-own-license: license keys and
license-server settings never leave with the application; the recipient
supplies their own.  Open-source license *texts* (LICENSE, COPYING, NOTICE,
``licenses/`` folders) are not license material and always stay.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

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

    def matches(self, rel_path: str) -> bool:
        path = rel_path.strip("/")
        base = PurePosixPath(path).name.lower()
        if any(fnmatch.fnmatchcase(base, k.lower()) for k in self.keep):
            return False
        for glob in self.globs:
            if "/" not in glob:
                if fnmatch.fnmatchcase(base, glob.lower()):
                    return True
            elif _path_match(path, glob):
                return True
        return False


def _path_match(path: str, glob: str) -> bool:
    candidates = [path, "/" + path]
    if glob.startswith("**/"):
        tail = glob[3:]
        parts = path.split("/")
        candidates = ["/".join(parts[i:]) for i in range(len(parts))]
        glob = tail
    return any(fnmatch.fnmatchcase(c.lower(), glob.lower()) for c in candidates)


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
)


@dataclass(frozen=True)
class ContentRule:
    """Leaves out a file named like ``globs`` whose first bytes contain ``marker``.

    For names that are ambiguous (a ``.pem`` may be a certificate or a private
    key), only the content decides; symlinks are never opened.
    """

    name: str
    kind: str
    description: str
    globs: tuple[str, ...]
    marker: bytes
    head: int = 64 << 10
    at_start: bool = False      # the first line (after blanks) is a PEM "-----BEGIN ...marker"

    def wants(self, rel_path: str) -> bool:
        """True when the name is one whose content must be looked at."""
        base = PurePosixPath(rel_path).name.lower()
        return any(fnmatch.fnmatchcase(base, g) for g in self.globs)

    def matches_head(self, head: bytes) -> bool:
        """Decide on the file's first bytes (at least ``head`` of them, or all)."""
        if self.at_start:
            first_line = head[:self.head].lstrip().split(b"\n", 1)[0]
            return first_line.startswith(b"-----BEGIN ") and self.marker in first_line
        return self.marker in head[:self.head]

    def matches(self, rel_path: str, host_path: Path) -> bool:
        if not self.wants(rel_path):
            return False
        try:
            fd = os.open(host_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return False
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return False
            return self.matches_head(os.read(fd, self.head))
        finally:
            os.close(fd)


CONTENT_RULES: tuple[ContentRule, ...] = (
    ContentRule("private-key-file", "secret", "a PEM file holding a private key",
                ("*.pem", "*.key", "*.crt", "*.cer", "*.priv", "*.private"),
                b"PRIVATE KEY-----"),
    # Whatever the name (deploy_key, key.txt, ...): a file that *starts* as a PEM or
    # OpenSSH private key.  Only the first bytes of each file are read.
    ContentRule("private-key-content", "secret",
                "a file that starts with a PEM or OpenSSH private key, whatever its name",
                ("*",), b"PRIVATE KEY-----", head=256, at_start=True),
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
        return cls(tuple(env_rules), tuple(file_rules), frozenset(allow_env))

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
        for rule in self.file_rules:
            if rule.scope == "files" and not files_layer:
                continue
            if rule.matches(rel_path):
                return rule
        return None

    def host_file_rule(self, rel_path: str, host_path: Path, files_layer: bool
                       ) -> FileRule | ContentRule | None:
        """Like file_rule, then the content rules (which read the file's first bytes)."""
        rule = self.file_rule(rel_path, files_layer)
        if rule is not None:
            return rule
        for content_rule in self.content_rules:
            if content_rule.matches(rel_path, host_path):
                return content_rule
        return None

    def content_rules_for(self, rel_path: str) -> tuple[ContentRule, ...]:
        """The content rules that must read this file's first bytes to decide."""
        return tuple(rule for rule in self.content_rules if rule.wants(rel_path))

    def describe(self) -> Mapping[str, str]:
        out = {r.name: r.description for r in self.env_rules}
        out.update({r.name: r.description for r in self.file_rules})
        out.update({r.name: r.description for r in self.content_rules})
        return out


def _globs_regex(globs: Sequence[str]) -> str:
    # anchored: a glob names the whole variable (and re.search stops at once elsewhere
    # instead of trying the glob from every position of a long hostile name)
    return "^(?:" + "|".join(f"(?:{fnmatch.translate(g.upper())})" for g in globs) + ")"
