"""Joint training: several tasks' prompts in one job with mixed batches end where their
separate runs end (losses and saved prompts to 1e-5 in float32), with per-task early stopping,
failures, cancel and resume."""

from __future__ import annotations

import pytest
import torch

from engine.api.payload import Payload
from engine.api.training import StepProgress, TaskFailed, VersionSaved
from engine.errors import PromptbankError
from engine.prompts.soft_prompt import SoftPrompt
from engine.training.config import TrainConfig
from engine.training.job import TrainingJob, run_job
from engine.training.joint import JointJob
from engine.training.passes import group_by_width
from engine.training.resume import resume_run
from tests.engine.train_helpers import add_echo_task, make_library, write_jsonl

TASKS = ("sentiment", "echo")


def _library(root):
    return add_echo_task(make_library(root), root)


def _configs(methods: tuple[str, str], lengths: tuple[int, int]) -> list[TrainConfig]:
    """Different methods, lengths, batch sizes, accumulation, seeds, steps and schedules."""
    return [TrainConfig(method=methods[0], length=lengths[0], steps=6, lr=0.1, batch_size=4,
                        eval_every=3, seed=1, warmup=0.2),
            TrainConfig(method=methods[1], length=lengths[1], steps=4, lr=0.05, batch_size=3,
                        grad_accum=2, eval_every=2, seed=2, reparam=4 * (methods[1] == "prefix"))]


def _prompt(lib, task: str) -> torch.Tensor:
    version = lib.get_version(task)
    return SoftPrompt.load(lib.version_path(version), sha256=version.sha256).tensor


def _losses(events: list[Payload], task: str) -> list[float]:
    return [e.loss for e in events if isinstance(e, StepProgress) and e.task == task]


@pytest.mark.parametrize(("methods", "lengths"), [(("prompt", "prefix"), (3, 5)),
                                                  (("prefix", "prompt"), (2, 6))])
def test_joint_training_equals_separate_runs(tiny_host, tmp_path, methods, lengths):
    separate_lib = _library(tmp_path / "separate")
    alone, alone_events = {}, {}
    for task, config in zip(TASKS, _configs(methods, lengths), strict=True):
        events: list[Payload] = []
        alone[task] = run_job(TrainingJob.start(separate_lib, tiny_host, task, config),
                              on_event=events.append)
        alone_events[task] = events

    lib = _library(tmp_path / "joint")
    job = JointJob.start(lib, tiny_host, TASKS, _configs(methods, lengths))
    owners: list[set[int]] = []
    real = job.passes.run

    def recorded(part, scale=1.0):
        owners.append(set(part.owners))
        return real(part, scale)

    job.passes.run = recorded
    events: list[Payload] = []
    result = run_job(job, on_event=events.append)
    assert owners[0] == {0, 1}  # the tasks' rows really shared passes

    assert [r.task for r in result.results] == list(TASKS) and not result.failed
    for task in TASKS:
        joint_losses, alone_losses = _losses(events, task), _losses(alone_events[task], task)
        assert len(joint_losses) == len(alone_losses) == alone[task].steps
        assert joint_losses == pytest.approx(alone_losses, abs=1e-5)
        assert torch.allclose(_prompt(lib, task), _prompt(separate_lib, task), atol=1e-5)
        joint_result = next(r for r in result.results if r.task == task)
        assert joint_result.best_metric == pytest.approx(alone[task].best_metric, abs=1e-5)
        assert lib.get_run(joint_result.run_id).status == "done"
    # The shorter task was saved as soon as its steps were done and left the batches.
    saved = [e for e in events if isinstance(e, VersionSaved)]
    assert [(e.task, e.step) for e in saved] == [("echo", 4), ("sentiment", 6)]
    runs = [lib.get_run(r.run_id) for r in result.results]
    assert {r.joint_id for r in runs} == {runs[0].id}


def test_each_task_stops_early_on_its_own(tiny_host, tmp_path):
    configs = [TrainConfig(method="prompt", length=2, steps=40, lr=1e-6, batch_size=4,
                           eval_every=1, patience=2),
               TrainConfig(method="prompt", length=2, steps=8, batch_size=4, eval_every=0)]
    lib = _library(tmp_path)
    result = run_job(JointJob.start(lib, tiny_host, TASKS, configs))
    steps = {r.task: r.steps for r in result.results}
    assert steps["sentiment"] < 8 and steps["echo"] == 8
    assert "no improvement" in lib.get_run(result.results[0].run_id).summary["stop_reason"]


