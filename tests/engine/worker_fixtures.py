"""Shared set-up of the worker and client tests: a small library and a worker on it."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from engine.library import Library
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
from engine.server.client import Client
from tests.conftest import REAL_CACHE, TEST_DEVICE

POSITIVE = ["the movie was great", "wonderful acting", "great and wonderful film",
            "i am fine thank you", "a great day", "the acting was great"]
NEGATIVE = ["a terrible boring film", "bad jokes", "boring and bad", "terrible acting",
            "the film was bad", "a boring day"]


def write_sentiment(path: Path, repeat: int = 4) -> Path:
    """A small classify dataset (input/output JSONL)."""
    rows = [{"input": t, "output": "positive"} for t in POSITIVE]
    rows += [{"input": t, "output": "negative"} for t in NEGATIVE]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows * repeat))
    return path


def make_library(root: Path, host) -> Library:
    """Tasks ``sent`` (classify, data, one prompt version), ``echo`` (generate, a prompt
    version) and ``deep`` (generate, a prefix version), all fitting ``host``."""
    lib = Library(root)
    data = write_sentiment(root.parent / f"{root.name}-sent.jsonl")
    lib.create_task("sent", kind="classify", labels=["positive", "negative"], data=data)
    lib.create_task("echo", kind="generate")
    lib.create_task("deep", kind="generate")
    geometry = ModelGeometry.of(host)
    gen = torch.Generator().manual_seed(0)
    table = host.embeddings().weight.detach()
    for task in ("sent", "echo"):
        # Rows copied from the vocabulary, so their nearest tokens are known exactly.
        ids = torch.randint(0, table.shape[0], (4,), generator=gen)
        prompt = SoftPrompt("prompt", table[ids].clone(), geometry, task=task,
                            extra={"ids": ",".join(str(int(i)) for i in ids)})
        lib.add_version(task, prompt.to_bytes())
    shape = (host.num_layers, 2, host.num_kv_heads, 3, host.head_dim)
    lib.add_version("deep", SoftPrompt("prefix", torch.randn(shape, generator=gen) * 0.1,
                                       geometry, task="deep").to_bytes())
    return lib


def start_worker(model_dir: Path, library: Path) -> Client:
    """A worker on the tiny model and ``library`` (CPU)."""
    return Client.start(str(model_dir), library, TEST_DEVICE, timeout=120,
                        env={"PROMPTBANK_CACHE": REAL_CACHE, "HF_HUB_OFFLINE": "1",
                             "OMP_NUM_THREADS": "1"})


def train_config(steps: int, **extra) -> dict:
    """A fast training configuration for the tiny model."""
    return {"method": "prompt", "length": 4, "init": "random", "steps": steps,
            "batch_size": 4, "micro_batch": 2, "eval_every": 0, "checkpoint_every": 5,
            "eval_size": 8, **extra}
