"""The memory plan: the CPU's dtype chosen by free memory (or the model refused before any
weight is read), rows per pass that fit, activation checkpointing that changes nothing but
memory, a row too long for the device refused with its numbers, and `promptbank plan`."""

from __future__ import annotations

import json

import pytest
import torch

from engine.errors import PromptbankError
from engine.forward.decoder import checkpoint_layers
from engine.methods import get_method
from engine.model import device as models
from engine.model import memory
from engine.model.host import ModelHost
from engine.prompts.soft_prompt import ModelGeometry, prompt_shape
from engine.training.params import PromptParams
from engine.training.passes import Pass, Passes
from tests.engine.train_helpers import make_library

GB = 1 << 30
SHAPE_8B = memory.Shape(8_030_000_000, 4096, 14336, 32, 32, 8, 128, 128256)


def test_the_cpu_takes_float32_where_it_fits_and_bfloat16_where_only_that_does():
    assert memory.cpu_dtype(135_000_000, 20 * GB)[0] == "float32"
    name, reason = memory.cpu_dtype(8_030_000_000, 21 * GB)
    assert name == "bfloat16" and "float32 weights (29.9 GB)" in reason
    with pytest.raises(PromptbankError, match=r"8.0B parameters: 15.0 GB in 16 bits"):
        memory.cpu_dtype(8_030_000_000, 12 * GB)


def test_a_model_too_large_is_refused_before_its_weights_are_read(tiny_model_dir,
                                                                  monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.setattr(models, "free_bytes", lambda device: 1000)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **k: pytest.fail("weights were read"))
    with pytest.raises(PromptbankError, match="cannot be loaded"):
        ModelHost(str(tiny_model_dir), device="cpu")


def test_the_dtype_and_why_are_part_of_the_model_info(tiny_model_dir, monkeypatch):
    host = ModelHost(str(tiny_model_dir), device="cpu")
    assert host.info().dtype == "float32" and host.info().dtype_reason.startswith("float32:")
    params = host.parameter_count()
    monkeypatch.setattr(models, "free_bytes",
                        lambda device: int(params * 4 * 1.5 + memory.CPU_RUNTIME))
    small = ModelHost(str(tiny_model_dir), device="cpu")
    assert small.dtype == torch.bfloat16 and "would leave too little" in small.dtype_reason


def test_rows_per_pass_follow_the_budget_and_checkpointing_starts_when_one_row_does_not_fit():
    one = memory.activations_per_row(SHAPE_8B, "bfloat16", 256, 20, False)
    rows, checked, _ = memory.rows_that_fit(SHAPE_8B, "bfloat16", 3.5 * one, "prefix", 20,
                                            256, 4, 8)
    assert (rows, checked) == (3, False)
    rows, checked, per_row = memory.rows_that_fit(SHAPE_8B, "bfloat16", 0.5 * one, "prefix",
                                                  20, 256, 4, 8)
    assert checked and rows >= 1 and per_row < 0.5 * one


def test_a_plan_names_its_parts_and_what_does_not_fit():
    plan = memory.plan_training(SHAPE_8B, device="cuda", dtype="bfloat16", free=24 * GB,
                                method="prefix", length=20, batch=8, tokens=256,
                                answer_tokens=4)
    assert plan.fits and plan.weights == SHAPE_8B.parameters * 2
    assert plan.total <= 24 * GB * memory.USABLE
    assert "rows per pass" in plan.describe().lower() or "row(s) per pass" in plan.advice
    small = memory.plan_training(SHAPE_8B, device="cuda", dtype="bfloat16", free=12 * GB,
                                 method="prefix", length=20, batch=8, tokens=256,
                                 answer_tokens=4)
    assert not small.fits and "--quantize 4bit" in small.advice


@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_checkpointed_layers_give_the_same_loss_and_gradients(tiny_host, method, monkeypatch):
    from engine.model.chat import Row

    calls: list[int] = []
    layer_class = type(checkpoint_layers(tiny_host)[0])
    forward = layer_class.forward

    def counted(self, *args, **kwargs):
        calls.append(1)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(layer_class, "forward", counted)

    geometry = ModelGeometry.of(tiny_host)
    gen = torch.Generator().manual_seed(0)
    tensor = torch.randn(prompt_shape(method, 3, geometry), generator=gen) * 0.5
    rows = [Row(list(range(5, 30)), [7, 8, 9]), Row(list(range(40, 52)), [3, 4])]
    results = []
    for checkpointing in (False, True):
        params = PromptParams(get_method(method), tensor.clone(), geometry)
        passes = Passes(tiny_host, [params], [[]], graphs=False)
        passes.checkpointing = checkpointing
        calls.clear()
        sums, grads = passes.run(Pass(rows, [0, 0], [0.2, 0.2]))
        results.append((sums[0].item(), grads[0], len(calls)))
    (plain, plain_grad, plain_calls), (checked, checked_grad, checked_calls) = results
    assert checked == pytest.approx(plain, abs=1e-6)
    assert torch.allclose(checked_grad, plain_grad, atol=1e-6)
    # The prompt's own pass (prompt method) runs once; the rows' pass runs again backward.
    layers = len(checkpoint_layers(tiny_host))
    assert checked_calls == plain_calls + layers * (2 if method == "prompt" else 1)


def test_a_row_too_long_for_the_device_stops_training_with_the_numbers(tiny_host, tmp_path,
                                                                       monkeypatch):
    from engine.training.config import TrainConfig
    from engine.training.job import TrainingJob

    lib = make_library(tmp_path)
    job = TrainingJob.start(lib, tiny_host, "sentiment",
                            TrainConfig(method="prefix", length=2, steps=2, batch_size=4,
                                        eval_every=0))
    monkeypatch.setattr(models, "free_bytes", lambda device: 2000)
    with pytest.raises(PromptbankError, match=r"One training row of \d+ tokens needs"):
        job.step()


def test_promptbank_plan_reports_the_parts_and_exits_3_when_it_does_not_fit(
        tiny_model_dir, tmp_path, capsys, monkeypatch):
    from engine.cli import main

    make_library(tmp_path)
    argv = ["--json", "--library", str(tmp_path / "lib"), "--model", str(tiny_model_dir),
            "--device", "cpu", "plan", "sentiment", "--batch-size", "4"]
    assert main(argv) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["fits"] and plan["rows_per_pass"] == 4 and plan["dtype"] == "float32"
    assert plan["weights"] > 0 and plan["activations_per_row"] > 0
    monkeypatch.setattr(models, "free_bytes", lambda device: 400 << 20)
    assert main(argv) == 3
    plan = json.loads(capsys.readouterr().out)
    assert not plan["fits"] and plan["advice"]


def test_a_plan_on_a_quantised_base_counts_its_smaller_weights(tiny_model_dir, tmp_path,
                                                               capsys):
    from engine.cli import main

    make_library(tmp_path)
    argv = ["--json", "--library", str(tmp_path / "lib"), "--model", str(tiny_model_dir),
            "--device", "cpu", "plan", "sentiment", "--batch-size", "4"]
    assert main(argv) == 0
    full = json.loads(capsys.readouterr().out)
    assert main(["--quantize", "4bit", *argv]) == 0
    four = json.loads(capsys.readouterr().out)
    parameters = full["weights"] // 4  # float32 on the CPU
    assert four["weights"] == memory.weight_bytes(parameters, "float32", "4bit")
    assert four["weights"] < full["weights"] / 7
    assert any("4bit weights (bitsandbytes)" in note for note in four["notes"])
