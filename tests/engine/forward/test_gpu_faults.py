"""Out of memory in a training step or a request: that job or request fails with a message
that says what to do, the memory it held is given back, and the worker keeps serving.

Injected on every device; a real CUDA out-of-memory (the GPU filled by a ballast tensor) runs
where the test device is a GPU."""

from __future__ import annotations

import argparse
import io
import json

import pytest
import torch

from engine.api.wire import Request
from engine.errors import PromptbankError
from engine.server.worker import Worker
from engine.training.config import TrainConfig
from engine.training.job import TrainingJob
from tests.conftest import TEST_DEVICE
from tests.engine.train_helpers import make_library
from tests.engine.worker_fixtures import make_library as make_worker_library


def _worker(tiny_model_dir, root) -> tuple[Worker, io.StringIO]:
    out = io.StringIO()
    worker = Worker(argparse.Namespace(model=str(tiny_model_dir), device=TEST_DEVICE,
                                       dtype="auto", library=root, trust_remote_code=False),
                    out=out)
    return worker, out


def _answers(out: io.StringIO) -> dict[str, dict]:
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    return {e["id"]: e for e in lines if e["type"] in ("result", "error")}


def test_an_out_of_memory_request_fails_alone_and_memory_is_given_back(
        tiny_model_dir, tiny_host, tmp_path, monkeypatch):
    root = tmp_path / "library"
    make_worker_library(root, tiny_host)
    worker, out = _worker(tiny_model_dir, root)
    released: list[int] = []
    monkeypatch.setattr("engine.server.worker.release_memory", lambda: released.append(1))
    runtime = worker.ctx.runtime("setup")
    real = runtime.generate
    calls = [0]

    def once_out_of_memory(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(runtime, "generate", once_out_of_memory)
    for req in (Request("g1", "generate", {"text": "hello", "task": "echo", "max_new_tokens": 2}),
                Request("g2", "generate", {"text": "hello", "task": "echo", "max_new_tokens": 2}),
                Request("p", "ping")):
        worker.scheduler.dispatch(req)
    answers = _answers(out)
    assert answers["g1"]["type"] == "error"
    assert answers["g1"]["message"].startswith("Out of memory")
    assert "fewer rows" in answers["g1"]["message"]
    assert released == [1]
    assert answers["g2"]["type"] == "result" and answers["p"]["pong"] is True


@pytest.mark.skipif(TEST_DEVICE != "cuda", reason="a real CUDA out-of-memory needs a GPU")
def test_a_real_cuda_out_of_memory_in_a_step_fails_the_run_and_frees_the_gpu(tiny_host,
                                                                             tmp_path):
    lib = make_library(tmp_path)
    job = TrainingJob.start(lib, tiny_host, "sentiment", TrainConfig(
        method="prompt", length=4, steps=5, batch_size=8, micro_batch=1, eval_every=0))
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    # The allocator may hold only what it holds now (plus 1 MiB): the step cannot fit.
    torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_reserved() + (1 << 20))
                                               / total)
    try:
        with pytest.raises(PromptbankError, match="Out of memory at batch size 8") as info:
            job.step()
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert "--batch-size 4" in info.value.hint
    assert lib.get_run(job.run_id).status == "failed"
    torch.cuda.synchronize()
    again = TrainingJob.start(lib, tiny_host, "sentiment", TrainConfig(
        method="prompt", length=4, steps=2, batch_size=8, eval_every=0))
    assert again.step()[0].loss > 0
