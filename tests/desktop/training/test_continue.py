"""The Continue dialog: replay and anchor, and what reaches the stored run."""

from __future__ import annotations

import json

import pyqtgraph as pg

from desktop.pages.task.dialogs import TrainDialog, expected_change
from desktop.pages.training.change import change_rows
from engine.api.train_settings import DEFAULT_REPLAY
from engine.library import Library, Run
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
    dialog = TrainDialog("cont", ["cont"], window, parent_version=parent,
                         session=window.session)
    qtbot.addWidget(dialog)
    assert dialog.expected.text().startswith("No earlier continued run")
    dialog.settings.steps.setValue(2)
    dialog.settings.eval_every.setValue(0)
    dialog.settings.replay.setValue(0.3)
    dialog.settings.anchor.setValue(5000)
    new_data = tmp_path / "new.jsonl"
    new_data.write_text("".join(json.dumps({"input": f"fine film {i}", "output": "positive"})
                                + "\n" for i in range(6)))
    job = window.jobs.start("cont", dialog.settings.config(), continue_data=str(new_data))
    qtbot.waitUntil(lambda: not job.active, timeout=TRAIN_MS)
    assert job.status == "done", job.message
    run = window.session.library.get_run(job.run_id)
    assert run.config["train"]["replay"] == 0.3 and run.config["train"]["anchor"] == 5000
    assert run.config["train"]["length"] == parent.length == 3
    assert window.session.library.get_version("cont", job.version).length == 3
    page = window.training
    page.select_job(job)  # before and after on the old and the new data: a table and bars
    assert page.change.isVisibleTo(page)
    table = page.change.table
    assert [table.item(r, 0).text() for r in range(table.rowCount())] == ["old data",
                                                                         "new data"]
    assert [table.horizontalHeaderItem(c).text() for c in range(5)] == [
        "data", "metric", "before", "after", "change"]
    bars = [i for i in page.change.plot.getPlotItem().items if isinstance(i, pg.BarGraphItem)]
    assert len(bars) == 2
    page.select_job(first)  # a first run has nothing before it
    assert not page.change.isVisibleTo(page)
    again = TrainDialog("cont", ["cont"], window, session=window.session,
                        parent_version=window.session.library.get_version("cont"))
    qtbot.addWidget(again)
    again.settings.replay.setValue(0.3)
    again.settings.anchor.setValue(5000)
    assert again.expected.text().startswith("Expected, from this task's last 1 run: accuracy")
    again.settings.anchor.setValue(0.0)  # no earlier run with these settings
    assert "(other settings) last 1 run" in again.expected.text()


def test_the_change_rows_say_before_after_and_whether_it_is_noise():
    summary = {"before": {"old": {"metric": 0.9, "n": 100, "metric_name": "accuracy"},
                          "new": {"metric": 0.5, "n": 50, "metric_name": "accuracy"}},
               "after": {"old": {"metric": 0.85, "n": 100, "metric_name": "accuracy"},
                         "new": {"metric": 0.9, "n": 50, "metric_name": "accuracy"}}}
    old, new = change_rows(summary, "accuracy")
    assert old[:4] == ["old data", "accuracy", "90.0 %", "85.0 %"]
    assert old[4].startswith("-5.0 points, within the noise")
    assert new[4].startswith("+40.0 points, more than the noise")
    assert change_rows({"best": {"metric": 0.9}}, "accuracy") == []


def _run(task_id: int, forgot: float, gained: float, replay: float = 0.2) -> Run:
    return Run(id=1, task_id=task_id, kind="continue", status="done",
               config={"train": {"replay": replay, "anchor": 0.0}}, parent_version_id=1,
               version_id=2, summary={"forgetting_old": forgot, "gain_new": gained,
                                      "after": {"old": {"metric_name": "accuracy"}}},
               started="", finished="")


def test_the_expectation_averages_the_closest_recent_runs():
    runs = [_run(1, 0.04, 0.10), _run(1, 0.02, 0.20), _run(2, 0.5, 0.5),
            _run(1, 0.9, 0.9, replay=0.0)]
    assert expected_change(runs, 1, 0.2, 0.0) == (
        "Expected, from this task's last 2 runs: accuracy on the old data down 3.0 points, "
        "on the new data up 15.0 points.")
    assert expected_change(runs, 3, 0.2, 0.0).startswith(
        "Expected, from this library's last 3 runs: accuracy on the old data down 18.7")
    assert expected_change(runs, 1, 0.0, 0.0).endswith(
        "last 1 run: accuracy on the old data down 90.0 points, on the new data up 90.0 points.")
