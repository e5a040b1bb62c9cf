"""Quantised bases (bitsandbytes, here on the CPU): the engine's path is the quantised
model's own, training, serving, mixed batches, the prompt cache and resume work on it, a
prompt trained on it says so and runs on the full base with a warning, and a missing
bitsandbytes is named with its install command."""

from __future__ import annotations

import logging

import pytest
import torch

from engine.errors import PromptbankError
from engine.forward.fidelity import check_fidelity
from engine.model.host import ModelHost
from engine.prompts.soft_prompt import SoftPrompt
from engine.serving.bank import TaskSpec
from engine.serving.runtime import GenRow, Runtime
from engine.training.config import TrainConfig
from engine.training.job import TrainingJob, run_job
from tests.engine.runtime_helpers import random_prompt
from tests.engine.train_helpers import make_library
from tests.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def lively_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("quantized"), lively=True)


@pytest.fixture(scope="module", params=["8bit", "4bit"])
def quantized(request, lively_dir):
    host = ModelHost(str(lively_dir), device="cpu", quantize=request.param)
    check_fidelity(host)
    return host


def test_the_quantised_base_is_what_it_says(quantized):
    info = quantized.info()
    assert info.quantization == quantized.quantization
    assert quantized.quantization in info.dtype_reason
    layer = quantized.model.model.layers[0].self_attn.q_proj
    assert type(layer).__name__ in ("Linear8bitLt", "Linear4bit")
    assert info.exactness is not None  # the forward check ran and passed


def test_serving_and_mixed_batches_on_a_quantised_base(quantized):
    runtime = Runtime(quantized, graphs=False)
    for name, method in (("a", "prefix"), ("b", "prompt")):
        runtime.register(TaskSpec(name), random_prompt(quantized, method, 3, seed=len(name)))
    rows = [GenRow("the movie was great", "a", max_new_tokens=4),
            GenRow("bad jokes", "b", max_new_tokens=4),
            GenRow("hello world", None, max_new_tokens=4)]
    together = runtime.generate(rows)
    assert [r.tokens for r in together] == [runtime.generate([r])[0].tokens for r in rows]
    assert len(runtime.bank) == 2


@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_training_resumes_exactly_and_records_the_quantisation(quantized, tmp_path, method):
    def config():
        return TrainConfig(method=method, length=3, steps=4, lr=0.05, batch_size=4,
                           eval_every=2, checkpoint_every=2, seed=3, warmup=0.0)

    straight = make_library(tmp_path / "a")
    run_job(TrainingJob.start(straight, quantized, "sentiment", config()))
    lib = make_library(tmp_path / "b")
    job = TrainingJob.start(lib, quantized, "sentiment", config())
    job.step()
    job.step()
    job.cancel()
    run_job(TrainingJob.resume(lib, quantized, job.run_id))

    def prompt(library) -> SoftPrompt:
        version = library.get_version("sentiment")
        return SoftPrompt.load(library.version_path(version), sha256=version.sha256)

    assert torch.equal(prompt(lib).tensor, prompt(straight).tensor)
    assert prompt(lib).extra["quantization"] == quantized.quantization


def test_a_prompt_from_the_4bit_base_runs_on_the_full_base_with_a_warning(
        lively_dir, tmp_path, caplog):
    four = ModelHost(str(lively_dir), device="cpu", quantize="4bit")
    full = ModelHost(str(lively_dir), device="cpu")
    assert four.fingerprint == full.fingerprint  # the same model, held another way
    lib = make_library(tmp_path)
    run_job(TrainingJob.start(lib, four, "sentiment",
                              TrainConfig(method="prefix", length=2, steps=2, batch_size=4,
                                          eval_every=0)))
    with caplog.at_level(logging.WARNING, logger="promptbank.bank"):
        result = Runtime(full, lib).score("sentiment", ["the movie was great"])[0]
    assert result.label in ("positive", "negative")
    assert "trained on the 4bit base of this model and runs on the full-precision one" \
        in caplog.text


def test_a_missing_bitsandbytes_is_named_with_its_install_command(tiny_model_dir,
                                                                   monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(PromptbankError) as info:
        ModelHost(str(tiny_model_dir), device="cpu", quantize="4bit")
    assert "pip install bitsandbytes==0.50.2" in info.value.hint


@pytest.mark.integration
def test_the_embedded_model_on_an_8bit_base_passes_the_forward_check():
    # With LLM.int8's outlier split SmolLM2's logits beside a shorter row differed by 12.6 %.
    host = ModelHost("default", device="cpu", quantize="8bit")
    assert check_fidelity(host).relative_error <= 0.05
