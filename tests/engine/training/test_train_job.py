"""TrainingJob on the tiny model: inits, loss goes down, resume equality, failures, cancel."""

from __future__ import annotations

import math
import re

import pytest
import torch

from engine.errors import PromptbankError
from engine.prompts.initial import initial_tensor
from engine.prompts.soft_prompt import SoftPrompt
from engine.training.config import TrainConfig
from engine.training.job import TrainingJob, run_job
from tests.conftest import TEST_DEVICE
from tests.engine.train_helpers import make_library


@pytest.fixture
def lib(tmp_path):
    return make_library(tmp_path)


def _prompt(lib, task="sentiment", number=None) -> SoftPrompt:
    version = lib.get_version(task, number)
    return SoftPrompt.load(lib.version_path(version), sha256=version.sha256)


@pytest.mark.parametrize("method", ["prompt", "prefix"])
@pytest.mark.parametrize("init", ["text", "labels", "vocab", "random"])
def test_init_strategies_shape_and_content(tiny_host, lib, method, init):
    task = lib.get_task("sentiment")
    tensor = initial_tensor(tiny_host, method, 6, init, task, seed=1)
    again = initial_tensor(tiny_host, method, 6, init, task, seed=1)
    assert torch.equal(tensor, again) and torch.isfinite(tensor).all()
    if method == "prompt" and init in ("text", "labels"):
        text = task.instruction if init == "text" else " positive negative"
        ids = tiny_host.tokenizer(text, add_special_tokens=False)["input_ids"]
        table = tiny_host.embeddings().weight.detach().cpu()
        assert torch.equal(tensor[0], table[ids[0]])
        assert torch.equal(tensor[len(ids) % 6], table[ids[len(ids) % 6 % len(ids)]])


def test_prefix_text_init_is_the_texts_keys_and_values(tiny_host, lib):
    task = lib.get_task("sentiment")
    prefix = initial_tensor(tiny_host, "prefix", 3, "text", task)
    ids = tiny_host.tokenizer(task.instruction, add_special_tokens=False)["input_ids"][:3]
    with torch.no_grad():
        out = tiny_host.model(input_ids=torch.tensor([ids], device=tiny_host.device),
                              use_cache=True)
    keys = out.past_key_values.layers[1].keys[0].cpu()
    assert torch.allclose(prefix[1, 0], keys, atol=1e-6)


def test_bad_inits_are_refused(tiny_host, lib):
    task = lib.get_task("sentiment")
    with pytest.raises(PromptbankError, match="Unknown init"):
        initial_tensor(tiny_host, "prompt", 4, "banana", task)
    lib.create_task("bare", kind="generate")
    with pytest.raises(PromptbankError, match="no instruction"):
        initial_tensor(tiny_host, "prompt", 4, "text", lib.get_task("bare"))
    with pytest.raises(PromptbankError, match="no labels"):
        initial_tensor(tiny_host, "prompt", 4, "labels", lib.get_task("bare"))


def test_training_lowers_the_loss_and_saves_a_version(tiny_host, lib):
    config = TrainConfig(method="prompt", length=4, steps=40, lr=0.3, batch_size=8,
                         eval_every=20, warmup=0.0)
    job = TrainingJob.start(lib, host=tiny_host, task="sentiment", config=config)
    events = []
    result = run_job(job, on_event=events.append)
    steps = [e for e in events if e.KIND == "step"]
    evals = [e for e in events if e.KIND == "eval"]
    assert len(steps) == 40 and len(evals) == 2
    assert sum(e.loss for e in steps[-8:]) < sum(e.loss for e in steps[:8])
    assert steps[0].total == 40 and steps[0].lr > 0 and steps[0].eta_s is not None
    assert evals[0].metric_name == "accuracy" and evals[0].n > 0
    assert result.version == 1 and result.steps == 40
    run = lib.get_run(result.run_id)
    assert run.status == "done" and run.version_id == lib.get_version("sentiment").id
    saved = _prompt(lib)
    assert saved.method == "prompt" and saved.init == "text" and saved.length == 4
    assert lib.get_version("sentiment").metrics["metric_name"] == "accuracy"
    assert len(lib.run_metrics(result.run_id)) == 40


