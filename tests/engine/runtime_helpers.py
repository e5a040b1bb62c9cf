"""Fixtures for the runtime, evaluation and apply tests.

The tiny model's random weights (std 0.02) make greedy decoding repeat one token whatever the
context, which would let wrong masks or positions pass unnoticed. ``lively_host`` is a private
copy with its matrices scaled up, so outputs depend on the prompt, the input and positions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import TEST_DEVICE

SCALE = 10.0


@pytest.fixture(scope="session")
def lively_host(tiny_model_dir: Path):
    """A tiny model whose greedy output depends on its whole context."""
    from engine.model.host import ModelHost

    host = ModelHost(str(tiny_model_dir), device=TEST_DEVICE, dtype="float32")
    with torch.no_grad():
        for param in host.model.parameters():
            if param.dim() == 2:
                param.mul_(SCALE)
    return host


def random_prompt(host, method: str, length: int, *, seed: int = 0, task: str = ""):
    """A SoftPrompt of ``method`` and ``length`` for ``host`` with random values."""
    from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt, prompt_shape

    geometry = ModelGeometry.of(host)
    gen = torch.Generator().manual_seed(seed)
    tensor = torch.randn(prompt_shape(method, length, geometry), generator=gen)
    return SoftPrompt(method, tensor, geometry, task=task, init="random")


def library_with_tasks(root: Path, host) -> object:
    """A library with a classify task and a generate task, one saved version each."""
    from engine.library import Library

    lib = Library(root / "lib")
    rows = [("the movie was great", "positive"), ("bad jokes", "negative"),
            ("wonderful acting", "positive"), ("a terrible boring film", "negative")] * 3
    data = root / "sentiment.jsonl"
    data.write_text("".join(json.dumps({"input": i, "output": o}) + "\n" for i, o in rows))
    lib.create_task("sentiment", kind="classify", labels=["positive", "negative"],
                    instruction="classify the sentiment of this review", data=data,
                    eval_fraction=0.25)
    gen_rows = [("name food price", "a sentence"), ("hello world", "how are you")] * 4
    gen_data = root / "describe.jsonl"
    gen_data.write_text("".join(json.dumps({"input": i, "output": o}) + "\n"
                                for i, o in gen_rows))
    lib.create_task("describe", kind="generate", instruction="describe it", data=gen_data,
                    eval_fraction=0.25)
    lib.add_version("sentiment", random_prompt(host, "prompt", 3, seed=1).to_bytes())
    lib.add_version("describe", random_prompt(host, "prefix", 5, seed=2).to_bytes())
    return lib
