"""The worker in-process: requests that arrive during a training step are answered inside it."""

from __future__ import annotations

import argparse
import io
import json

from engine.api.wire import Request
from engine.library import Library
from engine.server.worker import Worker
from engine.training.checkpointing import load_checkpoint
from tests.conftest import TEST_DEVICE
from tests.engine.worker_fixtures import make_library, train_config


def _worker(tiny_model_dir, tiny_host, tmp_path) -> tuple[Worker, io.StringIO]:
    root = tmp_path / "library"
    make_library(root, tiny_host)
    out = io.StringIO()
    worker = Worker(argparse.Namespace(model=str(tiny_model_dir), device=TEST_DEVICE,
                                       dtype="auto", library=root, trust_remote_code=False),
                    out=out)
    worker.scheduler.dispatch(Request("warm", "ping"))
    return worker, out


def test_requests_during_a_step_are_answered_between_its_layers(tiny_model_dir, tiny_host,
                                                                tmp_path):
    worker, out = _worker(tiny_model_dir, tiny_host, tmp_path)
    root = tmp_path / "library"
    sched = worker.scheduler
    # Eager steps: a step replayed from CUDA graphs answers its requests after it.
    sched.dispatch(Request("t", "train", {"task": "sent",
                                          "config": train_config(50, graphs=False)}))
    sched.advance()  # the job starts
    sched.advance()  # step 1
    for req in (Request("g", "generate", {"text": "hello", "task": "echo", "max_new_tokens": 3}),
                Request("c", "cancel", {"job": "t"}),
                Request("p", "ping")):
        sched.put(req)
    sched.advance()  # step 2, with the requests waiting when it begins

    def events() -> list[tuple[str, str, str | None]]:
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        return [(e["id"], e["type"], e.get("kind")) for e in lines]

    seen = events()
    step2 = seen.index(("t", "progress", "step"), seen.index(("t", "progress", "step")) + 1)
    # generate and ping were answered inside step 2, before its progress event...
    assert seen.index(("g", "result", None)) < step2 and seen.index(("p", "result", None)) < step2
    assert ("g", "token", None) in seen[:step2]
    # ...and cancel waits for the step boundary.
    assert [getattr(item, "id", None) for item in sched.backlog] == ["c"]
    assert not any(rid == "c" for rid, _, _ in seen)
    sched.dispatch(sched.backlog.popleft())
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    final = next(e for e in lines if e["id"] == "t" and e["type"] == "result")
    assert final["status"] == "cancelled" and final["step"] == 2
    assert next(e for e in lines if e["id"] == "c")["was"] == "running"
    run_id = final["run_id"]
    _, state = load_checkpoint(Library(root).checkpoint_dir(run_id))
    assert state["step"] == 2 and Library(root).get_run(run_id).status == "cancelled"


def test_requests_arriving_during_a_backward_on_a_device_thread_wait(tiny_model_dir, tiny_host,
                                                                     tmp_path, monkeypatch):
    """As on CUDA, the backward pass runs on another thread (here: autograd.grad is made to);
    requests that arrive during it (``jobs`` reads the catalogue's SQLite connection, which
    refuses a second thread) are answered on the worker's thread after it, not from it, and
    the worker keeps training and answering."""
    import threading

    import torch

    root = tmp_path / "library"
    make_library(root, tiny_host)
    out = io.StringIO()
    worker = Worker(argparse.Namespace(model=str(tiny_model_dir), device=TEST_DEVICE, dtype="auto",
                                       library=root, trust_remote_code=False), out=out)
    sched = worker.scheduler
    real_grad = torch.autograd.grad
    arrived: list[str] = []

    def grad_on_a_device_thread(*args, **kwargs):
        result: dict = {}

        def backward() -> None:
            n = len(arrived)
            arrived.append(f"j{n}")
            sched.put(Request(f"j{n}", "jobs"))  # arrives while the backward runs
            result["grads"] = real_grad(*args, **kwargs)

        thread = threading.Thread(target=backward)
        thread.start()
        thread.join()
        return result["grads"]

    monkeypatch.setattr(torch.autograd, "grad", grad_on_a_device_thread)
    sched.dispatch(Request("t", "train", {"task": "sent",
                                          "config": train_config(3, graphs=False)}))
    while sched.jobs:
        sched.advance()
    sched.put(Request("p", "ping"))
    sched.dispatch(sched._next(block=False))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    answers = {e["id"]: e for e in lines if e["type"] in ("result", "error")}
    assert arrived and all(answers[rid]["type"] == "result" for rid in arrived), answers
    assert answers["t"]["status"] == "done" and answers["p"]["pong"] is True



def test_a_ping_during_a_long_prefill_is_answered_inside_it(tiny_model_dir, tiny_host,
                                                            tmp_path):
    worker, out = _worker(tiny_model_dir, tiny_host, tmp_path)
    sched = worker.scheduler
    sched.put(Request("p", "ping"))
    sched.put(Request("s", "score", {"task": "sent", "texts": ["great"]}))
    sched.dispatch(Request("g", "generate", {"text": "hello " * 400, "task": "echo",
                                             "max_new_tokens": 2}))
    ids = [(e["id"], e["type"]) for e in map(json.loads, out.getvalue().splitlines())]
    # The ping was answered from inside the generate's model pass, before its result; the
    # score (it runs the model) waits its turn in the backlog.
    assert ids.index(("p", "result")) < ids.index(("g", "result"))
    assert [getattr(item, "id", None) for item in sched.backlog] == ["s"]


def test_a_cancel_ends_a_prefill_within_a_layer(tiny_model_dir, tiny_host, tmp_path):
    from engine.forward.breaks import decoder_layers

    worker, out = _worker(tiny_model_dir, tiny_host, tmp_path)
    sched = worker.scheduler
    host = worker.ctx.ensure_model()
    layers = decoder_layers(host.model)
    ran_last = []

    def cancel_now(*_args) -> None:  # as the reader thread does when the cancel line arrives
        sched.put(Request("c", "cancel", {"job": "g"}))

    first = layers[0].register_forward_pre_hook(cancel_now)
    last = layers[-1].register_forward_hook(lambda *_a: ran_last.append(1))
    try:
        sched.dispatch(Request("g", "generate", {"text": "hello " * 400, "task": "echo",
                                                 "max_new_tokens": 5}))
    finally:
        first.remove()
        last.remove()
    result = next(e for e in map(json.loads, out.getvalue().splitlines())
                  if e["id"] == "g" and e["type"] == "result")
    assert result["status"] == "cancelled"
    assert result["results"][0]["finish_reason"] == "cancelled"
    assert not ran_last  # the prefill stopped before its last layer ran
