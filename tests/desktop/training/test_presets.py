"""Presets: the steps they run and the pace measured on this machine."""

from __future__ import annotations

from desktop.widgets.training_settings import (
    PRESETS,
    TrainingSettings,
    measured_pace,
    preset_blurb,
)
from engine.library import Library


def test_presets_promise_steps_not_minutes():
    for name, preset in PRESETS.items():
        text = preset_blurb(name)
        assert f"{preset.steps:,} steps" in text and "minute" not in text and " min" not in text
    assert "about 2 min 0 s" in preset_blurb("Quick", seconds_per_step=2.0)


def test_measured_pace_comes_from_the_latest_finished_run(library_root):
    lib = Library(library_root)
    lib.create_task("t")
    first = lib.create_run("t", {"train": {"steps": 10}})
    lib.finish_run(first.id, "done", summary={"train_seconds": 30.0, "steps": 10})
    second = lib.create_run("t", {"train": {"steps": 10}})
    lib.finish_run(second.id, "cancelled", summary={"steps": 2})
    assert measured_pace(lib.list_runs()) == 3.0
    third = lib.create_run("t", {"train": {"steps": 10}})  # its evaluations took time too
    lib.finish_run(third.id, "done", summary={"train_seconds": 30.0, "wall_seconds": 45.0,
                                              "steps": 10})
    assert measured_pace(lib.list_runs()) == 4.5
    assert measured_pace([]) is None


def test_the_preset_blurb_says_the_steps_that_will_run(qtbot):
    from desktop.wizard.adaptation import ModeNote
    from engine.api.train_settings import FEW_SHOT_DEFAULTS

    settings = TrainingSettings([], [])
    qtbot.addWidget(settings)
    assert settings.blurb.text().startswith(f"Quick: {PRESETS['Quick'].steps} steps")
    ModeNote().update_for(30, settings)  # few-shot mode sets its own steps
    steps = FEW_SHOT_DEFAULTS["steps"]
    assert settings.config()["steps"] == steps
    assert settings.blurb.text().startswith(f"Quick (changed): {steps} steps of")
    settings.apply_preset("Standard")
    assert settings.blurb.text().startswith(f"Standard: {PRESETS['Standard'].steps} steps")
