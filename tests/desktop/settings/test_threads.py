"""Settings → threads: the engine restarts with the thread setting and leaves a core by default."""

from __future__ import annotations

from desktop.app import engine_threads
from desktop.settings.dialog import SettingsDialog
from engine.api.session import ModelDescription
from engine.api.threads import cores, shared_threads
from tests.desktop.conftest import writer
from tests.desktop.helpers import QUICK, TRAIN_MS, add_task_with_data


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
