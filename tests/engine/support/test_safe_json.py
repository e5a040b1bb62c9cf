"""Bounded JSON: deep nesting, long input and huge numbers are refused with a short reason,
never a RecursionError or a number of thousands of digits."""

from __future__ import annotations

import math

import pytest

from engine.support.safe_json import MAX_DEPTH, JsonRefused, loads, nests_deeper


def deep(levels: int, opener: str = "[", closer: str = "]") -> str:
    return opener * levels + closer * levels


@pytest.mark.parametrize("text", [deep(200_000), deep(100_000, '{"a":', "}"),
                                  '{"id": "x", "args": ' + deep(MAX_DEPTH) + "}"])
def test_deep_nesting_is_refused_before_parsing(text):
    with pytest.raises(JsonRefused, match=f"nested deeper than {MAX_DEPTH} levels"):
        loads(text)
    with pytest.raises(JsonRefused, match="nested deeper"):
        loads(text.encode())


def test_nesting_up_to_the_limit_parses():
    assert loads(deep(MAX_DEPTH)) is not None
    assert loads(deep(3), max_depth=3) == [[[]]]
    with pytest.raises(JsonRefused):
        loads(deep(4), max_depth=3)


def test_brackets_inside_strings_do_not_count():
    text = '{"a": "' + "[" * 500 + '\\"{{{", "b": ["]]]"]}'
    assert not nests_deeper(text, 2) and not nests_deeper(text.encode(), 2)
    assert loads(text, max_depth=2)["b"] == ["]]]"]


def test_size_limit():
    assert loads('"' + "x" * 10 + '"', max_bytes=12) == "x" * 10
    with pytest.raises(JsonRefused, match="longer than 12 bytes"):
        loads('"' + "x" * 11 + '"', max_bytes=12)


@pytest.mark.parametrize("text, words", [
    ("1" * 5000, "a number too large"),
    ("9223372036854775808", "a number too large"),
    ("-9223372036854775808", "a number too large"),
    ("1e999", "a number out of range"),
    ("-1e999", "a number out of range"),
    ('{"a": NaN}', "NaN, which JSON does not allow"),
    ("[Infinity]", "Infinity, which JSON does not allow"),
])
def test_finite_refuses_huge_and_non_finite_numbers(text, words):
    with pytest.raises(JsonRefused, match=words):
        loads(text, finite=True)


def test_numbers_within_range_and_without_finite():
    assert loads("[9223372036854775807, -9223372036854775807, 1.5e300]", finite=True) == [
        2**63 - 1, -(2**63 - 1), 1.5e300]
    assert math.isnan(loads("NaN"))  # the engine's own events may carry NaN
    with pytest.raises(JsonRefused, match="unreadable"):
        loads("1" * 5000)  # beyond Python's own digit limit: refused, not a ValueError


@pytest.mark.parametrize("data, words", [(b"not json", "not JSON"), (b"\xff\xfe\x00", "not"),
                                         (b'"\xff"', "not UTF-8"), (b"", "not JSON")])
def test_garbage_is_one_refusal(data, words):
    with pytest.raises(JsonRefused, match=words):
        loads(data)
