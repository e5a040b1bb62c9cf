"""Universal prompts: trained on several tasks' rows (each through its own template, tasks
capped per epoch), stored as a universal task with versions and lineage; an update adds a task
with replay and stores the before/after on every source; new tasks start from it."""

from __future__ import annotations

import collections

import pytest
import torch

from engine.errors import PromptbankError
from engine.prompts.initial import initial_tensor
from engine.prompts.soft_prompt import SoftPrompt
from engine.training.batches import capped_order
from engine.training.config import TrainConfig
from engine.training.job import run_job
from engine.training.resume import resume_run
from engine.training.universal import UniversalJob
from tests.engine.train_helpers import add_echo_task, make_library, write_jsonl

SOURCES = ["sentiment", "echo"]


@pytest.fixture
def lib(tmp_path):
    lib = add_echo_task(make_library(tmp_path), tmp_path)
    lib.create_task("spam", kind="classify", labels=["spam", "ham"],
                    instruction="is this message spam", input_template="Message: {input}")
    rows = [("win money now", "spam"), ("see you at lunch", "ham"), ("free prize", "spam"),
            ("call me later", "ham")] * 4
    lib.add_dataset("spam", write_jsonl(tmp_path / "spam.jsonl", rows), eval_fraction=0.25)
    return lib


def _config(**extra) -> TrainConfig:
    return TrainConfig(method="prompt", length=3, steps=4, lr=0.1, batch_size=4,
                       eval_every=2, **extra)


def test_capped_order_draws_each_group_up_to_the_cap():
    groups = [0] * 50 + [1] * 6 + [2] * 20
    batches = capped_order([5] * len(groups), groups, 4, seed=3, cap=10)
    drawn = collections.Counter(groups[i] for batch in batches for i in batch)
    assert drawn == {0: 10, 1: 6, 2: 10}
    assert batches == capped_order([5] * len(groups), groups, 4, seed=3, cap=10)
    assert any(len({groups[i] for i in batch}) > 1 for batch in batches)  # batches mix tasks


def test_universal_create_trains_on_every_source_through_its_template(tiny_host, lib):
    job = UniversalJob.create(lib, tiny_host, "uni", SOURCES, _config(mix_cap=5))
    echo_head = tiny_host.chat.head(template=lib.get_task("echo").input_template)
    by_source = collections.Counter(
        "echo" if row.prompt_ids[:len(echo_head)] == echo_head else "sentiment"
        for row in job.rows)
    assert by_source == {"sentiment": 24, "echo": 12}  # the training splits of both
    assert collections.Counter(job.slot.groups) == {0: 24, 1: 12}
    assert all(len(b) <= 4 for b in job.order) and sum(map(len, job.order)) == 10  # capped
    result = run_job(job)
    task = lib.get_task("uni")
    assert task.kind == "universal" and "sentiment, echo" in task.description
    version = lib.get_version("uni")
    assert version.metrics["sources"] == SOURCES and version.metrics["metric_name"] == "eval_loss"
    assert result.metric_name == "eval_loss" and lib.get_run(result.run_id).kind == "universal"
    evaluations = {e.baseline: e for e in lib.list_evaluations("uni")}
    assert set(evaluations) == {"universal-after-sentiment", "universal-after-echo"}
    assert evaluations["universal-after-sentiment"].metrics["metric_name"] == "accuracy"
    after = result.summary["after"]
    assert result.best_metric == pytest.approx(
        (after["sentiment"]["eval_loss"] + after["echo"]["eval_loss"]) / 2, abs=1e-6)
    saved = SoftPrompt.load(lib.version_path(version))
    assert saved.extra["sources"] == "sentiment,echo"


