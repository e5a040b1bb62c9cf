"""Every promise kept (issue 13, point 3, and the two desktop bugs of issue 12): what a
dialog or message says is what happens."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableWidget

from desktop.pages.task.dialogs import CompareDialog, TrainDialog
from desktop.widgets.training_settings import (
    PRESETS,
    TrainingSettings,
    measured_pace,
    preset_blurb,
)
from engine.api.train_settings import DEFAULT_REPLAY
from engine.library import Library
from tests.desktop.conftest import writer
from tests.desktop.helpers import (
    QUICK,
    TRAIN_MS,
    add_random_version,
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
    assert measured_pace([]) is None


def test_a_finished_run_shows_all_its_steps_and_the_reason_of_a_failed_one(offline_window,
                                                                         library_root):
    lib = Library(library_root)
    lib.create_task("t")
    done = lib.create_run("t", {"train": {"steps": 60}, "model": "x"})
    for step in (20, 40, 60):
        lib.log_metrics(done.id, step, {"loss": 1.0 / step})
    lib.finish_run(done.id, "done", summary={"steps": 60, "train_seconds": 12.0})
    failed = lib.create_run("t", {"train": {"steps": 60}})
    lib.finish_run(failed.id, "failed", summary={"error": "The training loss became NaN.",
                                                 "steps": 3})
    gone = lib.create_run("t", {"train": {"steps": 60}})
    lib.finish_run(gone.id, "cancelled", summary={"steps": 7, "resumable": True,
                                                  "interrupted": "the desktop went away"})
    window = offline_window
    window.session.notify_library_changed()
    page = window.training
    texts = [page.list.item(r).text() for r in range(page.list.count())]
    assert any(f"run {gone.id} · interrupted · resumable" in t for t in texts), texts
    for row in range(page.list.count()):
        page.list.setCurrentRow(row)
        _, run = page.list.item(row).data(Qt.ItemDataRole.UserRole)
        if run.id == done.id:
            assert page.progress.value() == 1000
            assert "step 60 of 60" in page.stats.text() and "?" not in page.stats.text()
            assert "trained for 12 s" in page.stats.text()
        elif run.id == failed.id:
            assert "Failed: The training loss became NaN." in page.stats.text()
        elif run.id == gone.id:
            assert "Interrupted: the desktop went away" in page.stats.text()
            assert page.resume_button.isEnabled()


def test_batch_apply_names_the_checkbox_for_an_existing_output(offline_window, tmp_path,
                                                               library_root):
    lib = Library(library_root)
    lib.create_task("t", kind="classify", labels=["a", "b"])
    add_version(lib, "t")
    offline_window.session.notify_library_changed()
    table = tmp_path / "in.csv"
    table.write_text("text\nhello\n", encoding="utf-8")
    (tmp_path / "in.out.csv").write_text("old", encoding="utf-8")
    page = offline_window.batch
    page.load(str(table))
    page.set_tasks(["t"])
    page.run()
    assert "Overwrite if it exists" in page.status.text()
    assert "--overwrite" not in page.status.text()
    assert (tmp_path / "in.out.csv").read_text() == "old"


def test_classify_says_done_only_with_its_probabilities(qtbot, window, sentiment_file,
                                                        tiny_host):
    add_task_with_data(window, "probs", sentiment_file)
    add_random_version(window, tiny_host, "probs", 21)
    page = window.playground
    page.compare.setChecked(False)
    page.max_tokens.setValue(2)
    page.input.setPlainText("great acting")
    page.set_task("probs")
    seen: list[tuple[str, int]] = []
    page.sig_finished.connect(lambda _texts: seen.append((page.status.text(),
                                                          len(page.bars.bars))))
    with qtbot.waitSignal(page.sig_finished, timeout=60_000):
        page.run()
    status, bars = seen[-1]
    assert status.startswith("Done") and bars == 2


def test_export_says_so_in_green_and_adds_the_extension(qtbot, window, sentiment_file,
                                                        tiny_host, tmp_path):
    add_task_with_data(window, "exp", sentiment_file)
    add_random_version(window, tiny_host, "exp", 22)
    page = window.task_page
    page.set_task("exp")
    page.start_export(1, "pack", tmp_path / "shared")
    qtbot.waitUntil(lambda: "Exported to" in page.notice.text(), timeout=30_000)
    assert (tmp_path / "shared.pbpack").is_file() and not (tmp_path / "shared").exists()
    assert "166534" in page.notice.styleSheet() and page.error.text() == ""


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


def test_batch_progress_moves_results_show_and_a_cancel_says_so(qtbot, window, tmp_path,
                                                                sentiment_file, tiny_host):
    add_task_with_data(window, "rows", sentiment_file)
    add_random_version(window, tiny_host, "rows", 23)
    table = tmp_path / "many.csv"
    table.write_text("text\n" + "".join(f"great film {i}\n" for i in range(40)),
                     encoding="utf-8")
    page = window.batch
    page.load(str(table))
    page.set_tasks(["rows"])
    values: list[int] = []
    page.progress.valueChanged.connect(values.append)
    with qtbot.waitSignal(page.sig_finished, timeout=60_000):
        page.run()
    assert [v for v in values if 0 < v < 1000], values  # it moved before the end
    assert page.progress.value() == 1000
    assert page.preview_title.text().startswith("Results")
    header = [page.preview.horizontalHeaderItem(c).text()
              for c in range(page.preview.columnCount())]
    assert "rows" in header and page.preview.rowCount() > 0
    page.overwrite.setChecked(True)
    with qtbot.waitSignal(page.sig_failed, timeout=60_000) as failed:
        page.run()
        page.cancel()
    assert failed.args[0].startswith("Cancelled after") and "Wrote" not in page.status.text()


def test_compare_shows_scores_on_the_same_data(qtbot, window, sentiment_file, tiny_host):
    add_task_with_data(window, "cmp", sentiment_file)
    add_random_version(window, tiny_host, "cmp", 24)
    add_random_version(window, tiny_host, "cmp", 25)
    page = window.task_page
    page.set_task("cmp")
    panel = page.evaluations
    done: list = []
    panel.sig_evaluated.connect(done.append)
    panel.start([{"task": "cmp", "version": 1}, {"task": "cmp", "version": 2},
                 {"task": "cmp", "baseline": "fewshot"}])
    qtbot.waitUntil(lambda: len(done) == 3, timeout=60_000)
    assert panel.table.rowCount() == 3
    digests = {panel.table.item(r, 0).text() for r in range(3)}
    assert len(digests) == 1  # the same examples
    versions = window.session.library.list_versions("cmp")
    dialog = CompareDialog(versions, window.session.library.list_evaluations("cmp"), window)
    qtbot.addWidget(dialog)
    table: QTableWidget = dialog.same_data
    header = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert header[:5] == ["data", "metric", "v1", "v2", "fewshot"]
    assert table.rowCount() >= 1 and "—" not in table.item(0, 2).text()
    assert writer(window).list_evaluations("cmp")[0].n == done[0].n


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


def test_batch_picks_the_text_column_and_will_not_tick_an_untrained_task(offline_window,
                                                                         tmp_path,
                                                                         library_root):
    lib = Library(library_root)
    lib.create_task("ready", kind="classify", labels=["a", "b"])
    add_version(lib, "ready")
    lib.create_task("fresh", kind="classify", labels=["a", "b"])
    offline_window.session.notify_library_changed()
    table = tmp_path / "in.csv"
    table.write_text("id,review,stars\n1,a long and thoughtful review of the film,4\n"
                     "2,short but sweet,5\n", encoding="utf-8")
    page = offline_window.batch
    page.load(str(table))
    assert page.column.currentText() == "review"  # the text, not the first column (id)
    page.set_tasks(["ready", "fresh"])
    assert page.chosen_tasks() == ["ready"]
    fresh = next(page.tasks.item(r) for r in range(page.tasks.count())
                 if page.tasks.item(r).data(Qt.ItemDataRole.UserRole) == "fresh")
    assert not fresh.flags() & Qt.ItemFlag.ItemIsEnabled
    assert "not trained yet" in fresh.toolTip()


def test_batch_results_put_the_predictions_first_and_count_the_labels(offline_window, tmp_path):
    page = offline_window.batch
    table = tmp_path / "in.csv"
    table.write_text("id,text\n1,x\n2,y\n3,z\n", encoding="utf-8")
    page.load(str(table))
    out = tmp_path / "in.out.csv"
    out.write_text("id,text,senti\n1,x,pos\n2,y,neg\n3,z,pos\n", encoding="utf-8")
    page.show_results(out)
    header = [page.preview.horizontalHeaderItem(c).text()
              for c in range(page.preview.columnCount())]
    assert header == ["senti", "id", "text"]
    assert page.preview_title.text().endswith("— senti: pos ×2 · neg ×1")
