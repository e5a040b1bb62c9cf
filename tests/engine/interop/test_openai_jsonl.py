"""A task's rows as OpenAI chat fine-tuning JSONL: the documented shape on every line, and
our own reader gives the same rows back."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.errors import PromptbankError
from engine.interop import export_version
from engine.interop.openai_jsonl import check_chat_line
from engine.library.readers import read_examples
from tests.engine.train_helpers import make_library


@pytest.fixture
def lib(tmp_path):
    return make_library(tmp_path)


@pytest.mark.parametrize("split", ["train", "eval"])
def test_every_line_is_a_chat_example_and_reads_back_to_the_same_rows(lib, tmp_path, split):
    out = export_version(lib, "sentiment", "openai-jsonl", tmp_path / f"{split}.jsonl",
                         split=split)
    lines = out.read_text(encoding="utf-8").splitlines()
    rows = lib.examples("sentiment", split)
    assert len(lines) == len(rows) > 0
    for number, line in enumerate(lines, 1):
        check_chat_line(line, number)
        roles = [m["role"] for m in json.loads(line)["messages"]]
        assert roles == ["system", "user", "assistant"]
    first = json.loads(lines[0])["messages"]
    assert first[0]["content"] == lib.get_task("sentiment").instruction
    assert (first[1]["content"], first[2]["content"]) == (rows[0].input, rows[0].output)
    assert read_examples(out).examples == rows


def test_a_task_without_instruction_has_no_system_turn(lib, tmp_path):
    lib.update_task("sentiment", instruction="")
    out = export_version(lib, "sentiment", "openai-jsonl", tmp_path / "t.jsonl")
    line = out.read_text(encoding="utf-8").splitlines()[0]
    assert [m["role"] for m in json.loads(line)["messages"]] == ["user", "assistant"]


@pytest.mark.parametrize(("record", "words"), [
    ({"messages": [], "extra": 1}, "only 'messages'"),
    ({"messages": []}, "no messages"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "role with text"),
    ({"messages": [{"role": "user", "content": 3}]}, "role with text"),
    ({"messages": [{"role": "user", "content": "q"}]}, "end with the assistant"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"},
                   {"role": "assistant", "content": "a"}]}, "system turn only first")])
def test_lines_off_the_documented_shape_are_refused(record, words):
    with pytest.raises(PromptbankError, match=words):
        check_chat_line(json.dumps(record), 3)


def test_the_cli_exports_the_rows_and_refuses_an_empty_split(lib, tmp_path):
    base = [sys.executable, "-m", "engine.cli", "export", "sentiment", "--library",
            str(lib.root), "--format", "openai-jsonl"]
    done = subprocess.run([*base, "--out", str(tmp_path / "ft.jsonl")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "train rows" in done.stdout
    assert len((tmp_path / "ft.jsonl").read_text().splitlines()) == len(
        lib.examples("sentiment", "train"))
    lib.create_task("empty")
    empty = subprocess.run([sys.executable, "-m", "engine.cli", "export", "empty", "--library",
                            str(lib.root), "--format", "openai-jsonl", "--out",
                            str(tmp_path / "e.jsonl")], capture_output=True, text=True,
                           timeout=120)
    assert empty.returncode != 0 and "no train rows" in empty.stderr
    assert not (tmp_path / "e.jsonl").exists()
