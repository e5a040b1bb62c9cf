"""`promptbank check`: the whole command runs end to end on the CPU (its quick form, on the
tiny model), prints each figure beside its target, and exits non-zero only when something is
wrong, never for a missed speed target."""

from __future__ import annotations

import argparse
import json

import pytest

from engine.cli import main
from engine.commands import check


@pytest.mark.slow
def test_the_quick_check_runs_every_stage_on_the_cpu(tiny_model_dir, capsys):
    code = main(["--json", "--device", "cpu", "--model", str(tiny_model_dir), "check",
                 "--quick"])
    out = json.loads(capsys.readouterr().out)
    stages = [f["stage"] for f in out["figures"]]
    assert stages[0] == "device" and stages[1] == "engine tests on the device"
    assert any(s.startswith("train vs PEFT") for s in stages)
    assert any("mixed batch vs PEFT" in s for s in stages)
    assert "the worker serves while it trains" in stages
    assert any(s.startswith("default training") for s in stages)
    wrong = [f for f in out["figures"] if f["status"] == "fail"]
    assert wrong == [] and out["verdict"] == "pass" and code == 0
    assert all(f["target"] for f in out["figures"] if f["status"] in ("pass", "miss"))


def _args(**over) -> argparse.Namespace:
    return argparse.Namespace(**{"quick": True, "json": True, "device": "cpu",
                                 "model": "default", "geometry": None, **over})


def test_a_missed_target_is_reported_but_not_fatal(monkeypatch, capsys):
    def slow(c):
        c.figures.append(check.Figure("speed", "1.2x", "≥ 2x", "miss"))

    monkeypatch.setattr(check, "STAGES", [("speed", slow)])
    assert check.cmd_check(_args()) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "pass" and out["figures"][0]["status"] == "miss"


def test_a_stage_that_fails_makes_the_check_fail_and_says_which(monkeypatch, capsys):
    def broken(c):
        raise check.StageFailed("`promptbank bench serve` failed: the worker died")

    monkeypatch.setattr(check, "STAGES", [("serving", broken)])
    assert check.cmd_check(_args(json=False)) == 1
    text = capsys.readouterr().out
    assert "serving" in text and "the worker died" in text
    assert "Verdict: something is wrong (1 failed: serving)" in text
