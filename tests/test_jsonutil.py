"""The one bounded JSON reader: size and nesting depth are checked before parsing."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ociforge.errors import InvalidInputError
from ociforge.model.jsonutil import MAX_DEPTH, loads, nesting_depth, parse_object


@pytest.mark.parametrize("doc", [
    "[" * 100_000,
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 50_000 + "1" + "}" * 50_000,
    "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
    '{"x": "' + "]" * 500 + '", "y": ' + "[" * 200 + "]" * 200 + "}",
])
def test_deep_nesting_is_refused_in_one_line(doc: str) -> None:
    for data in (doc, doc.encode(), doc.encode("utf-16")):
        with pytest.raises(InvalidInputError) as info:
            loads(data, "test document")
        text = str(info.value)
        assert "test document" in text and f"deeper than {MAX_DEPTH}" in text
        assert "\n" not in text


def test_brackets_inside_strings_do_not_count() -> None:
    doc = {"annotations": {"a": "[" * 5000, "b": '\\"{' * 300, "c": "}" * 10}}
    assert loads(json.dumps(doc).encode(), "doc") == doc
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert nesting_depth(deepest) == MAX_DEPTH
    assert loads(deepest, "doc") is not None


def test_unterminated_strings_and_garbage_end_cleanly() -> None:
    for doc in ['"' + '\\"' * 200_000, '["' + "\\" * 300_001, "[" * 200 + '"', "\xff\xfe\x00"]:
        with pytest.raises(InvalidInputError):
            loads(doc.encode("utf-8", "surrogatepass"), "doc")
    with pytest.raises(InvalidInputError, match="not UTF-8"):
        loads(b'{"a": "\xff"}', "doc")


def test_size_bound_and_object_rule() -> None:
    with pytest.raises(InvalidInputError, match="over the 10 byte limit"):
        loads(b'{"a": 12345678}', "doc", limit=10)
    with pytest.raises(InvalidInputError, match="not a JSON object"):
        parse_object(b"[1]", "doc")
    assert parse_object(b'{"a": [1]}', "doc") == {"a": [1]}


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=30))
def test_depth_matches_the_parsed_value(value: object) -> None:
    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        return 0

    text = json.dumps(value)
    assert nesting_depth(text) >= depth(value)
    if depth(value) <= MAX_DEPTH:
        assert loads(text, "doc") == value


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='[]{}"\\ab,:1', max_size=300))
def test_never_anything_but_invalid_input(text: str) -> None:
    with contextlib.suppress(InvalidInputError):
        loads(text, "doc")
