"""The run / eval / compare / apply commands on the tiny model (in-process CLI)."""

from __future__ import annotations

import json

import pytest

from engine.cli import main
from tests.conftest import TEST_DEVICE
from tests.engine import runtime_helpers
from tests.engine.runtime_helpers import library_with_tasks

lively_host = runtime_helpers.lively_host


@pytest.fixture
def cli(tmp_path, tiny_model_dir, lively_host):
    library_with_tasks(tmp_path, lively_host)

    def call(*argv: str) -> tuple[int, str, str]:
        return main(["--library", str(tmp_path / "lib"), "--model", str(tiny_model_dir),
                     "--device", TEST_DEVICE, *argv])
    return call


def test_run_generate_classify_and_base(cli, capsys):
    assert cli("run", "describe", "hello world", "--max-new-tokens", "4", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "describe" and out["version"] == 1 and 1 <= out["tokens"] <= 4
    assert cli("run", "sentiment", "a great film", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["label"] in ("positive", "negative")
    assert sum(out["probs"].values()) == pytest.approx(1.0)
    assert cli("run", "--no-task", "hello", "--max-new-tokens", "3") == 0
    assert capsys.readouterr().out.endswith("\n")


def test_run_bad_input(cli, capsys):
    assert cli("run", "nope", "hello") == 2
    assert "nope" in capsys.readouterr().err
    assert cli("run", "describe", "  ") == 2
    assert "empty input" in capsys.readouterr().err
    assert cli("run", "describe") == 2
    assert "Give a task and a text" in capsys.readouterr().err
    assert cli("run", "describe", "hi", "--version", "5") == 2
    assert "no version 5" in capsys.readouterr().err


def test_eval_json_and_compare(cli, capsys):
    assert cli("eval", "sentiment", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert {"task", "version", "metrics", "n"} <= set(out)
    assert out["version"] == 1 and "accuracy" in out["metrics"]
    assert cli("eval", "sentiment", "--baseline", "instruction") == 0
    capsys.readouterr()
    assert cli("compare", "sentiment") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["what", "data", "rows"]
    assert [line.split()[0] for line in table[1:]] == ["v1", "instruction"]


def test_apply_with_progress_and_refusals(cli, capsys, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("text\nthe movie was great\nbad jokes\nhello world\n")
    out = tmp_path / "out.csv"
    assert cli("apply", "sentiment", "describe", "--in", str(src), "--column", "text",
               "--out", str(out), "--max-new-tokens", "3") == 0
    captured = capsys.readouterr()
    assert "3/3 rows" in captured.err and "rows/s" in captured.err
    assert out.read_text().splitlines()[0] == "text,sentiment,sentiment_probability,describe"
    assert cli("apply", "sentiment", "--in", str(src), "--column", "text", "--out",
               str(out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli("apply", "sentiment", "--in", str(src), "--column", "body", "--out",
               str(tmp_path / "o2.csv")) == 2
    assert "no column 'body'" in capsys.readouterr().err
