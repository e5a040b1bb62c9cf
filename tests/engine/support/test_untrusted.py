"""Untrusted text stays text: hidden characters in names and labels are refused from every
source, and the command line never writes them to the terminal."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.errors import PromptbankError
from engine.library import Library
from engine.support.untrusted import check_label, check_name, hidden_characters, terminal_text

HOSTILE = ["abc\u202egnp.exe", "red\x1b[31m", "nul\x00name", "zero\u200bwidth", "line\u2028"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hidden_characters_in_a_name_are_refused_and_named(name):
    with pytest.raises(PromptbankError) as err:
        check_name(name, "task name")
    assert hidden_characters(name)[0] in str(err.value)
    assert not hidden_characters(str(err.value).split("holds")[0])  # shown escaped


@pytest.mark.parametrize(("label", "words"), [("a,b", "comma"), (" pos", "surrounding"),
                                              ("pos\u202e", "U\\+202E")])
def test_labels_must_round_trip_through_the_labels_option(label, words):
    with pytest.raises(PromptbankError, match=words):
        check_label(label)


def test_every_library_entry_point_refuses_them(tmp_path):
    lib = Library(tmp_path / "lib")
    with pytest.raises(PromptbankError, match="U\\+202E"):
        lib.create_task("abc\u202egnp.exe")
    with pytest.raises(PromptbankError, match="comma"):
        lib.create_task("t", kind="classify", labels=["a,b", "c"])
    lib.create_task("plain")
    with pytest.raises(PromptbankError, match="U\\+001B"):
        lib.rename_task("plain", "p\x1b[2J")
    assert [t.name for t in lib.list_tasks()] == ["plain"]


def test_terminal_text_keeps_lines_and_escapes_the_rest():
    assert terminal_text("a\tb\nc") == "a\tb\nc"
    assert terminal_text("x\x1b[31my\u202ez") == "x\\u001b[31my\\u202ez"


def test_the_cli_writes_no_control_bytes_from_the_library(tmp_path):
    lib = Library(tmp_path / "lib")
    lib.create_task("t", description="evil \x1b]0;pwned\x07 text")
    out = subprocess.run([sys.executable, "-m", "engine.cli", "task", "show", "t", "--library",
                          str(lib.root)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert "\\u001b]0;pwned\\u0007" in out.stdout
