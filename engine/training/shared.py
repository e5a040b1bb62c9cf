"""A prompt shared by several tasks, trained as multitask prompt tuning (MPT) does: each task's
prompt is the shared one times a rank-one task part (``S ∘ u vᵀ`` over the token rows), all
trained together on every task's rows. The task parts absorb what is peculiar to each task,
so the shared prompt keeps what they have in common: it is the start offered to a new task.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from engine.methods.base import PromptMethod
from engine.model.chat import Row
from engine.prompts.soft_prompt import ModelGeometry
from engine.training.config import TrainConfig
from engine.training.passes import Pass, Passes
from engine.training.slot import lr_at, optimizer_for

if TYPE_CHECKING:
    from engine.model.host import ModelHost


@dataclass
class SharedSource:
    """One task's training rows and the head of tokens they start with."""

    rows: list[Row]
    head: list[int]


class TaskPart(torch.nn.Module):
    """One task's prompt: the shared prompt times the task's rank-one part (which starts at
    ones, so step 0 is the shared prompt itself)."""

    def __init__(self, method: PromptMethod, shared: torch.nn.Parameter, geometry) -> None:
        super().__init__()
        self.method, self.geometry, self.shared = method, geometry, shared
        tokens, features = method.token_rows(shared.detach()).shape
        self.u = torch.nn.Parameter(torch.ones(tokens, device=shared.device))
        self.v = torch.nn.Parameter(torch.ones(features, device=shared.device))

    def trainable(self) -> list[torch.nn.Parameter]:
        return [self.shared, self.u, self.v]

    def value(self) -> torch.Tensor:
        rows = self.method.token_rows(self.shared) * torch.outer(self.u, self.v)
        return self.method.from_token_rows(rows, self.geometry)


def train_shared(host: ModelHost, method: PromptMethod, init: torch.Tensor,
                 sources: Sequence[SharedSource], config: TrainConfig) -> torch.Tensor:
    """The shared prompt after ``config.steps`` steps from ``init``; each step takes
    ``config.batch_size`` rows of every source, each source's mean loss weighing the same."""
    shared = torch.nn.Parameter(init.float().clone().to(host.device))
    parts = [TaskPart(method, shared, ModelGeometry.of(host)) for _ in sources]
    unique = [shared] + [p for part in parts for p in (part.u, part.v)]
    optimizer = optimizer_for(unique, config, host.device)
    passes = Passes(host, parts, [s.head for s in sources], graphs=config.graphs)
    order = [random.Random(config.seed + k).sample(range(len(s.rows)), len(s.rows))
             for k, s in enumerate(sources)]
    for step in range(config.steps):
        rows, owners, weights = [], [], []
        for k, source in enumerate(sources):
            begin = step * config.batch_size
            batch = [source.rows[order[k][(begin + i) % len(order[k])]]
                     for i in range(config.batch_size)]
            weight = 1.0 / (sum(len(r.answer_ids) for r in batch) * len(sources))
            rows += batch
            owners += [k] * len(batch)
            weights += [weight] * len(batch)
        _, grads = passes.run(Pass(rows, owners, weights))
        seen: set[int] = set()
        for param, grad in zip((p for part in parts for p in part.trainable()), grads,
                               strict=True):
            if id(param) not in seen:  # the shared prompt's full gradient comes once a part
                seen.add(id(param))
                param.grad = grad
        torch.nn.utils.clip_grad_norm_(unique, config.clip)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(config, step, config.steps)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return shared.detach().cpu()
