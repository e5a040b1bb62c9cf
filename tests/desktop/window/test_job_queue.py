"""The job queue survives a restart of the app."""

from __future__ import annotations

from desktop.main_window import quit_text
from engine.library.pending import PendingJob, PendingJobs
from tests.desktop.conftest import ENGINE_START_MS, make_window
from tests.desktop.helpers import QUICK, TRAIN_MS, add_task_with_data


def _stop_all(qtbot, window) -> None:
    for job in list(window.jobs.jobs):
        qtbot.waitUntil(lambda job=job: not job.active or bool(job.request_id), timeout=TRAIN_MS)
        window.jobs.cancel(job)
    qtbot.waitUntil(lambda: not any(j.active for j in window.jobs.jobs), timeout=TRAIN_MS)


def test_a_queued_and_a_running_job_come_back_after_a_restart(qtbot, window, sentiment_file,
                                                              settings, tiny_model_dir):
    add_task_with_data(window, "long", sentiment_file)
    add_task_with_data(window, "next", sentiment_file)
    running = window.jobs.start("long", {**QUICK, "steps": 100_000})
    queued = window.jobs.start("next", {**QUICK, "steps": 7})
    qtbot.waitUntil(lambda: running.status == "running" and running.run_id is not None
                    and running.step >= 2, timeout=TRAIN_MS)
    assert queued.status == "queued"
    question = quit_text([running, queued])
    assert "long (train, step" in question and "goes on from it" in question
    assert "next (train, queued): queued again with its settings" in question

    pending = window.jobs.freeze()  # what quitting does before the engine stops
    assert pending == [PendingJob("resume", "long", {"run_id": running.run_id}),
                       PendingJob("train", "next", queued.args)]
    _stop_all(qtbot, window)  # the jobs stop as at quit; the list on disk stays
    root = window.session.library.root
    assert PendingJobs(root).read() == pending

    again = make_window(qtbot, root, settings, str(tiny_model_dir))
    try:
        with qtbot.waitSignal(again.session.sig_model_changed, timeout=ENGINE_START_MS,
                              check_params_cb=bool):
            again.engine.start()
        qtbot.waitUntil(lambda: len(again.jobs.jobs) == 2, timeout=ENGINE_START_MS)
        resumed, requeued = again.jobs.jobs
        assert (resumed.kind, resumed.run_id) == ("resume", running.run_id)
        assert (requeued.task, requeued.args) == ("next", queued.args)
        qtbot.waitUntil(lambda: resumed.status == "running" and resumed.step > 0,
                        timeout=TRAIN_MS)  # from its checkpoint, not from step 0
        _stop_all(qtbot, again)
        assert PendingJobs(root).read() == []  # nothing left once they all ended
    finally:
        again.jobs.jobs.clear()
        again.engine.stop()
        again.close()


def test_a_damaged_pending_list_is_left_out_not_raised(tmp_path):
    (tmp_path / "pending_jobs.json").write_text('{"jobs": [{"op": "rm -rf", "task": "x", '
                                                '"args": {}}, 7, {"op": "train"}]')
    assert PendingJobs(tmp_path).read() == []
    (tmp_path / "pending_jobs.json").write_text("{not json")
    assert PendingJobs(tmp_path).read() == []
    jobs = [PendingJob("train", "t", {"task": "t", "config": {"steps": 3}})]
    PendingJobs(tmp_path).write(jobs)
    assert PendingJobs(tmp_path).read() == jobs
    PendingJobs(tmp_path).write([])
    assert not (tmp_path / "pending_jobs.json").exists()
