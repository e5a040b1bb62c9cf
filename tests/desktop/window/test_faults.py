"""Faults: a broken binding, crash logs, a killed engine, the desktop going away, a soak."""

from __future__ import annotations

import ctypes
import faulthandler
import sys

from PySide6.QtWidgets import QMessageBox

from desktop.binding_check import PROBE_CALLS, binding_problem, dropped_references
from desktop.crash_log import FAULTS, MARKER, CrashLog
from tests.desktop.helpers import TRAIN_MS, add_task_with_data

SOAK_JOBS = 30


def test_a_binding_that_drops_references_is_named_with_its_remedy(qapp):
    none = ctypes.py_object(None)
    taken: list[int] = []

    def leaky() -> None:  # what PySide6 6.12.0 does on every empty QVariant it returns
        ctypes.pythonapi.Py_DecRef(none)
        taken.append(1)

    try:
        assert dropped_references(leaky) == PROBE_CALLS
        assert "pyside6-essentials==6.11.3" in binding_problem(leaky)
    finally:
        for _ in taken:
            ctypes.pythonapi.Py_IncRef(none)
    assert dropped_references(lambda: None) == 0
    assert binding_problem(lambda: None) == ""


def test_faults_go_to_the_log_folder_and_the_next_start_reports_them(tmp_path, offline_window,
                                                                    qtbot):
    log = CrashLog(tmp_path / "logs")
    try:
        assert log.start() is None  # a first start
        assert (tmp_path / "logs" / MARKER).exists()
        faulthandler.dump_traceback(file=log._file)  # what a fatal error writes
        log._file.flush()
        # The process dies here: no stop(), the marker stays.
        again = CrashLog(tmp_path / "logs")
        last = again.start()
        assert last is not None and last.log is not None and last.log.name.startswith("crash-")
        assert "most recent call first" in last.log.read_text()
        box = offline_window.report_unexpected_exit(last)
        qtbot.addWidget(box)
        assert "closed unexpectedly" in box.text() and str(last.log) in box.informativeText()
        assert any(b.text() == "Open the log" for b in box.buttons())
        box.done(QMessageBox.StandardButton.Close)
        again.stop()
        assert not (tmp_path / "logs" / MARKER).exists()
        assert not (tmp_path / "logs" / FAULTS).exists()  # nothing was written: removed
        assert CrashLog(tmp_path / "logs").start() is None  # a clean exit reports nothing
    finally:
        faulthandler.enable(file=sys.stderr)  # pytest's own, as before


def test_when_the_desktop_goes_away_the_run_is_interrupted_and_resumable(qtbot, window,
                                                                         sentiment_file):
    add_task_with_data(window, "orphan", sentiment_file)
    job = window.jobs.start("orphan", {"method": "prompt", "length": 4, "init": "random",
                                       "steps": 5000, "batch_size": 4, "eval_every": 0})
    qtbot.waitUntil(lambda: job.step >= 1, timeout=TRAIN_MS)
    with qtbot.waitSignal(window.engine.sig_state, timeout=30_000,
                          check_params_cb=lambda state, _d: state in ("error", "stopped")):
        window.engine.proc.closeWriteChannel()  # as when the desktop process dies
    run = window.session.library.get_run(job.run_id)
    assert run.status == "cancelled" and run.summary["resumable"] is True
    assert run.summary["interrupted"] and "error" not in run.summary
    assert job.status == "interrupted" and "resumed" in job.message
    window.training.select_job(job)
    assert window.training.resume_button.isEnabled()
    with qtbot.waitSignal(window.session.sig_model_changed, timeout=90_000,
                          check_params_cb=lambda model: model is not None):
        window.restart_engine()
    resumed = window.jobs.resume(job.run_id, "orphan")
    qtbot.waitUntil(lambda: resumed.status == "running" and bool(resumed.losses),
                    timeout=TRAIN_MS)
    # The resumed run's curve starts with what it logged before the interruption.
    assert resumed.losses[0][0] == 1 and resumed.start_step >= 1
    with qtbot.waitSignal(window.jobs.sig_job_finished, timeout=30_000):
        window.jobs.cancel(resumed)
    assert resumed.status == "cancelled"


def test_soak_thirty_short_jobs_with_curves(qtbot, window, sentiment_file):
    """30 jobs queued at once; some cancelled while queued, some while running, the rest
    finish; the training page shows each one's curves as it runs."""
    add_task_with_data(window, "soak", sentiment_file)
    page = window.training
    window.tabs.setCurrentWidget(page)
    config = {"method": "prompt", "length": 2, "init": "random", "steps": 3,
              "batch_size": 4, "eval_every": 2, "eval_size": 4, "checkpoint_every": 0}
    jobs = [window.jobs.start("soak", {**config, "seed": i}) for i in range(SOAK_JOBS)]
    drawn: set[str] = set()

    def follow(job) -> None:
        if job.status == "running":
            page.select_job(job)
            page.curves.flush()
            if page.curves.loss_curves:
                drawn.add(job.request_id)
        if job.status == "running" and jobs.index(job) % 5 == 1 and job.step >= 1:
            window.jobs.cancel(job)

    window.jobs.sig_job_changed.connect(follow)
    try:
        for job in jobs[3::5]:  # cancelled while they wait
            window.jobs.cancel(job)
        qtbot.waitUntil(lambda: not any(j.active for j in jobs), timeout=20 * TRAIN_MS)
    finally:
        window.jobs.sig_job_changed.disconnect(follow)
    statuses = [j.status for j in jobs]
    assert "failed" not in statuses and "interrupted" not in statuses, [
        (j.status, j.message) for j in jobs]
    done = [j for j in jobs if j.status == "done"]
    assert statuses.count("cancelled") >= len(jobs[3::5])
    assert len(done) >= SOAK_JOBS // 2
    assert {j.version for j in done} == set(range(1, len(done) + 1))
    assert drawn, "no job was drawn while it ran"
    assert window.engine.running and window.isVisible()


def test_kill_engine_shows_banner_and_restart(qtbot, window):
    assert not window.banner.isVisible()
    with qtbot.waitSignal(window.engine.sig_crashed, timeout=10_000):
        window.engine.kill()
    assert window.banner.isVisible()
    assert "killed" in window.banner.label.text() or "crashed" in window.banner.label.text()
    assert window.status.state.text().startswith("Engine: error")
    with qtbot.waitSignal(window.session.sig_model_changed, timeout=90_000,
                          check_params_cb=bool):
        window.banner.restart.click()
    assert not window.banner.isVisible()
    assert window.status.state.text() == "Engine: ready"
