"""A run on a remote engine (a real sshd on localhost) outlives a dropped connection: the
desktop says so, and once the engine is restarted it follows the run again to its end."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from desktop.jobs import JobTracker
from tests.desktop.conftest import ENGINE_START_MS
from tests.desktop.settings.test_gpu_engine_panel import session_on, wait_ready
from tests.engine.remote.helpers import host_program, stop_host_workers
from tests.engine.worker_fixtures import train_config, write_sentiment


@pytest.fixture
def address(sshd, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTBANK_SSH", sshd.ssh)
    yield f"ssh://{sshd.alias}{host_program(tmp_path, tmp_path / 'host')}"
    stop_host_workers(tmp_path / "host")


def test_a_run_is_followed_again_after_the_connection_drops(qtbot, tiny_model_dir, tmp_path,
                                                            address):
    session = session_on(tiny_model_dir, tmp_path / "library")
    session.engine_address = address
    session.engine.worker_args = session.worker_args()
    tracker = JobTracker(session)
    session.engine.start()
    wait_ready(qtbot, session.engine)
    created = []
    session.op("create_task", {"task": "sent", "kind": "classify",
                               "labels": ["positive", "negative"],
                               "data": str(write_sentiment(tmp_path / "s.jsonl"))}
               ).on_success(created.append).run()
    qtbot.waitUntil(lambda: bool(created), timeout=ENGINE_START_MS)
    job = tracker.start("sent", train_config(60))
    qtbot.waitUntil(lambda: job.step >= 1, timeout=ENGINE_START_MS)
    ssh = subprocess.run(["pgrep", "-P", str(session.engine.pid())], capture_output=True,
                         text=True).stdout.split()
    os.kill(int(ssh[0]), signal.SIGKILL)  # the network drops
    qtbot.waitUntil(lambda: not job.active, timeout=ENGINE_START_MS)
    assert job.status == "interrupted" and "the run goes on" in job.message
    session.engine.start()  # the user restarts the engine: it connects again
    qtbot.waitUntil(lambda: job.active, timeout=ENGINE_START_MS)
    assert job.message == "" and job in tracker.jobs and len(tracker.jobs) == 1
    qtbot.waitUntil(lambda: job.status == "done", timeout=4 * ENGINE_START_MS)
    assert job.version == 1 and job.step == 60
    assert [v.number for v in session.library.list_versions("sent")] == [1]
    session.engine.stop()