def test_a_task_whose_loss_breaks_fails_alone(tiny_host, tmp_path):
    configs = [TrainConfig(method="prefix", length=2, steps=5, lr=1e30, batch_size=4,
                           warmup=0.0, eval_every=0, clip=1e30),
               TrainConfig(method="prompt", length=2, steps=3, batch_size=4, eval_every=0)]
    lib = _library(tmp_path)
    events: list[Payload] = []
    result = run_job(JointJob.start(lib, tiny_host, TASKS, configs), on_event=events.append)
    assert [r.task for r in result.results] == ["echo"] and set(result.failed) == {"sentiment"}
    assert any(isinstance(e, TaskFailed) and e.task == "sentiment" for e in events)
    assert lib.list_versions("sentiment") == [] and len(lib.list_versions("echo")) == 1
    assert lib.get_run(lib.list_runs("sentiment")[0].id).status == "failed"


def test_float16_scaling_skips_only_the_overflowing_tasks_step(tiny_host, tmp_path):
    """A joint job scales the loss of its shared passes with one scale: a task whose
    gradients overflow skips its step (the others take theirs), the scale halves for all,
    and the scale is in the checkpoints a resumed job goes on with."""
    configs = [TrainConfig(method="prompt", length=2, steps=4, batch_size=4, eval_every=0),
               TrainConfig(method="prefix", length=2, steps=4, batch_size=4, eval_every=0)]
    lib = _library(tmp_path)
    job = JointJob.start(lib, tiny_host, TASKS, configs)
    job.scaling, job.loss_scale = True, 1024.0
    real = job.passes.run
    begin, end = job.spans[0]

    def overflowing(part, scale=1.0):
        sums, grads = real(part, scale)
        return sums, [g.clone().fill_(float("inf")) if begin <= i < end else g
                      for i, g in enumerate(grads)]

    job.passes.run = overflowing
    before = [s.params.value().detach().clone() for s in job.slots]
    job.step()
    assert torch.equal(job.slots[0].params.value(), before[0])
    assert not torch.equal(job.slots[1].params.value(), before[1])
    assert [s.step_index for s in job.slots] == [1, 1] and not job.failed
    assert job.slots[0].summary["skipped_steps"] == 1
    assert "skipped_steps" not in job.slots[1].summary
    assert job.loss_scale == 512.0 and job.good_steps == 0
    job.passes.run = real
    job.step()
    assert not torch.equal(job.slots[0].params.value(), before[0]) and job.good_steps == 1
    job.cancel()
    resumed = resume_run(lib, tiny_host, job.run_ids[0])
    assert (resumed.loss_scale, resumed.good_steps) == (512.0, 1)


def _oom_configs(micro_batch: int = 0) -> list[TrainConfig]:
    return [TrainConfig(method="prompt", length=2, steps=2, batch_size=4, eval_every=0,
                        micro_batch=micro_batch),
            TrainConfig(method="prefix", length=3, steps=2, batch_size=4, eval_every=0,
                        micro_batch=micro_batch)]


def _out_of_memory(*_args, **_kwargs):
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_automatic_shared_passes_shrink_when_memory_runs_out(tiny_host, tmp_path,
                                                            monkeypatch):
    """The tasks' rows share passes sized by the engine: out of memory halves them and the
    step is retried on the same batches, with the result of a job that fits."""
    fits = JointJob.start(_library(tmp_path / "fits"), tiny_host, TASKS, _oom_configs())
    run_job(fits)
    job = JointJob.start(_library(tmp_path / "tight"), tiny_host, TASKS, _oom_configs())
    real = job.passes.run
    sizes: list[int] = []

    def tight(part, scale=1.0):
        sizes.append(len(part.rows))
        return _out_of_memory() if len(part.rows) > 2 else real(part, scale)

    monkeypatch.setattr(job.passes, "run", tight)
    run_job(job)
    assert sizes[:3] == [8, 4, 2] and set(sizes[3:]) == {2} and job.pass_rows == 2
    # Passes of other sizes sum in another order: float32 rounding (on a GPU other kernels
    # too) moves the prompts after two AdamW steps of lr up to 0.3 by well under 1e-5.
    for slot, alone in zip(job.slots, fits.slots, strict=True):
        assert torch.allclose(slot.params.value(), alone.params.value(), atol=1e-5)


def test_out_of_memory_at_a_set_micro_batch_fails_every_run_of_the_job(tiny_host, tmp_path,
                                                                       monkeypatch):
    lib = _library(tmp_path)
    job = JointJob.start(lib, tiny_host, TASKS, _oom_configs(micro_batch=2))
    monkeypatch.setattr(job.passes, "run", _out_of_memory)
    with pytest.raises(PromptbankError, match=r"joint batch of 8 rows \(2 rows per pass\)") \
            as info:
        job.step()
    assert "--micro-batch 1" in info.value.hint
    assert [lib.get_run(r).status for r in job.run_ids] == ["failed", "failed"]