def test_prefix_with_mlp_is_folded_into_a_plain_tensor(tiny_host, lib):
    config = TrainConfig(method="prefix", length=3, steps=6, lr=0.05, batch_size=4,
                         eval_every=0, reparam=16)
    job = TrainingJob.start(lib, tiny_host, "sentiment", config)
    start = initial_tensor(tiny_host, "prefix", 3, "text", lib.get_task("sentiment"))
    assert torch.allclose(job.params.value().detach().cpu(), start)
    run_job(job)
    saved = _prompt(lib)
    assert saved.tensor.shape == start.shape
    assert not torch.allclose(saved.tensor, start)


@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_resume_ends_with_the_same_prompt(tiny_host, tmp_path, method):
    def config():
        return TrainConfig(method=method, length=3, steps=12, lr=0.1, batch_size=4,
                           eval_every=4, checkpoint_every=5, seed=7,
                           reparam=8 if method == "prefix" else 0)

    straight_lib = make_library(tmp_path / "a")
    straight = run_job(TrainingJob.start(straight_lib, tiny_host, "sentiment", config()))

    lib = make_library(tmp_path / "b")
    job = TrainingJob.start(lib, tiny_host, "sentiment", config())
    for _ in range(7):  # past an epoch boundary and between checkpoints
        job.step()
    job.cancel()
    assert lib.get_run(job.run_id).status == "cancelled"
    assert job.step() == [] and job.done
    resumed = TrainingJob.resume(lib, tiny_host, job.run_id)
    assert resumed.step_index == 7 and lib.get_run(job.run_id).status == "running"
    result = run_job(resumed)
    assert result.steps == straight.steps == 12
    assert result.best_metric == straight.best_metric
    assert torch.equal(_prompt(lib).tensor, _prompt(straight_lib).tensor)


def test_resume_refuses_a_finished_run(tiny_host, lib):
    config = TrainConfig(method="prompt", length=2, steps=2, batch_size=4, eval_every=0)
    result = run_job(TrainingJob.start(lib, tiny_host, "sentiment", config))
    with pytest.raises(PromptbankError, match="already finished"):
        TrainingJob.resume(lib, tiny_host, result.run_id)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_host, lib):
    config = TrainConfig(method="prefix", length=2, steps=20, lr=1e30, batch_size=4,
                         warmup=0.0, checkpoint_every=1, eval_every=0, clip=1e30)
    job = TrainingJob.start(lib, tiny_host, "sentiment", config)
    with pytest.raises(PromptbankError, match=r"NaN|infinite|non-finite") as info:
        for _ in range(20):
            job.step()
    assert "last good checkpoint" in str(info.value)
    run = lib.get_run(job.run_id)
    assert run.status == "failed" and "error" in run.summary
    from engine.training.checkpointing import load_checkpoint

    tensors, state = load_checkpoint(lib.checkpoint_dir(job.run_id))
    assert torch.isfinite(tensors["param.tensor"]).all() and state["step"] < 20
    assert lib.list_versions("sentiment") == []


@pytest.mark.parametrize(("micro_batch", "words", "hint"), [
    (4, "batch size 8 (4 rows per pass)", "--micro-batch 2"),
    (1, "batch size 8 (1 row per pass)", "--batch-size 4 (and --grad-accum 2"),
])
def test_out_of_memory_names_the_batch_size(tiny_host, lib, monkeypatch, micro_batch, words,
                                            hint):
    config = TrainConfig(method="prompt", length=2, steps=3, batch_size=8, eval_every=0,
                         micro_batch=micro_batch)
    job = TrainingJob.start(lib, tiny_host, "sentiment", config)

    def boom(part, scale=1.0):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(job.passes, "run", boom)
    with pytest.raises(PromptbankError, match=re.escape(words)) as info:
        job.step()
    assert hint in info.value.hint
    assert lib.get_run(job.run_id).status == "failed"


