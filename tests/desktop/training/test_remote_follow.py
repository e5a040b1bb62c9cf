"""A run on a remote engine (a real sshd on localhost) outlives a dropped connection: the
desktop says so, and once the engine is restarted it follows the run again to its end."""

from __future__ import annotations

import os
import signal
import subprocess

from desktop.jobs import JobState, JobTracker
from desktop.pages.training.page import job_text
from engine.api.session import JobLine, JobsListing
from tests.desktop.conftest import ENGINE_START_MS
from tests.desktop.settings.test_gpu_engine_panel import session_on, wait_ready
from tests.engine.worker_fixtures import train_config, write_sentiment


def _remote_session(qtbot, model, library, address):
    session = session_on(model, library)
    session.engine_address = address
    session.engine.worker_args = session.worker_args()
    tracker = JobTracker(session)
    session.engine.start()
    wait_ready(qtbot, session.engine)
    return session, tracker


def _create_task(qtbot, session, tmp_path) -> None:
    created = []
    session.op("create_task", {"task": "sent", "kind": "classify",
                               "labels": ["positive", "negative"],
                               "data": str(write_sentiment(tmp_path / "s.jsonl"))}
               ).on_success(created.append).run()
    qtbot.waitUntil(lambda: bool(created), timeout=ENGINE_START_MS)


def test_a_run_is_followed_again_after_the_connection_drops(qtbot, tiny_model_dir, tmp_path,
                                                            ssh_address):
    session, tracker = _remote_session(qtbot, tiny_model_dir, tmp_path / "library",
                                       ssh_address)
    _create_task(qtbot, session, tmp_path)
    job = tracker.start("sent", train_config(100))
    qtbot.waitUntil(lambda: job.step >= 1, timeout=ENGINE_START_MS)
    ssh = subprocess.run(["pgrep", "-P", str(session.engine.pid())], capture_output=True,
                         text=True).stdout.split()
    os.kill(int(ssh[0]), signal.SIGKILL)  # the network drops
    qtbot.waitUntil(lambda: not job.active, timeout=ENGINE_START_MS)
    assert job.status == "interrupted" and "the run goes on" in job.message
    session.engine.start()  # the user restarts the engine: it connects again
    # The run is followed again (or, had it ended meanwhile, its end read from the library).
    qtbot.waitUntil(lambda: job.active or job.status == "done", timeout=ENGINE_START_MS)
    assert job.message == "" and tracker.jobs == [job]
    qtbot.waitUntil(lambda: job.status == "done", timeout=4 * ENGINE_START_MS)
    assert job.version == 1 and job.step == 100
    assert [v.number for v in session.library.list_versions("sent")] == [1]
    session.engine.stop()


def test_a_second_desktop_sees_the_first_ones_run(qtbot, tiny_model_dir, tmp_path,
                                                  ssh_address, monkeypatch):
    monkeypatch.setattr("desktop.jobs.POLL_MS", 300)
    first, mine = _remote_session(qtbot, tiny_model_dir, tmp_path / "library", ssh_address)
    _create_task(qtbot, first, tmp_path)
    second, theirs = _remote_session(qtbot, tiny_model_dir, tmp_path / "library",
                                     ssh_address)
    job = mine.start("sent", train_config(60))  # started after the second desktop connected
    qtbot.waitUntil(lambda: bool(theirs.jobs) and theirs.jobs[0].active,
                    timeout=ENGINE_START_MS)
    seen = theirs.jobs[0]
    assert (seen.task, seen.kind, seen.watching) == ("sent", "train", seen.listed_as)
    assert theirs.pending() == []  # another desktop's job: never queued again from here
    qtbot.waitUntil(lambda: job.status == "done" and seen.status == "done",
                    timeout=4 * ENGINE_START_MS)
    assert seen.version == job.version == 1 and len(theirs.jobs) == 1
    for session in (second, first):
        session.engine.stop()


def test_a_job_says_which_of_the_hosts_gpus_runs_it(tiny_model_dir, tmp_path):
    session = session_on(tiny_model_dir, tmp_path / "library")
    tracker = JobTracker(session)
    job = JobState(task="sent", status="running", request_id="r7")
    tracker.jobs.append(job)
    tracker.follow_running(JobsListing([JobLine(job="r7", op="train", task="sent",
                                                state="running", worker=1, gpu="1")]))
    assert job.gpu == "1" and tracker.jobs == [job]  # its own job: placed, not followed twice
    assert job_text(job).endswith("· GPU 1")
    job.status = "done"
    assert "GPU" not in job_text(job)


def test_a_run_that_ended_while_disconnected_shows_its_end(tiny_model_dir, tiny_host, tmp_path):
    from engine.library import Library
    from tests.engine.worker_fixtures import make_library

    make_library(tmp_path / "library", tiny_host)  # "sent" has a version 1
    lib = Library(tmp_path / "library")
    run = lib.create_run("sent", {})
    lib.finish_run(run.id, "done", version_id=lib.get_version("sent", 1).id)
    session = session_on(tiny_model_dir, tmp_path / "library")
    tracker = JobTracker(session)
    job = JobState(task="sent", status="interrupted", run_id=run.id, total=40, step=12,
                   message="Interrupted: the connection was lost.")
    tracker.jobs.append(job)
    finished = []
    tracker.sig_job_finished.connect(finished.append)
    tracker.follow_running(JobsListing([]))  # the host runs nothing any more
    assert (job.status, job.version, job.step, job.message) == ("done", 1, 40, "")
    assert finished == [job]

