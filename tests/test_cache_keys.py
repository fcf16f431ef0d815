"""Cache keys are canonical JSON of plain data: equal values give equal keys in every
process, whatever the values' reprs say, and what cannot be plain data is refused."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ociforge.app.policy import Policy
from ociforge.app.spec import ExtraPatterns
from ociforge.cache.keys import KEY_FORMAT, key_text, plain, record_name

ROOT = Path(__file__).resolve().parent.parent


def check(data: bytes) -> bool:
    return bool(data)


@dataclass(frozen=True)
class Rule:
    name: str
    globs: tuple[str, ...]
    marker: bytes = b""
    test: object = None
    compiled: re.Pattern[str] | None = field(init=False, default=None, compare=False)

    def __repr__(self) -> str:   # holds an address: a key made from it would never hit
        return f"<Rule {self.name} at {id(self):#x}>"


def test_a_dataclass_is_the_fields_it_was_made_from_not_its_repr() -> None:
    a, b = Rule("r", ("*.pem",), b"KEY", check), Rule("r", ("*.pem",), b"KEY", check)
    assert repr(a) != repr(b)
    assert key_text(a) == key_text(b)
    assert plain(a) == {"dataclass": f"{__name__}.Rule", "name": "r", "globs": ["*.pem"],
                        "marker": {"bytes": "4b4559"},
                        "test": {"function": f"{__name__}.check"}}
    assert key_text(Rule("r", ("*.key",))) != key_text(Rule("r", ("*.pem",)))


def test_sets_are_sorted_and_mappings_canonical() -> None:
    assert key_text(frozenset({"b", "a", "c"})) == key_text({"c", "a", "b"}) == '[["a","b","c"]]'
    assert key_text({"b": 1, "a": (2, None)}) == '[{"a":[2,null],"b":1}]'
    assert key_text(re.compile("x+", re.I)) == key_text(re.compile("x+", re.I))


def test_what_is_not_plain_data_is_refused() -> None:
    with pytest.raises(TypeError, match="object is no plain data"):
        plain(object())
    with pytest.raises(TypeError, match="object is no plain data"):
        record_name("x", [object()])


def test_the_format_version_is_part_of_every_name() -> None:
    import hashlib

    from ociforge.model.jsonutil import canonical

    assert record_name("a", 1) == hashlib.sha256(canonical([KEY_FORMAT, "a", 1])).hexdigest()
    assert record_name("a\0b", "c") != record_name("a", "b\0c")


def test_a_policy_gives_the_same_key_in_another_process() -> None:
    """No address, no hash seed, no set order: the key of the export's rules is the same
    in a fresh interpreter (another PYTHONHASHSEED)."""
    code = ("from ociforge.app.policy import Policy\n"
            "from ociforge.app.spec import ExtraPatterns\n"
            "from ociforge.cache.keys import record_name\n"
            "print(record_name(Policy.for_app(ExtraPatterns(env=('A_*',)), "
            "ExtraPatterns(allow_files=('.env.local',)), allow_env=('X', 'Y', 'Z'))))\n")
    here = record_name(Policy.for_app(ExtraPatterns(env=("A_*",)),
                                      ExtraPatterns(allow_files=(".env.local",)),
                                      allow_env=("X", "Y", "Z")))
    for seed in ("1", "2"):
        there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               check=True, cwd=ROOT,
                               env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)})
        assert there.stdout.strip() == here


def test_allow_files_is_part_of_the_policy_key() -> None:
    plain_policy = Policy.for_app(ExtraPatterns(), ExtraPatterns())
    allowing = Policy.for_app(ExtraPatterns(), ExtraPatterns(allow_files=(".env.local",)))
    assert key_text(plain_policy) != key_text(allowing)
