"""The worker in-process: a run another live process trains is neither resumable nor listed."""

from __future__ import annotations

import argparse
import io
import json

from engine.api.wire import Request
from engine.cli import main
from engine.library import Library
from engine.server.worker import Worker
from tests.conftest import TEST_DEVICE
from tests.engine.library.test_library_run_owner import holder


def test_resume_of_a_run_held_elsewhere_is_refused_and_not_listed(tmp_path):
    root = tmp_path / "library"
    lib = Library(root)
    lib.create_task("t")
    held = lib.create_run("t", {})
    lib.finish_run(held.id, "cancelled")
    free = lib.create_run("t", {})
    lib.finish_run(free.id, "cancelled")
    out = io.StringIO()
    worker = Worker(argparse.Namespace(model="unused", device=TEST_DEVICE, dtype="auto",
                                       library=root, trust_remote_code=False), out=out)
    proc = holder(root, held.id)
    try:
        worker.scheduler.dispatch(Request("r", "resume", {"run_id": held.id}))
        worker.scheduler.dispatch(Request("j", "jobs"))
    finally:
        proc.stdin.close()
        proc.wait()
    events = {e["id"]: e for e in map(json.loads, out.getvalue().splitlines())}
    assert events["r"]["type"] == "error"
    assert f"Run {held.id} is being trained by process {proc.pid}" in events["r"]["message"]
    assert [r["run_id"] for r in events["j"]["resumable"]] == [free.id]
    assert not worker.scheduler.jobs


def test_cli_resume_of_a_run_held_elsewhere_is_refused(tmp_path, capsys):
    root = tmp_path / "library"
    lib = Library(root)
    lib.create_task("t")
    run = lib.create_run("t", {})
    lib.finish_run(run.id, "cancelled")
    proc = holder(root, run.id)
    try:
        # Refused before the model loads (this model spec does not even exist).
        code = main(["--library", str(root), "--model", "/no/model", "train", "t", "--resume",
                     str(run.id)])
    finally:
        proc.stdin.close()
        proc.wait()
    assert code == 2
    assert f"is being trained by process {proc.pid}" in capsys.readouterr().err
