"""The client: clean shutdown, a dead worker noticed, restart, and recovery after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from engine.errors import PromptbankError
from engine.library import Library
from engine.server.client import Client, RequestFailed, WorkerDied, worker_argv
from tests.conftest import REAL_CACHE, TEST_DEVICE
from tests.engine.worker_fixtures import make_library, start_worker, train_config


@pytest.fixture
def library(tmp_path, tiny_host):
    root = tmp_path / "library"
    make_library(root, tiny_host)
    return root


def test_context_manager_shuts_the_worker_down(tiny_model_dir, library):
    with start_worker(tiny_model_dir, library) as client:
        assert client.call("ping") == {"pong": True}
        proc = client.proc
    assert proc.returncode == 0
    assert not client.alive
    with pytest.raises(WorkerDied, match="not running"):
        client.call("ping")


def test_attach_to_a_running_worker(tiny_model_dir, library):
    env = {**os.environ, "PROMPTBANK_CACHE": REAL_CACHE, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(worker_argv(str(tiny_model_dir), library, TEST_DEVICE),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env)
    client = Client.attach(proc.stdin, proc.stdout, timeout=60)
    assert client.hello.data["protocol"] == 1
    assert client.call("ping") == {"pong": True}
    with pytest.raises(PromptbankError, match="attached"):
        client.restart()
    client.close()
    assert proc.wait(10) == 0


def test_a_worker_that_cannot_start_is_reported(tmp_path):
    client = Client([sys.executable, "-c", "import sys; print('oops', file=sys.stderr)"],
                    timeout=30)
    with pytest.raises(WorkerDied, match=r"did not start.*oops"):
        client.launch()


def test_sigkill_mid_training_then_resume_from_the_checkpoint(tiny_model_dir, library):
    client = start_worker(tiny_model_dir, library)
    try:
        train = client.request("train", {"task": "sent", "config": train_config(20)})
        run_id = None
        last = 0
        for event in train:
            run_id = event.data.get("run_id", run_id)
            last = event.data.get("step", last) if event.data.get("kind") == "step" else last
            if last >= 7:
                break
        os.kill(client.proc.pid, signal.SIGKILL)
        with pytest.raises(WorkerDied, match="stopped while request"):
            for _ in train:
                pass
        with pytest.raises(WorkerDied):
            client.call("ping")
        assert not client.alive

        lib = Library(library)
        assert lib.get_run(run_id).status == "running"  # interrupted: nobody closed it
        versions_before = len(lib.list_versions("sent"))

        client.restart()
        assert client.call("ping") == {"pong": True}
        listing = client.call("jobs")
        assert listing["jobs"] == []
        assert {"run_id": run_id, "task": "sent", "status": "running",
                "joint_id": None} in listing["resumable"]

        resume = client.request("resume", {"run_id": run_id})
        events = list(resume)
        started = next(e for e in events if e.data.get("kind") == "started")
        resumed_at = started.data["step"]
        # Nothing is lost beyond the last checkpoint (every 5 steps).
        assert resumed_at % 5 == 0 and last - 5 < resumed_at <= last
        steps = [e.data["step"] for e in events if e.data.get("kind") == "step"]
        assert steps == list(range(resumed_at + 1, 21))
        done = events[-1].data
        assert done["status"] == "done" and done["run_id"] == run_id and done["steps"] == 20
        with pytest.raises(RequestFailed, match="already finished"):
            client.call("resume", run_id=run_id)
    finally:
        client.close()
    lib = Library(library)
    run = lib.get_run(run_id)
    assert run.status == "done" and run.version_id is not None
    versions = lib.list_versions("sent")
    assert len(versions) == versions_before + 1 and versions[-1].run_id == run_id
    assert lib.version_by_id(run.version_id).number == done["version"]
    lib.read_version_bytes(versions[-1])  # the file matches its checksum


def test_shutdown_checkpoints_the_running_job(tiny_model_dir, library):
    client = start_worker(tiny_model_dir, library)
    train = client.request("train", {"task": "sent", "config": train_config(5000)})
    run_id = next(e.data["run_id"] for e in train if e.data.get("kind") == "started")
    next(e for e in train if e.data.get("kind") == "step")
    client.close()
    final = list(train)[-1]
    assert final.type == "result" and final.data["status"] == "cancelled"
    assert Library(library).get_run(run_id).status == "cancelled"
