"""Dataset readers: every format is detected and read; every defect names file and line."""

from __future__ import annotations

import json

import pytest

from engine.errors import PromptbankError
from engine.library.readers import Example, parse_examples, read_examples


def jl(*rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.mark.parametrize(("rows", "fmt", "first"), [
    ([{"input": "a", "output": "b"}], "input/output", Example("a", "b")),
    ([{"prompt": "p", "completion": "c"}], "prompt/completion", Example("p", "c")),
    ([{"instruction": "Do", "input": "x", "output": "y"}], "alpaca", Example("Do\n\nx", "y")),
    ([{"instruction": "Do", "input": "", "output": "y"}], "alpaca", Example("Do", "y")),
    ([{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "yo"}]}], "messages", Example("hi", "yo")),
])
def test_jsonl_formats_are_detected(rows, fmt, first):
    result = parse_examples(jl(*rows), "d.jsonl")
    assert result.format == fmt
    assert result.examples[0] == first


def test_chat_uses_last_assistant_turn_and_keeps_history():
    row = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                        {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}
    example = parse_examples(jl(row), "c.jsonl").examples[0]
    assert example.output == "d"
    assert example.input == "User: a\nAssistant: b\nUser: c"


def test_chosen_keys_numbers_blank_lines_and_bom():
    data = b"\xef\xbb\xbf" + jl({"q": "one", "lab": 1}) + b"\n\n" + jl({"q": "two", "lab": 0})
    result = parse_examples(data, "d.jsonl", input_column="q", output_column="lab")
    assert result.format == "columns"
    assert result.examples == [Example("one", "1"), Example("two", "0")]


def test_csv_and_tsv_with_known_and_chosen_columns(tmp_path):
    (tmp_path / "a.csv").write_text('text,label\n"hello, world",pos\nbad,neg\n')
    result = read_examples(tmp_path / "a.csv")
    assert (result.format, result.input_column, result.output_column) == ("csv", "text", "label")
    assert result.examples == [Example("hello, world", "pos"), Example("bad", "neg")]
    (tmp_path / "b.tsv").write_text("x\ty\tz\n1\t2\t3\n")
    result = read_examples(tmp_path / "b.tsv", input_column="z", output_column="x")
    assert result.format == "tsv" and result.examples == [Example("3", "1")]


@pytest.mark.parametrize(("data", "name", "kwargs", "expected"), [
    (b'{"input": "a", "output": "b"}\n{"input": "a", "output": }\n', "bad.jsonl", {},
     "Malformed JSON on line 2 of bad.jsonl"),
    (b"", "empty.jsonl", {}, "empty.jsonl is empty"),
    (b"\n  \n", "blank.csv", {}, "blank.csv is empty"),
    (b'{"input": "a", "output": "b"}\n{"input": "\xff\xfe"}\n', "latin.jsonl", {},
     "latin.jsonl is not UTF-8 text (line 2)"),
    (b'{"input": "a", "output": "b"}\n{"input": "a"}\n', "miss.jsonl", {},
     "Line 2 of miss.jsonl has no 'output' field"),
    (b'{"foo": 1}\n', "keys.jsonl", {}, "Line 1 of keys.jsonl has the keys ['foo']"),
    (b'[1, 2]\n', "arr.jsonl", {}, "Line 1 of arr.jsonl is not a JSON object"),
    (b'{"input": "a", "output": ""}\n', "out.jsonl", {}, "Line 1 of out.jsonl has an empty output"),
    (b'{"input": {"x": 1}, "output": "b"}\n', "obj.jsonl", {}, "'input' must be text"),
    (b'{"messages": [{"role": "user", "content": "a"}]}\n', "chat.jsonl", {},
     "Line 1 of chat.jsonl has no assistant message"),
    (b"text,label\nhi,pos\n", "cols.csv", {"input_column": "sentence"},
     "cols.csv has no column 'sentence' (columns: text, label)"),
    (b"a,b\nhi,pos\n", "none.csv", {}, "none.csv has no input column"),
    (b"text,label\nhi,pos\nx,y,z\n", "fields.csv", {}, "Line 3 of fields.csv has 3 fields"),
    (b"text,label\n", "header.csv", {}, "header.csv has a header but no rows"),
    (b'{"input": "a", "output": "b"}\n{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
     "deep.jsonl", {}, "Malformed JSON on line 2 of deep.jsonl: nested deeper than 64 levels."),
    (b'{"input": "a", "output": ' + b"7" * 5000 + b"}\n", "digits.jsonl", {},
     "Malformed JSON on line 1 of digits.jsonl: unreadable (ValueError"),
])
def test_bad_files_name_file_and_line(data, name, kwargs, expected):
    with pytest.raises(PromptbankError) as err:
        parse_examples(data, name, **kwargs)
    assert expected in str(err.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(PromptbankError, match="does not exist"):
        read_examples(tmp_path / "nope.jsonl")
    with pytest.raises(PromptbankError, match="is a folder"):
        read_examples(tmp_path)
