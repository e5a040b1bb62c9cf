"""A model larger than its device loads split by accelerate (here: part of it on disk, with
--offload), and computes what it computes whole: losses and gradients, generation, mixed
batches and training."""

from __future__ import annotations

import pytest
import torch

from engine.errors import PromptbankError
from engine.model import device as models
from engine.model import memory
from engine.model.host import ModelHost
from engine.serving.bank import TaskSpec
from engine.serving.runtime import GenRow, Runtime
from engine.training.config import TrainConfig
from engine.training.job import TrainingJob, run_job
from tests.engine.runtime_helpers import random_prompt
from tests.engine.train_helpers import make_library
from tests.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("split"), lively=True)


@pytest.fixture
def small_memory(monkeypatch, folder):
    """Free memory for about half of the model's float32 weights beside the process."""
    whole = ModelHost(str(folder), device="cpu", dtype="float32")
    half = whole.parameter_count() * 4 // 2
    monkeypatch.setattr(models, "free_bytes",
                        lambda device: int((half + memory.CPU_RUNTIME) / memory.USABLE))
    return whole


def test_without_offload_a_model_too_large_is_refused_with_the_way_out(folder, small_memory,
                                                                       tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTBANK_CACHE", str(tmp_path / "cache"))
    with pytest.raises(PromptbankError) as info:
        ModelHost(str(folder), device="cpu", dtype="float32")
    assert "--offload" in info.value.hint


def test_an_offloaded_split_computes_what_the_whole_model_does(folder, small_memory, tmp_path,
                                                             monkeypatch):
    monkeypatch.setenv("PROMPTBANK_CACHE", str(tmp_path / "cache"))
    whole = small_memory
    split = ModelHost(str(folder), device="cpu", dtype="float32", offload=True)
    assert "disk" in set(split.model.hf_device_map.values())
    assert "split by accelerate" in split.info().dtype_reason
    runs = []
    for host in (whole, split):
        runtime = Runtime(host, graphs=False)
        runtime.register(TaskSpec("a"), random_prompt(host, "prefix", 3, seed=1))
        runtime.register(TaskSpec("b"), random_prompt(host, "prompt", 2, seed=2))
        rows = [GenRow("the movie was great", "a", max_new_tokens=5),
                GenRow("bad jokes", "b", max_new_tokens=5), GenRow("hello", None,
                                                                   max_new_tokens=5)]
        runs.append([r.tokens for r in runtime.generate(rows)])
    assert runs[0] == runs[1]

    tensors = []
    for host, name in ((whole, "a"), (split, "b")):
        lib = make_library(tmp_path / name)
        run_job(TrainingJob.start(lib, host, "sentiment",
                                  TrainConfig(method="prefix", length=2, steps=3, batch_size=4,
                                              eval_every=0, seed=1)))
        version = lib.get_version("sentiment")
        from engine.prompts.soft_prompt import SoftPrompt

        tensors.append(SoftPrompt.load(lib.version_path(version)).tensor)
    assert torch.allclose(tensors[0], tensors[1], atol=1e-6)
