"""The embedded model learns a shipped example task in a few steps."""

from __future__ import annotations

import pytest

from engine.library.examples import examples_dir
from engine.training.config import TrainConfig
from engine.training.job import TrainingJob, run_job


@pytest.mark.integration
def test_prefix_training_improves_the_embedded_model(default_host, tmp_path):
    from engine.library import Library

    lib = Library(tmp_path / "lib")
    lib.create_task("sentiment", kind="classify", labels=["positive", "negative"],
                    instruction="Is this review positive or negative?")
    lib.add_dataset("sentiment", examples_dir() / "sentiment.csv",
                    eval_fraction=0.2, seed=0)
    config = TrainConfig(method="prefix", length=4, init="vocab", steps=8, lr=3e-2,
                         batch_size=4, eval_every=8, eval_size=8, warmup=0.0)
    job = TrainingJob.start(lib, default_host, "sentiment", config)
    before = job.evaluate(job.params.value().detach(), job.eval_set)
    result = run_job(job)
    best = job.best
    assert best["eval_loss"] < before["eval_loss"]
    assert best["accuracy"] >= before["accuracy"]
    assert result.best_metric == best["accuracy"] and result.version == 1
