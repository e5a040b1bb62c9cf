"""Suggesting a starting point for a new task: the library's prompts of the same method and
length (and the text init) ranked by a short probe.

Every candidate takes a few optimiser steps on a few dozen of the new task's rows, all in the
same mixed passes (each row after its candidate's prompt, ``engine.training.passes``), and is
ranked by its loss on those rows afterwards: the start that adapts fastest to the task comes
first. When a library prompt beats the text init, the text init trains on for up to
``HEAD_START_BLOCKS`` more probe lengths until it reaches that loss: the steps it needed more
are the best start's head start, said in plain words. The library is not changed.
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
#: How many more probe lengths the text init may train to catch up with the best start.
HEAD_START_BLOCKS = 3


@dataclass
class StartScore:
    """One candidate start: its init string, where it comes from, and its probe losses."""

    init: str
    source: str  # text | task | universal | mix
    version: int | None
    loss_before: float
    loss_after: float
    why: str = ""
    #: Probe steps the text init needed more to reach this start's loss (measured for the
    #: best start only; at least this many when ``head_start`` says "more than").
    steps_saved: int | None = None
    head_start: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Candidate:
    """A start to probe: its init string, kind, version number and tensor (a mix's own part,
    with its ``sources``)."""

    init: str
    source: str
    version: int | None
    tensor: torch.Tensor
    sources: torch.Tensor | None = None


def candidates(library: Library, host: ModelHost, method: str, length: int, *, exclude: str = "",
               instruction: str = "", name: str = "new task",
               names: Sequence[str] = ()) -> list[Candidate]:
    """The active prompts of the library's tasks (only ``names``' when given) with this method
    and length on this model (a universal prompt's as ``universal:NAME``), then the text init
    when there is text and, with both, the text init mixed with those prompts (``mix``)."""
    found = []
    for task, version, tensor in library_prompts(library, host, method, length, exclude=exclude,
                                                 names=names):
        source = "universal" if task.kind == "universal" else "task"
        found.append(Candidate(f"{source}:{task.name}", source, version.number, tensor))
    if instruction.strip():
        draft = Task(0, name, "generate", [], "", instruction, None, None, "")
        text = initial_tensor(host, method, length, "text", draft)
        if found:
            found.append(Candidate("mix", "mix", None, text,
                                   torch.stack([c.tensor.float() for c in found])))
        found.append(Candidate("text", "text", None, text))
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
    params = [PromptParams(get_method(config.method), c.tensor, geometry, sources=c.sources)
              for c in found]
    for p in params:
        p.to(host.device)
    head = host.chat.head(template=template)
    texts = [k for k, c in enumerate(found) if c.source == "text"]
    total = steps * (1 + (HEAD_START_BLOCKS if texts and len(found) > 1 else 0))
    trainer = _Trainer(host, params, head, probe, config)
    before = _losses(host, config.method, params, probe)
    for step in range(steps):
        trainer.step(step)
        if on_progress is not None:
            on_progress(step + 1, total)
    after = _losses(host, config.method, params, probe)
    scores = [StartScore(c.init, c.source, c.version, b, a) for c, b, a in
              zip(found, before, after, strict=True)]
    order = sorted(range(len(found)), key=lambda k: after[k])
    scores = [scores[k] for k in order]
    for rank, score in enumerate(scores, 1):
        score.why = (f"#{rank}: loss {score.loss_after:.3f} on {len(probe)} of the task's rows "
                     f"after {steps} steps (from {score.loss_before:.3f} at the start)")
    if texts and len(found) > 1:
        best = scores[0]
        best.steps_saved = 0 if best.source == "text" else _catch_up(
            trainer.alone(texts[0]), best.loss_after, steps, total, on_progress)
        best.head_start = head_start_words(best, steps)
        # The text init caught up early, or did not need to train on: the bar ends anyway.
        if on_progress is not None and steps + best.steps_saved < total:
            on_progress(total, total)
    return scores


def head_start_words(best: StartScore, steps: int) -> str:
    """The best start's head start over the text init, for a person."""
    if best.source == "text":
        return ("Your instruction is the best start: no prompt in the library got ahead of it "
                "on this probe.")
    most = HEAD_START_BLOCKS * steps
    kind, _, name = best.init.partition(":")
    start = {"task": f"The prompt of '{name}'", "universal": f"The universal prompt '{name}'",
             "mix": "Your instruction mixed with the library's prompts"}[kind]
    if best.steps_saved is not None and best.steps_saved > most:
        return (f"{start} starts more than {most} steps ahead of your instruction alone: "
                f"trained {most + steps} steps, the instruction did not reach the loss this "
                f"start had after {steps}.")
    return (f"{start} starts about {best.steps_saved} steps ahead of your instruction alone: "
            f"the instruction needed {best.steps_saved + steps} steps to reach the loss this "
            f"start had after {steps}.")


class _Trainer:
    """The probe's optimiser steps: every candidate on the same rows and batches, in mixed
    passes (``engine.training.passes``)."""

    def __init__(self, host: ModelHost, params: list[PromptParams], head: list[int], probe,
                 config: TrainConfig, optimizers: list | None = None) -> None:
        self.host, self.params, self.head, self.probe, self.config = (
            host, params, head, probe, config)
        self.passes = Passes(host, params, [head] * len(params), graphs=config.graphs)
        self.optimizers = optimizers or [optimizer_for(p.trainable(), config, host.device)
                                         for p in params]

    def alone(self, index: int) -> _Trainer:
        """A trainer of one candidate only, going on with its optimiser's state."""
        return _Trainer(self.host, [self.params[index]], self.head, self.probe, self.config,
                        [self.optimizers[index]])

    def step(self, step: int) -> None:
        probe, found = self.probe, len(self.params)
        size = min(self.config.batch_size, len(probe))
        begin = (step * size) % len(probe)
        batch = (probe + probe)[begin:begin + size]
        weight = 1.0 / sum(len(r.answer_ids) for r in batch)
        _, grads = self.passes.run(Pass(batch * found, [k for k in range(found) for _ in batch],
                                        [weight] * (len(batch) * found)))
        offset = 0
        for p, optimizer in zip(self.params, self.optimizers, strict=True):
            trainable = p.trainable()
            for param, grad in zip(trainable, grads[offset:offset + len(trainable)],
                                   strict=True):
                param.grad = grad
            offset += len(trainable)
            torch.nn.utils.clip_grad_norm_(trainable, self.config.clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    def loss(self) -> float:
        return _losses(self.host, self.config.method, self.params, self.probe)[0]


def _catch_up(text: _Trainer, target: float, steps: int, total: int,
              on_progress: OnProbe | None) -> int:
    """The steps the text init trains beyond the probe's until its loss is ``target`` or
    lower, a probe length at a time (one more probe length than allowed when it never is)."""
    for block in range(1, HEAD_START_BLOCKS + 1):
        for step in range(block * steps, (block + 1) * steps):
            text.step(step)
            if on_progress is not None:
                on_progress(step + 1, total)
        if text.loss() <= target:
            return block * steps
    return (HEAD_START_BLOCKS + 1) * steps


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
