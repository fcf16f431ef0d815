"""Telling ociforge's messages from the plain progress lines that may come before them.

Where stderr is not a terminal, ``export``, ``append`` and ``copy`` write a line when
each item starts and ends (``pushing sha256:0123456789ab (3.0 MiB)``, ``built layer
1/1 from app (...)``; ociforge.progress.render).  A failure is still one line
(``ociforge: error: ...``): ``messages`` is stderr without the progress lines, so a
test can check exactly that.
"""

from __future__ import annotations

import re

from ociforge.progress.render import PHASE_VERBS

_VERBS = sorted({verb for pair in PHASE_VERBS.values() for verb in pair}, key=len, reverse=True)
_PROGRESS = re.compile(rf"^(?:{'|'.join(map(re.escape, _VERBS))}) \S")


def is_progress_line(line: str) -> bool:
    return bool(_PROGRESS.match(line))


def messages(stderr: str) -> list[str]:
    """stderr's non-blank lines that are not progress lines."""
    return [line for line in stderr.splitlines() if line.strip() and not is_progress_line(line)]
