"""Dataset values that would train as nonsense are refused with their line: NaN and
infinities, a key given twice in one JSON line, a column named twice in a table."""

from __future__ import annotations

import pytest

from engine.errors import PromptbankError
from engine.library.readers import parse_examples


@pytest.mark.parametrize(("line", "words"), [
    ('{"input": NaN, "output": "a"}', "Line 2 of d.jsonl: 'input' must be text (it is nan)"),
    ('{"input": "x", "output": 1e999}', "'output' must be text (it is inf)"),
    ('{"input": "x", "output": "a", "output": "b"}', "the key 'output' twice")])
def test_non_finite_numbers_and_repeated_keys_are_refused(line, words):
    data = ('{"input": "fine", "output": "a"}\n' + line + "\n").encode()
    with pytest.raises(PromptbankError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_examples(data, "d.jsonl")


def test_numbers_that_are_numbers_still_read_as_text():
    read = parse_examples(b'{"input": 12345678901234567890, "output": 2.5}\n', "d.jsonl")
    assert (read.examples[0].input, read.examples[0].output) == ("12345678901234567890", "2.5")


def test_a_column_named_twice_is_refused():
    with pytest.raises(PromptbankError, match="names the column 'text' more than once"):
        parse_examples(b"text,label,text\nhi,a,there\n", "d.csv")