def test_automatic_passes_shrink_when_memory_runs_out(tiny_host, lib, monkeypatch):
    """Passes sized by the engine (micro-batch 0) halve after an out-of-memory error and the
    step is retried on the same batch, with the same result as a run that fits."""
    config = TrainConfig(method="prompt", length=2, steps=2, batch_size=8, eval_every=0)
    fits = TrainingJob.start(lib, tiny_host, "sentiment", config)
    run_job(fits)
    job = TrainingJob.start(lib, tiny_host, "sentiment", TrainConfig(**config.to_dict()))
    real = job.passes.run
    sizes: list[int] = []

    def tight(part, scale=1.0):
        sizes.append(len(part.rows))
        if len(part.rows) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(part, scale)

    monkeypatch.setattr(job.passes, "run", tight)
    run_job(job)
    assert sizes[:3] == [8, 4, 2] and set(sizes[3:]) == {2}
    assert job.pass_rows == 2
    assert torch.allclose(job.params.value(), fits.params.value(), atol=1e-6)


def test_bad_settings_leave_the_library_unchanged(tiny_host, lib):
    runs_before = lib.list_runs()
    for bad in [TrainConfig(method="lora"), TrainConfig(steps=0), TrainConfig(lr=-1.0),
                TrainConfig(method="prompt", reparam=-1), TrainConfig(init="task:nope")]:
        with pytest.raises(PromptbankError):
            TrainingJob.start(lib, tiny_host, "sentiment", bad)
    with pytest.raises(PromptbankError):
        TrainingJob.start(lib, tiny_host, "no-such-task", TrainConfig())
    lib.create_task("empty", kind="generate", instruction="say hi")
    with pytest.raises(PromptbankError, match="no training examples"):
        TrainingJob.start(lib, tiny_host, "empty", TrainConfig())
    # The tiny model's context is 512 tokens: a prompt of 300 leaves no room for rows of 256.
    with pytest.raises(PromptbankError, match="at most 256 fit"):
        TrainingJob.start(lib, tiny_host, "sentiment", TrainConfig(length=300))
    assert lib.list_runs() == runs_before


def test_early_stopping_and_stop_at_loss(tiny_host, lib):
    config = TrainConfig(method="prompt", length=2, steps=50, lr=1e-6, batch_size=4,
                         eval_every=1, patience=2)
    result = run_job(TrainingJob.start(lib, tiny_host, "sentiment", config))
    assert result.steps < 50 and "no improvement" in result.summary["stop_reason"]
    config = TrainConfig(method="prompt", length=2, steps=50, batch_size=4, eval_every=0,
                         stop_at_loss=100.0)
    assert run_job(TrainingJob.start(lib, tiny_host, "sentiment", config)).steps == 1


def test_transfer_init_from_another_task(tiny_host, tmp_path):
    lib = make_library(tmp_path)
    config = TrainConfig(method="prompt", length=3, steps=3, batch_size=4, eval_every=0)
    run_job(TrainingJob.start(lib, tiny_host, "sentiment", config))
    source = _prompt(lib).tensor
    lib.create_task("other", kind="classify", labels=["positive", "negative"])
    tensor = initial_tensor(tiny_host, "prompt", 5, "task:sentiment", lib.get_task("other"),
                            library=lib)
    assert torch.equal(tensor[:3], source) and torch.equal(tensor[3:], source[:2])
    with pytest.raises(PromptbankError, match="not a prefix"):
        initial_tensor(tiny_host, "prefix", 3, "task:sentiment", lib.get_task("other"),
                       library=lib)


def test_cancel_through_should_stop(tiny_host, lib):
    config = TrainConfig(method="prompt", length=2, steps=30, batch_size=4, eval_every=0)
    job = TrainingJob.start(lib, tiny_host, "sentiment", config)
    calls = iter(range(100))
    assert run_job(job, should_stop=lambda: next(calls) >= 3) is None
    assert job.step_index == 3 and lib.get_run(job.run_id).status == "cancelled"
    assert lib.list_versions("sentiment") == []


def test_first_version_becomes_active_and_later_ones_wait(tiny_host, lib):
    config = TrainConfig(method="prompt", length=2, steps=2, batch_size=4, eval_every=0)
    first = run_job(TrainingJob.start(lib, host=tiny_host, task="sentiment", config=config))
    assert first.summary["activated"] is True
    assert lib.get_task("sentiment").active_version_id == lib.get_version("sentiment", 1).id
    second = run_job(TrainingJob.start(lib, host=tiny_host, task="sentiment", config=config))
    assert second.version == 2 and second.summary["activated"] is False
    assert lib.get_version("sentiment").number == 1