def test_universal_update_adds_a_task_with_replay_and_before_after(tiny_host, lib):
    run_job(UniversalJob.create(lib, tiny_host, "uni", SOURCES, _config()))
    parent = lib.get_version("uni")
    job = UniversalJob.update(lib, tiny_host, "uni", ["spam"],
                              TrainConfig(steps=3, batch_size=4, eval_every=0, replay=0.5))
    assert job.config.method == "prompt" and job.config.length == 3
    assert set(job.summary["before"]) == {"sentiment", "echo", "spam"}
    groups = collections.Counter(job.slot.groups)
    assert groups[2] == 12 and groups[0] + groups[1] == 12  # half the pool replays old tasks
    result = run_job(job)
    child = lib.get_version("uni", result.version)
    assert child.parent_id == parent.id and child.init == "continue:v1"
    assert child.metrics["sources"] == [*SOURCES, "spam"]
    baselines = {e.baseline for e in lib.list_evaluations("uni")}
    for name in (*SOURCES, "spam"):
        assert {f"universal-before-{name}", f"universal-after-{name}"} <= baselines
    summary = lib.get_run(result.run_id).summary
    assert summary["gain_new"] == pytest.approx(
        summary["after"]["spam"]["accuracy"] - summary["before"]["spam"]["accuracy"])
    assert "forgetting_old" in summary
    assert lib.get_task("uni").active_version_id == parent.id  # waits to be activated


def test_a_new_task_starts_from_the_universal_prompt(tiny_host, lib):
    run_job(UniversalJob.create(lib, tiny_host, "uni", SOURCES, _config()))
    saved = SoftPrompt.load(lib.version_path(lib.get_version("uni"))).tensor
    spam = lib.get_task("spam")
    tensor = initial_tensor(tiny_host, "prompt", 3, "universal:uni", spam, library=lib)
    assert torch.equal(tensor, saved)
    with pytest.raises(PromptbankError, match="not a universal prompt"):
        initial_tensor(tiny_host, "prompt", 3, "universal:echo", spam, library=lib)


def test_a_universal_run_resumes_to_the_same_prompt(tiny_host, tmp_path, lib):
    straight = make_library(tmp_path / "straight")
    add_echo_task(straight, tmp_path / "straight")
    run_job(UniversalJob.create(straight, tiny_host, "uni", SOURCES, _config()))
    job = UniversalJob.create(lib, tiny_host, "uni", SOURCES, _config())
    job.step()
    job.cancel()
    resumed = resume_run(lib, tiny_host, job.run_id)
    assert isinstance(resumed, UniversalJob) and resumed.step_index == 1
    run_job(resumed)
    tensors = [SoftPrompt.load(x.version_path(x.get_version("uni"))).tensor
               for x in (lib, straight)]
    assert torch.equal(*tensors)


def test_bad_universal_input_changes_nothing(tiny_host, lib):
    runs, tasks = lib.list_runs(), lib.list_tasks()
    for sources, message in ((["sentiment"], "at least two"),
                             (["sentiment", "sentiment"], "more than once"),
                             (["sentiment", "nope"], "nope")):
        with pytest.raises(PromptbankError, match=message):
            UniversalJob.create(lib, tiny_host, "uni", sources, _config())
    with pytest.raises(PromptbankError, match="already exists"):
        UniversalJob.create(lib, tiny_host, "echo", SOURCES, _config())
    with pytest.raises(PromptbankError, match="not a universal prompt"):
        UniversalJob.update(lib, tiny_host, "echo", ["spam"], _config())
    with pytest.raises(PromptbankError, match="at most 256 fit"):  # a context of 512 tokens
        UniversalJob.create(lib, tiny_host, "uni", SOURCES,
                            TrainConfig(method="prompt", length=300))
    assert lib.list_runs() == runs and lib.list_tasks() == tasks
    run_job(UniversalJob.create(lib, tiny_host, "uni", SOURCES, _config()))
    with pytest.raises(PromptbankError, match="already"):
        UniversalJob.update(lib, tiny_host, "uni", ["echo"], _config())
    with pytest.raises(PromptbankError, match="universal prompt itself"):
        UniversalJob.create(lib, tiny_host, "uni2", ["uni", "echo"], _config())
    from engine.training.job import TrainingJob

    with pytest.raises(PromptbankError, match="universal prompt"):
        TrainingJob.start(lib, tiny_host, "uni", _config())
    data = write_jsonl(lib.root.parent / "more.jsonl", [("a", "b")] * 4)
    with pytest.raises(PromptbankError, match="universal update"):
        TrainingJob.start(lib, tiny_host, "uni", _config(), continue_data=data)
