"""A training job that starts in the worker reports its row preparation (``prepare``
progress) and answers quick requests between chunks of rows."""

from __future__ import annotations

import argparse
import io
import json

from engine.api.wire import Request
from engine.library import Library
from engine.model.chat import ENCODE_CHUNK
from engine.server.worker import Worker
from tests.conftest import TEST_DEVICE
from tests.engine.worker_fixtures import make_library, train_config, write_sentiment


def test_a_starting_job_sends_prepare_progress_and_answers_requests(tiny_model_dir, tiny_host,
                                                                     tmp_path):
    root = tmp_path / "library"
    make_library(root, tiny_host).close()
    lib = Library(root)
    lib.create_task("big", kind="classify", labels=["positive", "negative"],
                    data=write_sentiment(tmp_path / "big.jsonl", repeat=60))
    rows = len(lib.examples("big", "train"))
    assert rows > ENCODE_CHUNK
    out = io.StringIO()
    worker = Worker(argparse.Namespace(model=str(tiny_model_dir), device=TEST_DEVICE, dtype="auto",
                                       library=root, trust_remote_code=False), out=out)
    worker.scheduler.dispatch(Request("t", "train", {"task": "big",
                                                     "config": train_config(2)}))
    worker.scheduler.put(Request("p", "ping"))
    worker.scheduler.advance()  # the job starts: its rows are prepared
    seen = [json.loads(line) for line in out.getvalue().splitlines()]
    order = [(e["id"], e.get("kind", e["type"])) for e in seen if e.get("kind") != "load"]
    assert order == [("t", "queued"), ("t", "prepare"), ("p", "result"), ("t", "prepare"),
                     ("t", "started")]
    prepared = [(e["done"], e["total"]) for e in seen if e.get("kind") == "prepare"]
    assert prepared == [(ENCODE_CHUNK, rows), (rows, rows)]
