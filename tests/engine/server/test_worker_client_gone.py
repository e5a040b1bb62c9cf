"""When the client goes away (the desktop quits or dies), the worker checkpoints the running
job and stops: the run is interrupted and resumable, never 'failed'."""

from __future__ import annotations

import argparse
import io

from engine.api.wire import Request
from engine.library import Library
from engine.server.worker import Worker
from tests.engine.worker_fixtures import make_library, train_config


class ClosedPipe(io.StringIO):
    """An output whose reader has gone once ``close_after`` lines were written."""

    def __init__(self, close_after: int) -> None:
        super().__init__()
        self.left = close_after

    def write(self, text: str) -> int:
        if self.left <= 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.left -= 1
        return super().write(text)


def test_a_broken_pipe_stops_the_worker_and_leaves_the_run_resumable(tiny_model_dir,
                                                                     tiny_host, tmp_path):
    root = tmp_path / "library"
    make_library(root, tiny_host)
    out = ClosedPipe(close_after=5)  # queued, prepare, started, two steps; then it is gone
    worker = Worker(argparse.Namespace(model=str(tiny_model_dir), device="cpu", dtype="auto",
                                       library=root, trust_remote_code=False), out=out)
    worker.scheduler.put(Request("t", "train", {"task": "sent", "config": train_config(500)}))
    worker.scheduler.run()  # returns by itself: no shutdown request, no end of input
    assert worker.client_gone and not worker.scheduler.jobs
    run = Library(root).list_runs("sent")[0]
    assert run.status == "cancelled" and run.summary["resumable"] is True
    assert run.summary["interrupted"] == "the desktop or client went away"
    assert 0 < run.summary["steps"] < 500 and "error" not in run.summary
