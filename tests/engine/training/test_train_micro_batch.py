"""Micro-batches: passes of a few rows make the same step as the whole batch in one pass."""

from __future__ import annotations

import pytest
import torch

from engine.errors import PromptbankError
from engine.training.config import TrainConfig
from engine.training.job import TrainingJob, run_job
from tests.engine.train_helpers import make_library, sentiment_rows, write_jsonl


def _steps(tiny_host, root, steps: int, **config) -> tuple[TrainingJob, list[float]]:
    job = TrainingJob.start(make_library(root), tiny_host, "sentiment",
                            TrainConfig(steps=steps, eval_every=0, seed=3, **config))
    job.start_tensor = job.params.value().detach().clone()
    losses = [job.step()[0].loss for _ in range(steps)]
    assert not torch.allclose(job.params.value(), job.start_tensor, atol=1e-4)  # it moved
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


def test_passes_in_bfloat16_make_nearly_the_same_steps(tiny_host_bf16, tmp_path):
    """The bf16 form: passes of other widths round differently (bf16 keeps 8 mantissa bits,
    about 2e-3 relative per operation), so losses agree to 2e-3, and the prompt's move over
    three AdamW steps agrees to 5 % of its size (Adam divides each gradient element by its
    own scale, so an element near zero can move by a whole step either way)."""
    common = {"method": "prefix", "length": 3, "lr": 0.1, "batch_size": 8, "grad_accum": 2}
    whole, whole_losses = _steps(tiny_host_bf16, tmp_path / "whole", 3, micro_batch=0, **common)
    split, split_losses = _steps(tiny_host_bf16, tmp_path / "split", 3, micro_batch=3, **common)
    assert split_losses == pytest.approx(whole_losses, rel=2e-3)
    moved = whole.params.value().detach() - whole.start_tensor
    apart = split.params.value().detach() - whole.params.value().detach()
    assert apart.norm() < 0.05 * moved.norm()


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


def test_the_whole_batch_is_one_pass_by_default_and_a_negative_micro_batch_is_refused():
    assert TrainConfig().micro_batch == 0
    with pytest.raises(PromptbankError, match="micro-batch cannot be negative"):
        TrainConfig(micro_batch=-1).check()