def test_float16_loss_scaling_skips_an_overflowing_step_and_halves_the_scale(tiny_host, lib):
    """float16 training scales the loss; here the scale is set so high that the gradients
    overflow: that step changes nothing and the scale halves, and training goes on."""
    job = TrainingJob.start(lib, tiny_host, "sentiment", TrainConfig(
        method="prompt", length=2, steps=3, batch_size=4, eval_every=0))
    job.scaling, job.loss_scale = True, 1e38
    before = job.params.value().detach().clone()
    job.step()
    assert torch.equal(job.params.value(), before)
    assert job.loss_scale == 5e37 and job.summary["skipped_steps"] == 1
    job.loss_scale = 1024.0
    job.step()
    assert not torch.equal(job.params.value(), before) and job.good_steps == 1


@pytest.mark.skipif(TEST_DEVICE != "cuda", reason="float16 runs on a GPU only")
def test_float16_training_on_a_gpu_learns(tiny_model_dir, lib):
    from engine.model.host import ModelHost

    host = ModelHost(str(tiny_model_dir), device=TEST_DEVICE, dtype="float16")
    job = TrainingJob.start(lib, host, "sentiment", TrainConfig(
        method="prefix", length=3, steps=30, lr=0.05, batch_size=8, eval_every=0))
    losses = [job.step()[0].loss for _ in range(30)]
    assert all(math.isfinite(x) for x in losses) and job.scaling
    assert sum(losses[-5:]) < sum(losses[:5])


def _lock(lib):
    """Another program's write lock on the catalogue (sqlite's BEGIN IMMEDIATE)."""
    import sqlite3

    holder = sqlite3.connect(str(lib.root / "library.db"), check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    lib.db.execute("PRAGMA busy_timeout = 100")  # this test's catalogue gives up quickly
    return holder


def test_a_lock_held_a_moment_is_waited_for(tiny_host, lib, monkeypatch):
    import threading

    from engine.training import slot

    monkeypatch.setattr(slot, "LOCK_RETRY_S", (0.4, 0.4, 0.4))
    config = TrainConfig(method="prompt", length=2, steps=4, batch_size=4, eval_every=0)
    job = TrainingJob.start(lib, tiny_host, "sentiment", config)
    job.step()
    holder = _lock(lib)
    threading.Timer(0.3, holder.rollback).start()  # released during the first wait
    try:
        result = run_job(job)
    finally:
        holder.close()
    assert result.steps == 4 and [v.number for v in lib.list_versions("sentiment")] == [1]
    assert [m["step"] for m in lib.run_metrics(job.run_id)] == [1, 2, 3, 4]


def test_a_lock_held_past_the_retries_stops_the_run_resumable(tiny_host, tmp_path,
                                                              monkeypatch):
    from engine.training import slot

    monkeypatch.setattr(slot, "LOCK_RETRY_S", (0.05, 0.05))
    config = TrainConfig(method="prompt", length=2, steps=6, lr=0.1, batch_size=4,
                         eval_every=0, checkpoint_every=100, seed=3)
    straight_lib = make_library(tmp_path / "a")
    straight = run_job(TrainingJob.start(straight_lib, tiny_host, "sentiment", config))
    lib = make_library(tmp_path / "b")
    job = TrainingJob.start(lib, tiny_host, "sentiment", config)
    job.step()
    job.step()
    holder = _lock(lib)
    try:
        with pytest.raises(PromptbankError) as info:
            job.step()
    finally:
        holder.rollback()
        holder.close()
    text = str(info.value)
    assert "held the library catalogue" in text and "stopped at step 3" in text
    assert f"promptbank train sentiment --resume {job.run_id}" in text
    assert "nothing is lost" in text and "Nothing was changed" not in text
    assert lib.get_run(job.run_id).status == "running"  # the lock kept even the stop out
    job.fail_open("the job ended")  # as the engine does after an error: the run stays open
    assert lib.get_run(job.run_id).status == "running"
    lib.release_run(job.run_id)  # as this process's end would
    resumed = TrainingJob.resume(lib, tiny_host, job.run_id)
    assert resumed.step_index == 3  # from the checkpoint the stop saved, not from step 0
    result = run_job(resumed)
    assert result.steps == straight.steps == 6
    assert torch.equal(_prompt(lib).tensor, _prompt(straight_lib).tensor)
