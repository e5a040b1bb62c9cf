"""Micro-batches: passes of a few rows make the whole batch's step, with requests between."""

from __future__ import annotations

import pytest
import torch

from engine.train import TrainConfig, TrainingJob, run_job
from tests.engine.train_helpers import make_library, sentiment_rows, write_jsonl


def _steps(tiny_host, root, steps: int, **config) -> tuple[TrainingJob, list[float]]:
    job = TrainingJob.start(make_library(root), tiny_host, "sentiment",
                            TrainConfig(steps=steps, eval_every=0, seed=3, **config))
    start = job.params.value().detach().clone()
    losses = [job.step()[0]["loss"] for _ in range(steps)]
    assert not torch.allclose(job.params.value(), start, atol=1e-4)  # the steps moved it
    return job, losses


@pytest.mark.parametrize(("method", "reparam"), [("prompt", 0), ("prefix", 0), ("prefix", 8)])
def test_passes_make_the_same_steps_as_the_whole_batch(tiny_host, tmp_path, method, reparam):
    common = {"method": method, "length": 3, "lr": 0.1, "batch_size": 8, "grad_accum": 2,
              "reparam": reparam}
    whole, whole_losses = _steps(tiny_host, tmp_path / "whole", 3, micro_batch=0, **common)
    # Passes of 3, 3 and 2 rows: uneven, and each padded to its own width.
    split, split_losses = _steps(tiny_host, tmp_path / "split", 3, micro_batch=3, **common)
    assert split_losses == pytest.approx(whole_losses, rel=1e-5)
    assert torch.allclose(split.params.value(), whole.params.value(), atol=1e-6)
    assert split.tokens == whole.tokens


def test_anchored_continual_passes_match_the_whole_batch(tiny_host, tmp_path):
    new_rows = [(f"{text} again", label) for text, label in sentiment_rows(1)]
    tensors, finals = [], []
    for name, micro_batch in (("whole", 0), ("split", 3)):
        lib = make_library(tmp_path / name)
        run_job(TrainingJob.start(lib, tiny_host, "sentiment", TrainConfig(
            method="prefix", length=3, steps=2, batch_size=4, eval_every=0)))
        config = TrainConfig(steps=3, batch_size=8, eval_every=0, replay=0.5, anchor=0.5,
                             micro_batch=micro_batch)
        job = TrainingJob.start(lib, tiny_host, "sentiment", config,
                                continue_data=write_jsonl(tmp_path / f"{name}.jsonl", new_rows))
        for _ in range(3):
            job.step()
        tensors.append(job.params.value().detach())
        finals.append(job.finish().summary["after"])
    assert torch.allclose(tensors[0], tensors[1], atol=1e-6)
    assert finals[0]["new"]["eval_loss"] == pytest.approx(finals[1]["new"]["eval_loss"])


def test_continual_evaluations_call_between_their_batches(tiny_host, tmp_path):
    lib = make_library(tmp_path)
    run_job(TrainingJob.start(lib, tiny_host, "sentiment", TrainConfig(
        method="prefix", length=3, steps=2, batch_size=4, eval_every=0)))
    calls: list[str] = []
    new_data = write_jsonl(tmp_path / "new.jsonl", sentiment_rows(1)[::-1])
    job = TrainingJob.start(lib, tiny_host, "sentiment",
                            TrainConfig(steps=1, batch_size=4, eval_every=0, replay=0.5),
                            continue_data=new_data, between=lambda: calls.append("start"))
    # The old and the new eval sets, each scored for its loss then for its labels.
    assert calls == ["start", "start"] and set(job.summary["before"]) == {"new", "old"}
    events = job.step(lambda: calls.append("step"))
    assert [e["kind"] for e in events] == ["step", "eval"] and calls.count("step") == 1
    job.finish(lambda: calls.append("finish"))
    # The old and the new eval sets after training (the last step evaluated the kept prompt).
    assert calls.count("finish") == 2


def test_between_runs_between_passes_and_eval_batches_and_is_not_training_time(
        tiny_host, tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("engine.train.time.perf_counter", lambda: clock[0])
    job = TrainingJob.start(make_library(tmp_path), tiny_host, "sentiment", TrainConfig(
        method="prompt", length=2, steps=4, batch_size=8, grad_accum=2, micro_batch=3,
        eval_every=2, eval_size=8))
    calls: list[int] = []

    def between() -> None:
        calls.append(job.step_index)
        clock[0] += 10.0  # answering requests takes "long"; none of it is training time

    first = job.step(between)
    # Two batches of 8 rows in passes of 3, 3, 2: two calls inside each, one between them.
    assert len(calls) == 5 and [e["kind"] for e in first] == ["step"]
    calls.clear()
    second = job.step(between)
    assert [e["kind"] for e in second] == ["step", "eval"]
    # The eval (8 rows: one loss batch, then the label scores) adds one call.
    assert len(calls) == 6
    assert job.train_seconds == 0.0 and second[0]["eta_s"] == 0.0


def test_runs_saved_before_micro_batches_resume_in_whole_batches():
    legacy = {"method": "prefix", "length": 3, "batch_size": 8}
    assert TrainConfig.from_dict(legacy).micro_batch == 0
    assert TrainConfig.from_dict({**legacy, "micro_batch": 2}).micro_batch == 2
    assert TrainConfig().micro_batch == 4


def test_a_negative_micro_batch_is_refused():
    with pytest.raises(Exception, match="micro-batch cannot be negative"):
        TrainConfig(micro_batch=-1).check()
