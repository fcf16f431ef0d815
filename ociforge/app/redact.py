"""Dropped variables must not survive in the image's history text.

A base image's history repeats its build commands (``ENV API_TOKEN=...``,
``RUN git clone https://u:token@...``); filtering only ``config.Env`` would leave
those values in the config blob.  The scrubber masks, in any history text,
the values of every variable the policy dropped, every ``NAME=VALUE`` the
policy would drop, and passwords in URLs.

Its cost is linear in the values plus the history text, whatever they hold: the
dropped values are found by one automaton (masking.Masker) instead of one search
per value and text, and the ``NAME=VALUE`` pattern starts only where a name can
start, so a long run of letters is not rescanned from every position in it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .dburl import mask_secrets
from .masking import Masker
from .policy import Policy

MASK = "***"
MIN_VALUE = 4
# A name starts at the first letter or '_' of a run of name characters (digits before
# it are kept as they are), never in the middle of one: each run is read once.
_ASSIGN_RE = re.compile(r"(?<![A-Za-z0-9_])(?P<lead>[0-9]*+)"
                        r"(?P<name>[A-Za-z_][A-Za-z0-9_]*+)="
                        r"""(?P<value>"(?:[^"\\]|\\.)*+"|'[^']*+'|[^\s"']++)""")


def history_scrubber(policy: Policy, dropped_values: Iterable[str]) -> Callable[[str], str]:
    """A function that masks secrets in one history text (``created_by``, ``comment``).

    Every stretch of text covered by a dropped value (overlapping values together)
    becomes one mask.  Values under MIN_VALUE characters are masked only as
    NAME=VALUE, not wherever the characters occur.
    """
    masker = Masker(v for v in dropped_values if len(v) >= MIN_VALUE)

    def assignment(match: re.Match[str]) -> str:
        name, value = match.group("name"), match.group("value")
        if policy.env_rule(name, value.strip("\"'")) is None:
            return match.group(0)
        return f"{match.group('lead')}{name}={MASK}"

    def scrub(text: str) -> str:
        text = masker.mask(text, MASK)
        text = _ASSIGN_RE.sub(assignment, text)
        return mask_secrets(text)

    return scrub
