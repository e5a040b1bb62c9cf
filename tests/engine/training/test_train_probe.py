"""Ranking starting points for a new task by a short probe: the library's prompts of the same
method and length (and the text init), each trained a few steps on the task's rows in shared
passes; probing them together equals probing each alone, and the library is unchanged."""

from __future__ import annotations

import pytest
import torch

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
    assert sorted(s.init for s in scores) == ["mix", "task:echo", "task:sentiment", "text",
                                              "universal:uni"]  # no prefix, not itself
    losses = [s.loss_after for s in scores]
    assert losses == sorted(losses)
    assert scores[0].why.startswith("#1: loss") and "12 of the task's rows" in scores[0].why
    assert {s.source for s in scores} == {"task", "universal", "text", "mix"}
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


def _text_loss_after(host, examples, text, config, steps: int) -> float:
    return rank_starts(host, examples, [text], template="Message: {input}", config=config,
                       rows=12, steps=steps)[0].loss_after


@pytest.mark.parametrize("before_steps", [2, 10])  # caught up with, and not
def test_the_best_starts_head_start_is_the_steps_the_text_init_needs_more(tiny_host, lib,
                                                                           tmp_path,
                                                                           before_steps):
    """A prompt trained on the task's own rows beats the text init; the text init then
    trains on until it reaches that loss, and the steps it needed more are the head start."""
    lib.create_task("spam-before", kind="classify", labels=["spam", "ham"],
                    input_template="Message: {input}")
    lib.add_dataset("spam-before", write_jsonl(tmp_path / "again.jsonl",
                                               [("win money now", "spam"),
                                                ("see you at lunch", "ham")] * 12))
    run_job(TrainingJob.start(lib, tiny_host, "spam-before", TrainConfig(
        method="prompt", length=3, steps=before_steps, lr=0.1, batch_size=4, eval_every=0)))
    config = TrainConfig(method="prompt", length=3, batch_size=4, lr=0.05)
    found = [c for c in candidates(lib, tiny_host, "prompt", 3, exclude="spam",
                                   instruction="is this message spam") if c.source != "mix"]
    examples = lib.examples("spam", "train")
    progress = []
    scores = rank_starts(tiny_host, examples, found, template="Message: {input}", config=config,
                         rows=12, steps=2, on_progress=lambda d, t: progress.append((d, t)))
    best = scores[0]
    assert best.init == "task:spam-before" and best.steps_saved is not None
    assert best.head_start.startswith("The prompt of 'spam-before' starts")
    assert all(s.steps_saved is None for s in scores[1:])
    assert progress[-1] == (8, 8)  # the probe's 2 steps, then up to 3 × 2 for the text init
    text = next(c for c in found if c.source == "text")
    if best.steps_saved > 6:
        assert "more than 6 steps ahead" in best.head_start
        assert _text_loss_after(tiny_host, examples, text, config, 8) > best.loss_after
    else:
        assert f"about {best.steps_saved} steps ahead" in best.head_start
        assert _text_loss_after(tiny_host, examples, text, config,
                                2 + best.steps_saved) <= best.loss_after
        assert _text_loss_after(tiny_host, examples, text, config,
                                best.steps_saved) > best.loss_after


def test_when_the_instruction_is_best_it_says_so(tiny_host, lib):
    config = TrainConfig(method="prompt", length=3, batch_size=4)
    found = [c for c in candidates(lib, tiny_host, "prompt", 3, exclude="spam",
                                   instruction="is this message spam")
             if c.init in ("text", "task:echo")]
    found[0].tensor = found[0].tensor * 50  # a start far off anything useful
    scores = rank_starts(tiny_host, lib.examples("spam", "train"), found,
                         template="Message: {input}", config=config, rows=12, steps=2)
    assert scores[0].init == "text" and scores[0].steps_saved == 0
    assert scores[0].head_start.startswith("Your instruction is the best start")


def test_the_mix_candidate_is_the_text_init_mixed_with_the_library_prompts(tiny_host, lib):
    found = candidates(lib, tiny_host, "prompt", 3, exclude="spam", instruction="spam?")
    by_init = {c.init: c for c in found}
    mix = by_init["mix"]
    assert torch.equal(mix.tensor, by_init["text"].tensor)
    library = [c.tensor for c in found if c.source in ("task", "universal")]
    assert torch.equal(mix.sources, torch.stack(library))
    assert "mix" not in {c.init for c in candidates(lib, tiny_host, "prompt", 3, exclude="spam")}
