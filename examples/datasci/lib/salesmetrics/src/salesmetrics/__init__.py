"""Small, dependency-free helpers shared by the notebook and the analysis program."""

from collections.abc import Iterable, Mapping

__version__ = "1.0.0"


def totals(rows: Iterable[Mapping[str, str]], key: str, value: str) -> dict[str, int]:
    """Sum of ``value`` (integers) per ``key``, keys sorted."""
    out: dict[str, int] = {}
    for row in rows:
        out[row[key]] = out.get(row[key], 0) + int(row[value])
    return dict(sorted(out.items()))


def mean(values: Iterable[int]) -> int:
    """The mean, rounded to a whole number (half to even)."""
    items = list(values)
    return round(sum(items) / len(items)) if items else 0


def money(cents: int) -> str:
    """``12950`` -> ``129.50``."""
    return f"{cents // 100}.{cents % 100:02d}"
