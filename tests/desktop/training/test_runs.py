"""Runs from the training page: to completion, cancelled, failed, refused resumes."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer

from engine.library import Library
from tests.desktop.conftest import writer
from tests.desktop.helpers import QUICK, TRAIN_MS, add_task_with_data
from tests.engine.library.test_library_run_owner import holder


def test_resume_of_a_run_another_process_trains_shows_the_refusal(qtbot, window,
                                                                  sentiment_file):
    add_task_with_data(window, "held", sentiment_file)
    lib = writer(window)
    run = lib.create_run("held", {})
    lib.finish_run(run.id, "cancelled")
    proc = holder(lib.root, run.id)
    try:
        window.session.notify_library_changed()
        page = window.training
        page.refresh()
        row = next(r for r in range(page.list.count())
                   if getattr(page.list.item(r).data(Qt.ItemDataRole.UserRole)[1], "id", None)
                   == run.id)
        page.list.setCurrentRow(row)
        assert page.resume_button.isEnabled()
        with qtbot.waitSignal(window.jobs.sig_job_finished, timeout=30_000) as finished:
            page.resume_button.click()
    finally:
        proc.stdin.close()
        proc.wait()
    job = finished.args[0]
    refusal = f"Run {run.id} is being trained by process {proc.pid}"
    assert job.status == "failed" and refusal in job.message
    page.select_job(job)
    assert refusal in page.stats.text()
    assert lib.get_run(run.id).status == "cancelled"  # nothing changed


class StallMeter:
    """Measures the longest gap between ticks of a 10 ms QTimer (event-loop stalls)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.longest = 0.0
        self.timer = QTimer(interval=10)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.last)
        self.last = now

    def stop(self) -> float:
        self.timer.stop()
        return self.longest


def test_train_to_completion_shows_new_version(qtbot, window, sentiment_file, capsys):
    add_task_with_data(window, "sentiment", sentiment_file)
    meter = StallMeter()
    job = window.jobs.start("sentiment", QUICK)
    with qtbot.waitSignal(window.jobs.sig_job_finished, timeout=TRAIN_MS):
        pass
    longest = meter.stop()
    with capsys.disabled():
        print(f"\n[desktop] longest event-loop stall while training: {longest * 1000:.1f} ms")
    assert job.status == "done", job.message
    assert job.version == 1
    assert job.losses and job.run_id is not None
    assert job.step == QUICK["steps"]
    # The library list now shows the trained version.
    window.library.select("sentiment")
    assert "v1" in window.library.list.currentItem().text()
    assert window.task_page.versions.rowCount() == 1
    # The finished run keeps its curve in the catalogue.
    metrics = window.session.library.run_metrics(job.run_id)
    assert any("loss" in m for m in metrics)
    assert longest < 2.0  # generous: the GUI never waits on the engine


def test_cancel_training_job(qtbot, window, sentiment_file):
    add_task_with_data(window, "to-cancel", sentiment_file)
    job = window.jobs.start("to-cancel", {**QUICK, "steps": 5000, "eval_every": 0})
    qtbot.waitUntil(lambda: job.step >= 1, timeout=TRAIN_MS)
    window.training.select_job(job)
    assert window.training.cancel_button.isEnabled()
    with qtbot.waitSignal(window.jobs.sig_job_finished, timeout=30_000):
        window.training.cancel_button.click()
    assert job.status == "cancelled"
    assert window.session.library.get_run(job.run_id).status == "cancelled"
    assert window.session.library.list_versions("to-cancel") == []
    assert window.training.resume_button.isEnabled()


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


def test_the_learning_rate_is_followed_live_and_two_runs_can_be_overlaid(qtbot, window,
                                                                         sentiment_file):
    add_task_with_data(window, "overlaid", sentiment_file)
    page = window.training
    jobs = []
    for lr in (0.05, 0.01):
        job = window.jobs.start("overlaid", {**QUICK, "steps": 4, "eval_every": 2, "lr": lr},
                                seconds_per_step=0.25)
        with qtbot.waitSignal(window.jobs.sig_job_finished, timeout=TRAIN_MS):
            pass
        assert job.status == "done", job.message
        jobs.append(job)
    lib = writer(window)
    for job, lr in zip(jobs, (0.05, 0.01), strict=True):
        logged = [(m["step"], m["lr"]) for m in lib.run_metrics(job.run_id) if "lr" in m]
        assert job.lrs == logged and len(logged) == 4 and max(v for _, v in logged) <= lr
    page.select_job(jobs[0])
    page.curves.flush()
    # What the settings estimated beside what it took; the run's time per step counts its
    # evaluations, so the next estimate does too.
    assert "estimated about 1 s before it started" in page.stats.text()
    assert "took " in page.stats.text()
    summary = lib.get_run(jobs[0].run_id).summary
    assert summary["wall_seconds"] >= summary["train_seconds"] > 0
    assert list(page.curves.lr_curve.getData()[1]) == [v for _, v in jobs[0].lrs]
    page.list.clearSelection()
    for row in range(page.list.count()):
        kind, obj = page.list.item(row).data(Qt.ItemDataRole.UserRole)
        if kind == "live" and obj in jobs:
            page.list.item(row).setSelected(True)
    page.curves.flush()
    first, second = (f"overlaid · run {job.run_id}" for job in jobs)
    assert page.title.text() == "2 runs overlaid"
    # Read back from the runs' logs, the evaluation says what it measured.
    assert page.curves.eval_plot.getPlotItem().titleLabel.text == "Evaluation (accuracy)"
    assert list(page.curves.loss_curves) == [first, second]
    assert list(page.curves.eval_curves) == [first, second]
    assert [len(c.getData()[0]) for c in page.curves.loss_curves.values()] == [4, 4]
    assert f"{first}: done" in page.stats.text() and not page.curves.lr_curve.isVisible()
    assert not page.cancel_button.isEnabled() and not page.resume_button.isEnabled()
