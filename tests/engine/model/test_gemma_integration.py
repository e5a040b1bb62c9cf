"""Gemma 3 270M, the optional second real model (``make setup MODELS=gemma3-270m``; CI adds
it): its GGUF converts to what transformers computes, it is framed as the base model it is
(BOS kept, no borrowed chat template), and the engine's answers are transformers' own."""

from __future__ import annotations

import pytest
import torch

from engine.api.optional_models import is_added
from tests.conftest import TEST_DEVICE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not is_added("gemma3-270m"),
                       reason="Gemma 3 270M is not added (make setup MODELS=gemma3-270m)"),
]


@pytest.fixture(scope="module")
def gemma():
    from engine.forward.fidelity import check_fidelity
    from engine.model.host import ModelHost

    host = ModelHost("gemma3-270m", device=TEST_DEVICE, dtype="float32")
    check_fidelity(host)
    return host


def test_the_conversion_is_checked_and_the_model_is_a_base_model(gemma):
    info = gemma.info()
    assert info.family == "gemma3_text" and info.template == "plain"
    assert gemma.conversion.dtype == "float16"
    check = gemma.conversion.check
    # transformers' own float32 load scores this text near 12; without <bos>, hundreds.
    assert check["passed"] and check["perplexity"] < 20
    assert info.exactness is not None and info.exactness < 1e-4
    ids, _ = gemma.chat.context_ids("The capital of France is")
    assert ids[0] == gemma.tokenizer.bos_token_id == 2


def test_greedy_generation_is_transformers_own(gemma):
    from engine.serving.runtime import GenRow, Runtime

    text = "The capital of France is"
    ours = Runtime(gemma, graphs=False).generate([GenRow(text, max_new_tokens=10)])[0]
    ids, _ = gemma.chat.context_ids(text)
    with torch.no_grad():
        theirs = gemma.model.generate(torch.tensor([ids], device=gemma.device),
                                      max_new_tokens=10, do_sample=False)
    assert ours.tokens == theirs[0, len(ids):].tolist()[:len(ours.tokens)]
    assert len(ours.tokens) >= 3


def test_a_mixed_batch_on_gemma_equals_each_row_alone(gemma):
    from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt, prompt_shape
    from engine.serving.bank import TaskSpec
    from engine.serving.runtime import GenRow, Runtime

    runtime = Runtime(gemma, graphs=False)
    geometry = ModelGeometry.of(gemma)
    for name, method, seed in (("a", "prefix", 1), ("b", "prompt", 2)):
        gen = torch.Generator().manual_seed(seed)
        tensor = torch.randn(prompt_shape(method, 4, geometry), generator=gen) * 0.05
        runtime.register(TaskSpec(name), SoftPrompt(method, tensor, geometry, task=name))
    rows = [GenRow("The weather today is", "a", max_new_tokens=5),
            GenRow("My favourite food is", "b", max_new_tokens=5),
            GenRow("The capital of Italy is", None, max_new_tokens=5)]
    together = runtime.generate(rows)
    assert [r.tokens for r in together] == [runtime.generate([r])[0].tokens for r in rows]


def test_a_prefix_trains_on_gemma(gemma, tmp_path):
    from engine.training.config import TrainConfig
    from engine.training.job import TrainingJob, run_job
    from tests.engine.train_helpers import make_library

    lib = make_library(tmp_path)
    config = TrainConfig(method="prefix", length=4, steps=6, lr=0.02, batch_size=4,
                         eval_every=6, warmup=0.0)
    events: list = []
    result = run_job(TrainingJob.start(lib, gemma, "sentiment", config), on_event=events.append)
    losses = [e.loss for e in events if e.KIND == "step"]
    assert result.version == 1 and len(losses) == 6
    assert all(torch.isfinite(torch.tensor(losses)))
