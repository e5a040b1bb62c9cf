"""Break points between decoder layers, where the worker answers requests inside a step."""

from __future__ import annotations

import pytest
import torch

from engine.forward.breaks import layer_breaks
from engine.prompts.soft_prompt import SoftPrompt
from engine.serving.runtime import GenRow, Runtime
from engine.training.config import TrainConfig
from engine.training.job import TrainingJob, run_job
from tests.engine.train_helpers import make_library, sentiment_rows, write_jsonl


def _forward(host, *, grad: bool) -> torch.Tensor:
    ids = host.tokenizer("hello world", return_tensors="pt")["input_ids"].to(host.device)
    embeds = host.embeddings()(ids).detach().requires_grad_(grad)
    return host.model(inputs_embeds=embeds).logits


def test_a_break_comes_before_each_layer_and_after_each_layers_backward(tiny_host):
    layers = tiny_host.model.config.num_hidden_layers
    # A GPU's backward runs on autograd's device thread, where breaks are skipped.
    backward = layers if tiny_host.device.type == "cpu" else 0
    trace: list[str] = []
    with layer_breaks(tiny_host.model, lambda: trace.append("break")):
        logits = _forward(tiny_host, grad=True)
        assert len(trace) == layers
        logits.sum().backward()
        assert len(trace) == layers + backward
        with torch.no_grad():
            _forward(tiny_host, grad=False)
        assert len(trace) == 2 * layers + backward
        late = _forward(tiny_host, grad=True)
    trace.clear()
    late.sum().backward()  # the graph outlives the block: no more breaks
    _forward(tiny_host, grad=False)
    assert trace == []


def test_a_backward_on_another_thread_never_serves(tiny_host):
    """On CUDA, autograd runs the backward pass on a device thread; breaks reached there must
    not serve (serving touches SQLite and the worker's state). Here the backward is run on a
    second thread, as CUDA does: its breaks are skipped, the caller's forward breaks stay."""
    import threading

    threads: list[int] = []
    with layer_breaks(tiny_host.model, lambda: threads.append(threading.get_ident())):
        logits = _forward(tiny_host, grad=True)
        worker = threading.Thread(target=lambda: logits.sum().backward())
        worker.start()
        worker.join()
    layers = tiny_host.model.config.num_hidden_layers
    assert threads == [threading.get_ident()] * layers


def test_work_done_in_a_break_is_not_interrupted(tiny_host):
    calls: list[int] = []

    def serve() -> None:
        calls.append(1)
        with torch.no_grad():
            _forward(tiny_host, grad=False)  # its own layers make no breaks

    with layer_breaks(tiny_host.model, serve):
        _forward(tiny_host, grad=False)
    assert len(calls) == tiny_host.model.config.num_hidden_layers


def test_breaks_run_without_gradients_or_autocast(tiny_host):
    device = tiny_host.device.type
    modes: list[tuple[bool, bool]] = []

    def serve() -> None:
        modes.append((torch.is_grad_enabled(), torch.is_autocast_enabled(device)))

    with layer_breaks(tiny_host.model, serve), torch.autocast(device, dtype=torch.bfloat16):
        _forward(tiny_host, grad=True)
        assert torch.is_grad_enabled() and torch.is_autocast_enabled(device)
    assert modes == [(False, False)] * tiny_host.model.config.num_hidden_layers


def test_a_model_without_a_layer_list_gets_no_breaks():
    calls: list[int] = []
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    with layer_breaks(model, lambda: calls.append(1)):
        model(torch.ones(1, 2)).sum().backward()
    assert calls == []


@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_generating_inside_every_break_changes_no_step(tiny_host, tmp_path, method):
    def config() -> TrainConfig:
        # Eager steps (graphs=False): a step replayed from CUDA graphs has no breaks.
        return TrainConfig(method=method, length=3, steps=4, lr=0.1, batch_size=4,
                           micro_batch=3, eval_every=2, seed=5, graphs=False)

    quiet_lib = make_library(tmp_path / "quiet")
    quiet = run_job(TrainingJob.start(quiet_lib, tiny_host, "sentiment", config()))

    lib = make_library(tmp_path / "busy")
    runtime = Runtime(tiny_host, lib)
    answers: list[str] = []

    def serve() -> None:
        answers.append(runtime.generate([GenRow("hello there", max_new_tokens=2)])[0].text)

    job = TrainingJob.start(lib, tiny_host, "sentiment", config(), between=serve)
    events = [e for _ in range(4) for e in job.step(serve)]
    busy = job.finish(serve)
    assert busy.best_metric == quiet.best_metric and busy.steps == quiet.steps == 4
    quiet_prompt, busy_prompt = quiet_lib.get_version("sentiment"), lib.get_version("sentiment")
    assert torch.equal(SoftPrompt.load(quiet_lib.version_path(quiet_prompt)).tensor,
                       SoftPrompt.load(lib.version_path(busy_prompt)).tensor)
    assert [e.KIND for e in events] == ["step", "step", "eval", "step", "step", "eval"]
    # Every step ran forward and backward through the layers, each with breaks; on a GPU the
    # backward runs on a device thread, whose breaks are skipped.
    passes = 2 if tiny_host.device.type == "cpu" else 1
    assert len(answers) >= 4 * passes * tiny_host.model.config.num_hidden_layers
    assert len(set(answers)) == 1


def test_time_in_breaks_is_not_training_time(tiny_host, tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("engine.training.job.time.perf_counter", lambda: clock[0])
    job = TrainingJob.start(make_library(tmp_path), tiny_host, "sentiment", TrainConfig(
        method="prompt", length=2, steps=4, batch_size=8, eval_every=0, graphs=False))
    calls: list[int] = []

    def serve() -> None:
        calls.append(1)
        clock[0] += 10.0  # answering requests takes "long"

    event = job.step(serve)[0]
    assert calls and job.train_seconds == 0.0 and event.eta_s == 0.0


def test_continual_evaluations_before_and_after_have_breaks(tiny_host, tmp_path):
    lib = make_library(tmp_path)
    run_job(TrainingJob.start(lib, tiny_host, "sentiment", TrainConfig(
        method="prefix", length=3, steps=2, batch_size=4, eval_every=0)))
    calls: list[str] = []
    new_data = write_jsonl(tmp_path / "new.jsonl", sentiment_rows(1)[::-1])
    job = TrainingJob.start(lib, tiny_host, "sentiment",
                            TrainConfig(steps=1, batch_size=4, eval_every=0, replay=0.5),
                            continue_data=new_data, between=lambda: calls.append("start"))
    assert calls and set(job.summary["before"]) == {"new", "old"}
    job.step()
    job.finish(lambda: calls.append("finish"))
    assert "finish" in calls and set(job.summary["after"]) == {"new", "old"}


def test_a_step_replayed_from_cuda_graphs_makes_no_breaks(tiny_host, tmp_path, monkeypatch):
    """With CUDA graphs a step has no layers to break between, and a capture must never run
    serving code: its breaks are off (on a CPU the graphs are simply never enabled)."""
    job = TrainingJob.start(make_library(tmp_path), tiny_host, "sentiment", TrainConfig(
        method="prompt", length=2, steps=4, batch_size=8, eval_every=0))
    monkeypatch.setattr(job.passes.graphs, "enabled", True)
    monkeypatch.setattr(job.passes.graphs, "_should_capture", lambda key: False)
    calls: list[int] = []
    job.step(lambda: calls.append(1))
    assert calls == []
