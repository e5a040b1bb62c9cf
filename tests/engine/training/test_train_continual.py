"""Continual learning: a new version from the active one; parent and other tasks untouched."""

from __future__ import annotations

import hashlib

import pytest

from engine.errors import PromptbankError
from engine.prompts.soft_prompt import SoftPrompt
from engine.serving.evaluate import evaluate
from engine.serving.runtime import Runtime
from engine.training.config import TrainConfig
from engine.training.job import TrainingJob, run_job
from tests.engine.train_helpers import make_library, write_jsonl

NEW_ROWS = [("fine acting today", "positive"), ("bad day", "negative"),
            ("wonderful jokes", "positive"), ("terrible prize", "negative")] * 3


def _model_digest(host) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(host.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def _scores(host, lib, task):
    return Runtime(host, lib).logliks([(task, "great movie"), (task, "bad jokes")])[1]


def test_continue_makes_a_child_and_touches_nothing_else(tiny_host, tmp_path):
    lib = make_library(tmp_path)
    lib.create_task("other", kind="classify", labels=["positive", "negative"],
                    instruction="is it spam")
    lib.add_dataset("other", write_jsonl(tmp_path / "other.jsonl", NEW_ROWS[::-1] * 2))
    base = TrainConfig(method="prefix", length=3, steps=4, batch_size=4, eval_every=0)
    run_job(TrainingJob.start(lib, tiny_host, "sentiment", base))
    run_job(TrainingJob.start(lib, tiny_host, "other", TrainConfig(
        method="prompt", length=2, steps=3, batch_size=4, eval_every=0)))
    parent = lib.get_version("sentiment")
    parent_bytes = lib.read_version_bytes(parent)
    other = lib.get_version("other")
    other_bytes = lib.read_version_bytes(other)
    other_scores = _scores(tiny_host, lib, "other")
    model_before = _model_digest(tiny_host)

    new_data = write_jsonl(tmp_path / "new.jsonl", NEW_ROWS)
    config = TrainConfig(steps=5, batch_size=4, eval_every=0, replay=0.5, anchor=0.1)
    job = TrainingJob.start(lib, tiny_host, "sentiment", config, continue_data=new_data)
    assert job.config.method == "prefix" and job.config.length == 3
    assert len(job.rows) > 9  # the new training rows plus replayed earlier ones
    result = run_job(job)

    child = lib.get_version("sentiment", result.version)
    assert child.parent_id == parent.id and child.init == "continue:v1"
    assert lib.read_version_bytes(parent) == parent_bytes
    run = lib.get_run(result.run_id)
    assert run.kind == "continue" and run.parent_version_id == parent.id
    summary = run.summary
    assert set(summary["before"]) == set(summary["after"]) == {"new", "old"}
    assert "gain_new" in summary and "forgetting_old" in summary
    assert summary["gain_new"] == pytest.approx(
        summary["after"]["new"]["accuracy"] - summary["before"]["new"]["accuracy"])
    evals = lib.list_evaluations("sentiment")
    assert sorted(e.baseline for e in evals) == sorted(
        f"continual-{when}-{which}" for when in ("before", "after") for which in ("new", "old"))
    assert {e.version_id for e in evals} == {parent.id, child.id}
    # One data hash and one scorer: `promptbank eval` of the parent on the old held-out rows
    # lines up with the stored "before" evaluation in `compare`, with the same accuracy.
    first = lib.list_datasets("sentiment")[0].id
    old_rows = [(e.input, e.output) for e in lib.examples("sentiment", "eval", dataset_id=first)]
    measured = evaluate(Runtime(tiny_host, lib), lib, "sentiment", version=parent.number,
                        data=write_jsonl(tmp_path / "old-eval.jsonl", old_rows))
    before_old = next(e for e in evals if e.baseline == "continual-before-old")
    assert before_old.data_sha256 == measured.data_sha256
    assert before_old.metrics["accuracy"] == pytest.approx(measured.metrics["accuracy"])

    assert lib.read_version_bytes(lib.get_version("other")) == other_bytes
    assert lib.get_version("other").id == other.id
    assert _scores(tiny_host, lib, "other") == other_scores
    assert _model_digest(tiny_host) == model_before
    assert all(not p.requires_grad for p in tiny_host.model.parameters())


def test_anchor_pulls_towards_the_parent(tiny_host, tmp_path):
    distances = []
    for anchor in (0.0, 1000.0):
        lib = make_library(tmp_path / f"a{anchor}")
        run_job(TrainingJob.start(lib, tiny_host, "sentiment", TrainConfig(
            method="prompt", length=2, steps=2, batch_size=4, eval_every=0)))
        parent = SoftPrompt.load(lib.version_path(lib.get_version("sentiment"))).tensor
        data = write_jsonl(tmp_path / f"new{anchor}.jsonl", NEW_ROWS)
        result = run_job(TrainingJob.start(
            lib, tiny_host, "sentiment", TrainConfig(steps=8, batch_size=4, eval_every=0,
                                                     anchor=anchor, lr=0.1),
            continue_data=data))
        child = SoftPrompt.load(lib.version_path(lib.get_version("sentiment", result.version)))
        distances.append(float((child.tensor - parent).norm()))
    assert distances[1] < distances[0]


def test_continue_refuses_bad_input_and_leaves_the_library(tiny_host, tmp_path):
    lib = make_library(tmp_path)
    data = write_jsonl(tmp_path / "new.jsonl", NEW_ROWS)
    with pytest.raises(PromptbankError, match="no trained prompt"):
        TrainingJob.start(lib, tiny_host, "sentiment", TrainConfig(), continue_data=data)
    run_job(TrainingJob.start(lib, tiny_host, "sentiment", TrainConfig(
        method="prompt", length=2, steps=1, batch_size=4, eval_every=0)))
    runs, datasets = lib.list_runs(), lib.list_datasets("sentiment")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "x", "output": "maybe"}\n')
    with pytest.raises(PromptbankError):
        TrainingJob.start(lib, tiny_host, "sentiment", TrainConfig(), continue_data=bad)
    with pytest.raises(PromptbankError):
        TrainingJob.start(lib, tiny_host, "sentiment", TrainConfig(replay=1.5),
                          continue_data=data)
    assert lib.list_runs() == runs and lib.list_datasets("sentiment") == datasets


def test_replay_mixes_earlier_rows_in_the_stated_share(tiny_host, tmp_path):
    from engine.training.continual import pools

    lib = make_library(tmp_path)
    first = lib.examples("sentiment", "train")
    new = lib.add_dataset("sentiment", write_jsonl(tmp_path / "new.jsonl", NEW_ROWS))
    fresh = lib.examples("sentiment", "train", dataset_id=new.id)
    for share in (0.0, 0.2, 0.5):
        pool = pools(lib, "sentiment", TrainConfig(replay=share), new.id).train
        assert pool[:len(fresh)] == fresh  # every new row, then the replayed ones
        old = pool[len(fresh):]
        assert all(e in first for e in old) and len(set(map(id, old))) == len(old)
        assert len(old) == round(len(fresh) * share / (1 - share)) <= len(first)
        assert len(old) / len(pool) == pytest.approx(share, abs=0.5 / len(pool))
