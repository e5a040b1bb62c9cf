"""Joint runs: one job, a curve per task, kept across a resume."""

from __future__ import annotations

from PySide6.QtCore import Qt

from tests.desktop.conftest import writer
from tests.desktop.helpers import (
    TRAIN_MS,
    add_task_with_data,
)


def test_training_page_queues_a_joint_job_with_a_curve_per_task(qtbot, window,
                                                                 sentiment_file):
    for name in ("joint-a", "joint-b"):
        add_task_with_data(window, name, sentiment_file)
    dialog = window.training.open_joint_dialog()
    items = {dialog.tasks.item(i).text(): dialog.tasks.item(i)
             for i in range(dialog.tasks.count())}
    assert not dialog.train_button.isEnabled()  # two tasks at least
    for name in ("joint-a", "joint-b"):
        items[name].setCheckState(Qt.CheckState.Checked)
    assert dialog.train_button.isEnabled()
    settings = dialog.settings
    settings.method.setCurrentText("prompt")
    settings.length.setValue(4)
    settings.steps.setValue(4)
    settings.batch.setValue(4)
    settings.eval_every.setValue(2)
    with qtbot.waitSignal(window.jobs.sig_job_finished, timeout=TRAIN_MS):
        dialog.train_button.click()
    job = dialog.job
    assert job.status == "done", job.message
    assert job.kind == "joint" and job.tasks == ["joint-a", "joint-b"]
    assert [s for s, _ in job.task_losses["joint-a"]] == [1, 2, 3, 4]
    assert set(job.task_evals) == {"joint-a", "joint-b"}
    window.training.select_job(job)
    window.training.curves.flush()
    curves = window.training.curves
    assert set(curves.loss_curves) == set(curves.eval_curves) == {"joint-a", "joint-b"}
    assert [int(x) for x in curves.loss_curves["joint-a"].getData()[0]] == [1, 2, 3, 4]
    assert "saved joint-a v1, joint-b v1" in window.training.stats.text()
    lib = writer(window)
    assert [len(lib.list_versions(n)) for n in ("joint-a", "joint-b")] == [1, 1]


def test_a_resumed_joint_job_keeps_a_curve_per_task(qtbot, window, sentiment_file):
    """A joint job cancelled and resumed from one of its runs is the joint job again: each
    task's curve starts with the points it logged before it stopped."""
    tasks = ["resume-a", "resume-b"]
    for name in tasks:
        add_task_with_data(window, name, sentiment_file)
    job = window.jobs.start_joint(tasks, {"method": "prompt", "length": 2, "init": "random",
                                          "steps": 5000, "batch_size": 4, "eval_every": 0,
                                          "mode": "standard"})
    qtbot.waitUntil(lambda: len(job.task_losses.get("resume-b", [])) >= 2, timeout=TRAIN_MS)
    with qtbot.waitSignal(window.jobs.sig_job_finished, timeout=30_000):
        window.jobs.cancel(job)
    assert job.status == "cancelled" and job.losses == []  # only per-task curves
    resumed = window.jobs.resume(job.outcome.run_ids[1], "resume-b")
    qtbot.waitUntil(lambda: resumed.status == "running", timeout=TRAIN_MS)
    assert resumed.tasks == tasks and resumed.start_step >= 2
    for task in tasks:
        assert [s for s, _ in resumed.task_losses[task][:2]] == [1, 2]
    window.training.select_job(resumed)
    window.training.curves.flush()
    assert set(window.training.curves.loss_curves) == set(tasks)
    with qtbot.waitSignal(window.jobs.sig_job_finished, timeout=30_000):
        window.jobs.cancel(resumed)
    assert resumed.status == "cancelled"