def test_resuming_a_joint_job_leaves_a_failed_task_alone(tiny_host, tmp_path):
    configs = [TrainConfig(method="prefix", length=2, steps=5, lr=1e30, batch_size=4,
                           warmup=0.0, eval_every=0, clip=1e30),
               TrainConfig(method="prompt", length=2, steps=4, batch_size=4, eval_every=0)]
    lib = _library(tmp_path)
    job = JointJob.start(lib, tiny_host, TASKS, configs)
    while not job.failed:
        job.step()
    job.cancel()
    assert [lib.get_run(r).status for r in job.run_ids] == ["failed", "cancelled"]
    resumed = resume_run(lib, tiny_host, job.run_ids[1])
    assert resumed.tasks == ["echo"]
    assert [r.task for r in run_job(resumed).results] == ["echo"]


def test_a_joint_job_resumes_where_it_stopped(tiny_host, tmp_path):
    def configs() -> list[TrainConfig]:
        return _configs(("prompt", "prefix"), (3, 4))

    straight_lib = _library(tmp_path / "a")
    run_job(JointJob.start(straight_lib, tiny_host, TASKS, configs()))

    lib = _library(tmp_path / "b")
    job = JointJob.start(lib, tiny_host, TASKS, configs())
    for _ in range(3):
        job.step()
    job.cancel()
    assert {lib.get_run(r).status for r in job.run_ids} == {"cancelled"}
    resumed = resume_run(lib, tiny_host, job.run_ids[1])  # any run of the job resumes it all
    assert isinstance(resumed, JointJob) and resumed.tasks == list(TASKS)
    assert resumed.step_index == 3
    result = run_job(resumed)
    assert [r.task for r in result.results] == list(TASKS)
    for task in TASKS:
        assert torch.equal(_prompt(lib, task), _prompt(straight_lib, task))


def test_bad_joint_input_changes_nothing(tiny_host, tmp_path):
    lib = _library(tmp_path)
    runs = lib.list_runs()
    config = TrainConfig(method="prompt", length=2, steps=2)
    for tasks, message in ((["sentiment"], "two or more"),
                           (["sentiment", "sentiment"], "more than once"),
                           (["sentiment", "nope"], "nope")):
        with pytest.raises(PromptbankError, match=message):
            JointJob.start(lib, tiny_host, tasks, [config] * len(tasks))
    with pytest.raises(PromptbankError, match="steps"):
        JointJob.start(lib, tiny_host, TASKS, [config, TrainConfig(steps=0)])
    # The tiny model's context is 512 tokens: one task's 300-token prompt leaves no room for
    # rows of 256.
    with pytest.raises(PromptbankError, match="at most 256 fit"):
        JointJob.start(lib, tiny_host, TASKS, [config, TrainConfig(method="prompt", length=300)])
    assert lib.list_runs() == runs


def test_rows_are_grouped_by_width_with_the_fewest_padded_tokens():
    widths = [30, 5, 31, 6, 29, 5]
    # Two passes: 3 × 6 + 3 × 31 tokens and two pass costs, against 6 × 31 for one pass.
    assert group_by_width(widths, pass_cost=10) == [[1, 5, 3], [4, 0, 2]]
    # A pass that costs more than the padding it saves is not worth it.
    assert group_by_width(widths, pass_cost=1000) == [[1, 5, 3, 4, 0, 2]]
    assert sorted(i for g in group_by_width(widths, pass_cost=0) for i in g) == list(range(6))
    assert group_by_width([]) == []


@pytest.mark.cpu_only("a GPU pads every pass to a few widths and keeps a round in one pass")
def test_on_a_cpu_short_and_long_rows_of_a_joint_round_take_separate_passes(tiny_host,
                                                                           tmp_path):
    lib = make_library(tmp_path)
    essay = " ".join(["the story goes on and on with many more words"] * 6)
    lib.create_task("essay", kind="generate", instruction="summarise")
    lib.add_dataset("essay", write_jsonl(tmp_path / "essay.jsonl",
                                         [(f"{essay} {i}", f"part {i}") for i in range(8)]),
                    eval_fraction=0.25, seed=0)
    config = TrainConfig(method="prefix", length=4, steps=1, batch_size=4, eval_every=0)
    job = JointJob.start(lib, tiny_host, ["sentiment", "essay"], [config, config])
    parts = []
    real = job.passes.run

    def recorded(part, scale=1.0):
        parts.append(part)
        return real(part, scale)

    job.passes.run = recorded
    run_job(job)
    assert len(parts) == 2 and [set(p.owners) for p in parts] == [{0}, {1}]
