"""Desktop sides of the hardening: the engine's thread count as a setting (automatic: a core
left for the window), the checkpoint interval among the training settings, the rows a job
prepares and cuts shown on the Training page, and a Resume that another process's live run
refuses, shown in place."""

from __future__ import annotations

from PySide6.QtCore import Qt

from desktop.app import engine_threads
from desktop.pages.training.page import describe_summary
from desktop.settings.dialog import SettingsDialog
from desktop.widgets.training_settings import TrainingSettings
from engine.api.session import ModelDescription
from engine.api.threads import cores, shared_threads
from engine.model.chat import ENCODE_CHUNK
from tests.desktop.conftest import SENTIMENT, write_jsonl, writer
from tests.desktop.helpers import QUICK, TRAIN_MS, add_task_with_data
from tests.engine.library.test_library_run_owner import holder


def test_engine_threads_setting_restarts_the_engine_with_it(qtbot, offline_window, settings,
                                                           monkeypatch):
    session = offline_window.session
    assert session.worker_args()[-2:] == ["--threads", "shared"]
    restarts = []
    monkeypatch.setattr(session.engine, "restart", lambda args=None: restarts.append(args))
    session.model = ModelDescription(name="loaded")  # only a changed setting restarts it
    dialog = SettingsDialog(session, settings=settings)
    qtbot.addWidget(dialog)
    assert dialog.threads.value() == 0
    assert dialog.threads.text() == f"Automatic: {shared_threads()} of {cores()} cores"
    dialog.accept()
    assert restarts == []  # nothing changed
    dialog = SettingsDialog(session, settings=settings)
    qtbot.addWidget(dialog)
    dialog.threads.setValue(1)
    dialog.accept()
    assert restarts[-1][-2:] == ["--threads", "1"] and session.threads == 1
    assert engine_threads(settings) == 1  # and the next start reads it back
    settings.setValue("engine/threads", "lots")
    assert engine_threads(settings) == 0


def test_checkpoint_interval_is_a_training_setting(qtbot):
    widget = TrainingSettings([], [])
    qtbot.addWidget(widget)
    assert widget.config()["checkpoint_every"] == 50
    widget.checkpoint_every.setValue(0)
    assert widget.checkpoint_every.text() == "only at the start and when stopped"
    widget.checkpoint_every.setValue(3)
    assert widget.config()["checkpoint_every"] == 3


def test_the_desktops_engine_leaves_a_core_and_checkpoints_as_set(qtbot, window,
                                                                  sentiment_file):
    from engine.training.checkpointing import load_checkpoint

    assert window.session.model.threads == shared_threads()
    add_task_with_data(window, "checkpointed", sentiment_file)
    job = window.jobs.start("checkpointed", {**QUICK, "steps": 7, "eval_every": 0,
                                             "checkpoint_every": 3})
    with qtbot.waitSignal(window.jobs.sig_job_finished, timeout=TRAIN_MS):
        pass
    assert job.status == "done", job.message
    _, state = load_checkpoint(writer(window).checkpoint_dir(job.run_id))
    assert state["step"] == 6


def test_the_training_page_shows_rows_prepared_then_steps_and_rows_cut(qtbot, window,
                                                                       tmp_path):
    data = write_jsonl(tmp_path / "many.jsonl", SENTIMENT * 60)
    add_task_with_data(window, "prepared", data)
    rows = len(writer(window).examples("prepared", "train"))
    assert rows > ENCODE_CHUNK  # so the rows come in more than one chunk
    page = window.training
    seen = []

    def record(job) -> None:
        if job.task == "prepared":
            seen.append((job.preparing, job.total, page.progress.value(), page.stats.text(),
                         page.list.currentItem().text()))

    window.jobs.sig_job_changed.connect(record)
    try:
        job = window.jobs.start("prepared", {**QUICK, "steps": 2, "eval_every": 0,
                                             "max_length": 21})
        with qtbot.waitSignal(window.jobs.sig_job_finished, timeout=TRAIN_MS):
            pass
    finally:
        window.jobs.sig_job_changed.disconnect(record)
    assert job.status == "done", job.message
    preparing = [s for s in seen if s[0]]
    assert [s[3] for s in preparing][:2] == [f"preparing rows: {ENCODE_CHUNK:,} of {rows:,}",
                                             f"preparing rows: {rows:,} of {rows:,}"]
    assert preparing[0][2] == 1000 * ENCODE_CHUNK // rows
    assert all(s[1] == 0 and "preparing rows" in s[4] for s in preparing)
    # Rows never became the step total: steps counted to 2 once it started.
    assert {s[1] for s in seen if not s[0]} <= {0, 2} and job.total == 2
    # Every row of the tiny model's chat format is 22 tokens or more: all were cut to 21.
    cut = f"{rows:,} of {rows:,} training rows were longer than the row limit"
    assert cut in page.stats.text()
    summary = writer(window).get_run(job.run_id).summary  # the catalogue's run says it too
    assert cut in describe_summary(summary, "")


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
