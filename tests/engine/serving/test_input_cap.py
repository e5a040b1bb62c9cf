"""The serving input cap: an input over ``--max-input-tokens`` is refused with what to do,
quickly and without prefilling it, from the runtime, the CLI and the worker alike."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from engine.api.generation import DEFAULT_MAX_INPUT_TOKENS
from engine.api.wire import Request
from engine.cli import main
from engine.errors import PromptbankError
from engine.server.worker import Worker
from engine.serving.runtime import GenRow, Runtime
from tests.conftest import TEST_DEVICE


def test_an_input_over_the_cap_is_refused_and_one_under_it_runs(tiny_host):
    runtime = Runtime(tiny_host, max_input_tokens=32)
    with pytest.raises(PromptbankError, match="longer than the 32 tokens") as err:
        runtime.generate([GenRow("short"), GenRow("word " * 100)])
    assert "Row 2" in str(err.value) and "--max-input-tokens" in err.value.hint
    assert runtime.generate([GenRow("word " * 5, max_new_tokens=2)])[0].finish_reason
    with pytest.raises(PromptbankError, match="longer than the 32 tokens"):
        runtime.generate([GenRow("great " * 400)])  # far over: refused on its length alone


def test_the_default_cap_refuses_a_megabyte_before_tokenising_it(tiny_host, monkeypatch):
    runtime = Runtime(tiny_host)
    assert runtime.max_input_tokens == DEFAULT_MAX_INPUT_TOKENS
    calls = []
    monkeypatch.setattr(tiny_host, "tokenizer",
                        lambda *a, **k: calls.append(a) or {"input_ids": []}, raising=False)
    with pytest.raises(PromptbankError, match="8,192 tokens"):
        runtime.generate([GenRow("x" * 1_000_000)])
    assert calls == []


def test_the_cli_sets_the_cap_and_refuses_a_bad_one(tiny_model_dir, tmp_path, capsys):
    base = ["--library", str(tmp_path / "lib"), "--model", str(tiny_model_dir),
            "--device", TEST_DEVICE]
    assert main([*base, "--max-input-tokens", "16", "run", "--no-task", "word " * 50]) == 2
    assert "longer than the 16 tokens" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--max-input-tokens", "8", "run", "--no-task", "hi"])
    assert "16 or more" in capsys.readouterr().err


def test_the_worker_answers_an_input_over_its_cap_with_an_error(tiny_model_dir, tmp_path,
                                                               monkeypatch):
    monkeypatch.setenv("PROMPTBANK_MAX_INPUT_TOKENS", "24")
    out = io.StringIO()
    from engine.cli import build_parser

    args = build_parser().parse_args(["--model", str(tiny_model_dir), "--device", TEST_DEVICE,
                                      "--library", str(tmp_path / "lib"), "worker"])
    assert isinstance(args, argparse.Namespace) and args.max_input_tokens == 24
    worker = Worker(args, out=out)
    worker.scheduler.dispatch(Request("g", "generate", {"text": "word " * 60}))
    worker.scheduler.dispatch(Request("p", "ping"))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    error = next(e for e in events if e["id"] == "g" and e["type"] != "progress")
    assert error["type"] == "error" and "longer than the 24 tokens" in error["message"]
    assert any(e["id"] == "p" and e["type"] == "result" for e in events)
