"""Ranking starting points for a new task by a short probe: the library's prompts of the same
method and length (and the text init), each trained a few steps on the task's rows in shared
passes; probing them together equals probing each alone, and the library is unchanged."""

from __future__ import annotations

import pytest

from engine.training.config import TrainConfig
from engine.training.job import TrainingJob, run_job
from engine.training.probe import candidates, rank_starts, rank_task_starts
from engine.training.universal import UniversalJob
from tests.engine.library_helpers import snapshot
from tests.engine.train_helpers import add_echo_task, make_library, write_jsonl


@pytest.fixture
def lib(tiny_host, tmp_path):
    lib = add_echo_task(make_library(tmp_path), tmp_path)
    config = TrainConfig(method="prompt", length=3, steps=3, batch_size=4, eval_every=0)
    for task in ("sentiment", "echo"):
        run_job(TrainingJob.start(lib, tiny_host, task, TrainConfig(**config.to_dict())))
    run_job(UniversalJob.create(lib, tiny_host, "uni", ["sentiment", "echo"],
                                TrainConfig(**config.to_dict())))
    lib.create_task("deep", kind="generate", instruction="say it")
    lib.add_dataset("deep", write_jsonl(tmp_path / "deep.jsonl", [("a", "b")] * 8))
    run_job(TrainingJob.start(lib, tiny_host, "deep", TrainConfig(
        method="prefix", length=3, steps=1, batch_size=4, eval_every=0)))
    lib.create_task("spam", kind="classify", labels=["spam", "ham"],
                    instruction="is this message spam", input_template="Message: {input}")
    rows = [("win money now", "spam"), ("see you at lunch", "ham")] * 12
    lib.add_dataset("spam", write_jsonl(tmp_path / "spam.jsonl", rows))
    return lib


def test_probe_ranks_same_method_and_length_and_changes_nothing(tiny_host, lib):
    before = snapshot(lib)
    config = TrainConfig(method="prompt", length=3, batch_size=4)
    scores = rank_task_starts(lib, tiny_host, "spam", config, rows=12, steps=3)
    assert sorted(s.init for s in scores) == ["task:echo", "task:sentiment", "text",
                                              "universal:uni"]  # no prefix, not itself
    losses = [s.loss_after for s in scores]
    assert losses == sorted(losses)
    assert scores[0].why.startswith("#1: loss") and "12 of the task's rows" in scores[0].why
    assert {s.source for s in scores} == {"task", "universal", "text"}
    assert snapshot(lib) == before


def test_probing_together_equals_probing_each_alone(tiny_host, lib):
    config = TrainConfig(method="prompt", length=3, batch_size=4)
    found = candidates(lib, tiny_host, "prompt", 3, exclude="spam", instruction="spam?")
    examples = lib.examples("spam", "train")
    together = {s.init: s for s in rank_starts(tiny_host, examples, found, template="M {input}",
                                               config=config, rows=10, steps=3)}
    for candidate in found:
        alone = rank_starts(tiny_host, examples, [candidate], template="M {input}",
                            config=config, rows=10, steps=3)[0]
        assert alone.loss_before == pytest.approx(together[candidate.init].loss_before, abs=1e-5)
        assert alone.loss_after == pytest.approx(together[candidate.init].loss_after, abs=1e-5)
        assert alone.loss_after < alone.loss_before  # the steps did train
