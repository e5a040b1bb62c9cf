"""Suggesting a starting point for a new task: the library's prompts of the same method and
length (and the text init) ranked by a short probe.

Every candidate takes a few optimiser steps on a few dozen of the new task's rows, all in the
same mixed passes (each row after its candidate's prompt, ``engine.training.passes``), and is
ranked by its loss on those rows afterwards: the start that adapts fastest to the task comes
first. The library is not changed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch

from engine.api.train_settings import PROBE_ROWS, PROBE_STEPS
from engine.errors import PromptbankError
from engine.forward.scoring import answer_logliks
from engine.forward.start import Start
from engine.library.readers import Example
from engine.library.records import Task
from engine.methods import get_method
from engine.prompts.initial import initial_tensor, library_prompts
from engine.prompts.soft_prompt import ModelGeometry
from engine.training.batches import encode
from engine.training.config import TrainConfig
from engine.training.params import PromptParams
from engine.training.passes import Pass, Passes
from engine.training.slot import optimizer_for

if TYPE_CHECKING:
    from engine.library import Library
    from engine.model.host import ModelHost

#: Progress: (candidates' steps done, steps in all).
OnProbe = Callable[[int, int], None]
#: Rows per pass when measuring the candidates' losses.
MEASURE_BATCH = 16


@dataclass
class StartScore:
    """One candidate start: its init string, where it comes from, and its probe losses."""

    init: str
    source: str  # text | task | universal
    version: int | None
    loss_before: float
    loss_after: float
    why: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Candidate:
    """A start to probe: its init string, kind, version number and tensor."""

    init: str
    source: str
    version: int | None
    tensor: torch.Tensor


def candidates(library: Library, host: ModelHost, method: str, length: int, *, exclude: str = "",
               instruction: str = "", name: str = "new task") -> list[Candidate]:
    """The active prompts of the library's tasks with this method and length on this model
    (a universal prompt's as ``universal:NAME``), then the text init when there is text."""
    found = []
    for task, version, tensor in library_prompts(library, host, method, length, exclude=exclude):
        source = "universal" if task.kind == "universal" else "task"
        found.append(Candidate(f"{source}:{task.name}", source, version.number, tensor))
    if instruction.strip():
        draft = Task(0, name, "generate", [], "", instruction, None, None, "")
        found.append(Candidate("text", "text", None,
                               initial_tensor(host, method, length, "text", draft)))
    return found


def rank_starts(host: ModelHost, examples: Sequence[Example], found: Sequence[Candidate], *,
                template: str | None, config: TrainConfig, rows: int = PROBE_ROWS,
                steps: int = PROBE_STEPS, on_progress: OnProbe | None = None
                ) -> list[StartScore]:
    """The candidates, best first, by their loss on up to ``rows`` of the examples after
    ``steps`` optimiser steps from each (same rows, batches and learning rate for all)."""
    if not found:
        return []
    if not examples:
        raise PromptbankError("There are no examples to probe the starting points on.",
                              hint="Add training data to the task first.")
    sample = list(examples)
    if len(sample) > rows:
        sample = random.Random(config.seed).sample(sample, rows)
    probe = encode(host, sample, template=template, max_length=config.max_length)
    geometry = ModelGeometry.of(host)
    params = [PromptParams(get_method(config.method), c.tensor, geometry) for c in found]
    for p in params:
        p.to(host.device)
    passes = Passes(host, params, [host.chat.head(template=template)] * len(found),
                    graphs=config.graphs)
    before = _losses(host, config.method, params, probe)
    optimizers = [optimizer_for(p.trainable(), config, host.device) for p in params]
    size = min(config.batch_size, len(probe))
    for step in range(steps):
        begin = (step * size) % len(probe)
        batch = (probe + probe)[begin:begin + size]
        weight = 1.0 / sum(len(r.answer_ids) for r in batch)
        _, grads = passes.run(Pass(batch * len(found),
                                   [k for k in range(len(found)) for _ in batch],
                                   [weight] * (len(batch) * len(found))))
        offset = 0
        for p, optimizer in zip(params, optimizers, strict=True):
            trainable = p.trainable()
            for param, grad in zip(trainable, grads[offset:offset + len(trainable)],
                                   strict=True):
                param.grad = grad
            offset += len(trainable)
            torch.nn.utils.clip_grad_norm_(trainable, config.clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if on_progress is not None:
            on_progress(step + 1, steps)
    after = _losses(host, config.method, params, probe)
    scores = [StartScore(c.init, c.source, c.version, b, a) for c, b, a in
              zip(found, before, after, strict=True)]
    scores.sort(key=lambda s: s.loss_after)
    for rank, score in enumerate(scores, 1):
        score.why = (f"#{rank}: loss {score.loss_after:.3f} on {len(probe)} of the task's rows "
                     f"after {steps} steps (from {score.loss_before:.3f} at the start)")
    return scores


@torch.no_grad()
def _losses(host: ModelHost, method: str, params: list[PromptParams], rows) -> list[float]:
    """Each prompt's mean answer-token loss on ``rows`` (rows of all prompts share batches)."""
    starts = [Start(get_method(method).keys_values(host, p.value()), []) for p in params]
    jobs = [(k, row) for k in range(len(params)) for row in rows]
    totals = [0.0] * len(params)
    counts = [0] * len(params)
    for begin in range(0, len(jobs), MEASURE_BATCH):
        chunk = jobs[begin:begin + MEASURE_BATCH]
        sums, sizes = answer_logliks(host, starts, [k for k, _ in chunk], [r for _, r in chunk])
        for (k, _), value, size in zip(chunk, sums, sizes, strict=True):
            totals[k] -= value
            counts[k] += size
    return [t / max(1, c) for t, c in zip(totals, counts, strict=True)]


def rank_task_starts(library: Library, host: ModelHost, task: str, config: TrainConfig, *,
                     rows: int = PROBE_ROWS,
                     steps: int = PROBE_STEPS, on_progress: OnProbe | None = None
                     ) -> list[StartScore]:
    """``rank_starts`` for a task of the library, on its training examples."""
    record = library.get_task(task)
    found = candidates(library, host, config.method, config.length, exclude=task,
                       instruction=record.instruction or record.description, name=task)
    return rank_starts(host, library.examples(task, "train"), found,
                       template=record.input_template, config=config, rows=rows, steps=steps,
                       on_progress=on_progress)
