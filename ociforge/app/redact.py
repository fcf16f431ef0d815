"""Dropped variables must not survive in the image's history text.

A base image's history repeats its build commands (``ENV API_TOKEN=...``,
``RUN git clone https://u:token@...``); filtering only ``config.Env`` would leave
those values in the config blob.  The scrubber masks, in any history text,
the values of every variable the policy dropped, every ``NAME=VALUE`` the
policy would drop, and passwords in URLs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .dburl import mask_secrets
from .policy import Policy

MASK = "***"
MIN_VALUE = 4
_ASSIGN_RE = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)="
                        r"""(?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|[^\s"']+)""")


def history_scrubber(policy: Policy, dropped_values: Iterable[str]) -> Callable[[str], str]:
    """A function that masks secrets in one history text (``created_by``, ``comment``)."""
    # Longest first (a value inside another is masked with it); ties by text, so the
    # result never depends on set order.  Values under MIN_VALUE characters are masked
    # only as NAME=VALUE, not wherever the characters occur.
    values = sorted({v for v in dropped_values if len(v) >= MIN_VALUE},
                    key=lambda v: (-len(v), v))

    def assignment(match: re.Match[str]) -> str:
        name, value = match.group("name"), match.group("value")
        if policy.env_rule(name, value.strip("\"'")) is None:
            return match.group(0)
        return f"{name}={MASK}"

    def scrub(text: str) -> str:
        for value in values:
            text = text.replace(value, MASK)
        text = _ASSIGN_RE.sub(assignment, text)
        return mask_secrets(text)

    return scrub
