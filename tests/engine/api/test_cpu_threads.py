"""The engine's CPU thread count: every core alone, one left free beside a busy program, or
exactly what the user set (--threads, PROMPTBANK_THREADS); the model reports what it uses."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.api.threads import resolve_threads, shared_threads, threads_setting
from engine.cli import build_parser
from engine.server.client import Client, worker_argv
from tests.conftest import REAL_CACHE, TEST_DEVICE

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("setting, cores, threads", [
    (None, 8, 8), ("auto", 8, 8), ("shared", 8, 7), ("shared", 2, 1), ("shared", 1, 1),
    ("3", 8, 3), ("12", 2, 12), (" Shared ", 4, 3)])
def test_settings_resolve_to_thread_counts(setting, cores, threads):
    assert resolve_threads(setting, cores) == threads


def test_shared_leaves_one_core_but_never_none():
    assert shared_threads(16) == 15 and shared_threads(1) == 1


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5", ""])
def test_bad_settings_are_refused(bad):
    with pytest.raises(argparse.ArgumentTypeError, match="auto, shared or a whole number"):
        threads_setting(bad)


def test_the_option_and_its_environment_default(monkeypatch, capsys):
    assert build_parser().parse_args(["model", "info"]).threads == "auto"
    assert build_parser().parse_args(["--threads", "2", "model", "info"]).threads == "2"
    monkeypatch.setenv("PROMPTBANK_THREADS", "shared")
    assert build_parser().parse_args(["model", "info"]).threads == "shared"
    assert build_parser().parse_args(["model", "info", "--threads", "1"]).threads == "1"
    monkeypatch.setenv("PROMPTBANK_THREADS", "many")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["model", "info"])
    assert "'many' is not a thread count" in capsys.readouterr().err


def test_the_cli_and_the_worker_run_the_model_on_the_threads_asked(tiny_model_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "--model", str(tiny_model_dir),
                           "--device", TEST_DEVICE, "--threads", "1", "model", "info", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[-1])["threads"] == 1
    argv = worker_argv(str(tiny_model_dir), tmp_path / "library", TEST_DEVICE,
                       extra=["--threads", "2"])
    with Client(argv, timeout=120, env={"PROMPTBANK_CACHE": REAL_CACHE,
                                        "HF_HUB_OFFLINE": "1"}) as client:
        client.launch()
        assert client.call("model_info")["threads"] == 2
