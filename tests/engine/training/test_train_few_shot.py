"""Few-shot mode: a task of 8-64 examples trains with short-run defaults; its held-out rows
(a split's share or a separate file) never train and judge it by its metric, and without
any it trains on every row and stops when their loss stops improving."""

from __future__ import annotations

import pytest

from engine.api.train_settings import (
    FEW_SHOT_DEFAULTS,
    FEW_SHOT_MAX_EXAMPLES,
    describe_mode,
    pick_mode,
)
from engine.training.config import TrainConfig, for_examples
from engine.training.job import TrainingJob, run_job
from engine.training.settings import training_examples
from tests.engine.train_helpers import add_echo_task, make_library, sentiment_rows, write_jsonl


def test_the_mode_follows_the_number_of_examples_and_the_user_wins():
    assert pick_mode(8) == pick_mode(FEW_SHOT_MAX_EXAMPLES) == "few-shot"
    assert pick_mode(FEW_SHOT_MAX_EXAMPLES + 1) == "standard"
    few = for_examples({}, 16)
    assert few.mode == "few-shot" and few.steps == FEW_SHOT_DEFAULTS["steps"]
    assert few.patience == FEW_SHOT_DEFAULTS["patience"] > 0
    assert for_examples({"steps": 7}, 16).steps == 7
    assert for_examples({"mode": "standard"}, 16) == TrainConfig()
    assert for_examples({}, 1000) == TrainConfig()
    assert for_examples({"mode": "few-shot"}, 1000).mode == "few-shot"
    assert "Few-shot mode (16 examples)" in describe_mode("few-shot", 16)
    assert describe_mode("standard", 900).startswith("Standard mode (900 examples)")


def test_few_shot_generate_is_judged_by_its_loss_on_held_out_rows(tiny_host, tmp_path):
    from engine.library import Library

    lib = add_echo_task(Library(tmp_path / "lib"), tmp_path, repeat=2)  # 16 rows, 4 held out
    config = for_examples({"method": "prompt", "length": 2, "batch_size": 4, "steps": 4,
                           "eval_every": 2}, training_examples(lib, "echo"))
    job = TrainingJob.start(lib, tiny_host, "echo", config)
    held_out = {e.input for e in lib.examples("echo", "eval")}
    assert config.mode == "few-shot" and len(job.rows) == 12 and len(job.eval_set) == 4
    assert set(job.eval_set.inputs) == held_out  # and the 12 training rows are the others
    run_job(job)
    metrics = lib.get_version("echo").metrics
    assert metrics["metric_name"] == "eval_loss" and metrics["eval_n"] == 4
    assert metrics["eval_on"] == "held-out rows"


def test_few_shot_without_held_out_rows_trains_on_all_and_stops_on_their_loss(tiny_host,
                                                                               tmp_path):
    from engine.library import Library

    lib = add_echo_task(Library(tmp_path / "lib"), tmp_path, repeat=2, eval_fraction=0.0)
    assert training_examples(lib, "echo") == 16
    config = for_examples({"method": "prompt", "length": 2, "batch_size": 4, "steps": 60,
                           "eval_every": 2, "lr": 1e-6}, training_examples(lib, "echo"))
    job = TrainingJob.start(lib, tiny_host, "echo", config)
    assert len(job.rows) == 16 and len(job.eval_set) == 16
    assert job.metric_name == "eval_loss"  # the training rows' own loss
    result = run_job(job)
    assert result.steps < 60 and "no improvement" in result.summary["stop_reason"]
    metrics = lib.get_version("echo").metrics
    assert metrics["metric_name"] == "eval_loss" and metrics["eval_on"] == "training rows"


def test_few_shot_classify_is_judged_by_accuracy_on_its_held_out_rows(tiny_host, tmp_path):
    lib = make_library(tmp_path, rows=sentiment_rows(1))  # 16 rows, 4 of them held out
    config = for_examples({"method": "prompt", "length": 2, "batch_size": 4, "steps": 4,
                           "eval_every": 2}, training_examples(lib, "sentiment"))
    job = TrainingJob.start(lib, tiny_host, "sentiment", config)
    held_out = {e.input for e in lib.examples("sentiment", "eval")}
    assert config.mode == "few-shot" and len(job.rows) == 12 and len(job.eval_set) == 4
    assert set(job.eval_set.inputs) == held_out and job.metric_name == "accuracy"
    run_job(job)
    metrics = lib.get_version("sentiment").metrics
    assert metrics["metric_name"] == "accuracy" and metrics["eval_n"] == 4


def test_few_shot_with_a_separate_eval_file_stops_on_it(tiny_host, tmp_path):
    from engine.library import Library

    lib = Library(tmp_path / "lib")
    lib.create_task("s", kind="classify", labels=["positive", "negative"], instruction="x")
    rows = sentiment_rows(1)
    lib.add_dataset("s", write_jsonl(tmp_path / "t.jsonl", rows[:12]),
                    eval_path=write_jsonl(tmp_path / "e.jsonl", rows[12:]))
    config = for_examples({"method": "prompt", "length": 2, "batch_size": 4, "steps": 2},
                          training_examples(lib, "s"))
    job = TrainingJob.start(lib, tiny_host, "s", config)
    assert config.mode == "few-shot" and len(job.rows) == 12 and len(job.eval_set) == 4
    assert job.metric_name == "accuracy"


@pytest.mark.parametrize("mode", ["auto", "fast"])
def test_an_unresolved_mode_is_refused(tiny_host, tmp_path, mode):
    from engine.errors import PromptbankError

    with pytest.raises(PromptbankError, match="training mode"):
        TrainingJob.start(make_library(tmp_path), tiny_host, "sentiment", TrainConfig(mode=mode))
