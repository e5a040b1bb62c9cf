"""The Continue dialog: replay and anchor, and what reaches the stored run."""

from __future__ import annotations

import json

from desktop.pages.task.dialogs import TrainDialog
from engine.api.train_settings import DEFAULT_REPLAY
from engine.library import Library
from tests.desktop.helpers import (
    QUICK,
    TRAIN_MS,
    add_task_with_data,
    add_version,
)


def test_the_continue_dialog_offers_replay_and_anchor_not_length_or_method(qtbot,
                                                                          offline_window,
                                                                          library_root):
    lib = Library(library_root)
    lib.create_task("t")
    add_version(lib, "t")
    parent = lib.get_version("t")
    dialog = TrainDialog("t", ["t"], offline_window, parent_version=parent)
    qtbot.addWidget(dialog)
    dialog.show()
    settings = dialog.settings
    settings.advanced.setChecked(True)
    for widget in (settings.method, settings.length, settings.init):
        assert not widget.isVisibleTo(dialog)
    assert settings.replay.isVisibleTo(dialog) and settings.anchor.isVisibleTo(dialog)
    assert settings.replay.value() == DEFAULT_REPLAY
    config = settings.config()
    assert {"method", "length", "init"}.isdisjoint(config)
    assert config["replay"] == DEFAULT_REPLAY and config["anchor"] == 0.0
    new = TrainDialog("t", ["t"], offline_window)
    qtbot.addWidget(new)
    assert {"length", "init"} <= set(new.settings.config())  # the method: once the engine says
    assert "replay" not in new.settings.config()


def test_continue_dialog_settings_reach_the_stored_run(qtbot, window, sentiment_file,
                                                       tmp_path):
    add_task_with_data(window, "cont", sentiment_file)
    first = window.jobs.start("cont", {**QUICK, "steps": 2, "length": 3})
    qtbot.waitUntil(lambda: not first.active, timeout=TRAIN_MS)
    assert first.status == "done", first.message
    parent = window.session.library.get_version("cont")
    dialog = TrainDialog("cont", ["cont"], window, parent_version=parent)
    qtbot.addWidget(dialog)
    dialog.settings.steps.setValue(2)
    dialog.settings.eval_every.setValue(0)
    dialog.settings.replay.setValue(0.3)
    dialog.settings.anchor.setValue(0.5)
    new_data = tmp_path / "new.jsonl"
    new_data.write_text("".join(json.dumps({"input": f"fine film {i}", "output": "positive"})
                                + "\n" for i in range(6)))
    job = window.jobs.start("cont", dialog.settings.config(), continue_data=str(new_data))
    qtbot.waitUntil(lambda: not job.active, timeout=TRAIN_MS)
    assert job.status == "done", job.message
    run = window.session.library.get_run(job.run_id)
    assert run.config["train"]["replay"] == 0.3 and run.config["train"]["anchor"] == 0.5
    assert run.config["train"]["length"] == parent.length == 3
    assert window.session.library.get_version("cont", job.version).length == 3
