"""Evaluating a prompt tensor while it trains, exactly as serving and ``promptbank eval`` would.

The tensor is served from a private runtime (``engine.serving.runtime``), so a classify task's
accuracy goes through the one label scorer, with the same truncation and batches as
``promptbank eval``, and a stored metric agrees with a later evaluation of the saved version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from engine.forward.scoring import answer_logliks
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
from engine.serving.bank import TaskSpec
from engine.serving.runtime import DEFAULT_BATCH, Runtime
from engine.training.batches import EvalSet, SourcesEval

if TYPE_CHECKING:
    from engine.model.host import ModelHost

_VERSION = 1


class Evaluator:
    """Eval loss and the task's metric (accuracy for classify tasks, else eval loss)."""

    def __init__(self, host: ModelHost, task, *, max_length: int, graphs: bool = True,
                 runtime: Runtime | None = None) -> None:
        self.host = host
        self.task = task
        self.max_length = max_length
        # Evaluators of several tasks may share one runtime: each registers under its task.
        self.runtime = runtime or Runtime(host, graphs=graphs)
        self.spec = TaskSpec(task.name, task.kind, list(task.labels), task.input_template,
                             task.instruction or "")

    @property
    def metric_name(self) -> str:
        return "accuracy" if self.task.kind == "classify" and self.task.labels else "eval_loss"

    @torch.no_grad()
    def __call__(self, method: str, tensor: torch.Tensor, data: EvalSet) -> dict:
        """``eval_loss``, the metric under its own name and as ``metric``, and ``n``."""
        prompt = SoftPrompt(method, tensor, ModelGeometry.of(self.host), task=self.task.name)
        self.runtime.bank.forget(self.task.name)
        self.runtime.register(self.spec, prompt, version=_VERSION)
        if self.metric_name == "accuracy":
            result = self._classify(data)
        else:
            result = {"eval_loss": self._loss(data)}
        result["n"] = len(data)
        result["metric"] = result[self.metric_name]
        return result

    def _classify(self, data: EvalSet) -> dict:
        labels = self.task.labels
        _, scores = self.runtime.logliks([(self.task.name, t) for t in data.inputs],
                                         versions={self.task.name: _VERSION})
        gold = [labels.index(o) if o in labels else -1 for o in data.outputs]
        lengths = [len(self.host.chat.answer_ids(label)) for label in labels]
        hits = sum(max(range(len(s)), key=s.__getitem__) == g for s, g in zip(scores, gold,
                                                                              strict=True))
        known = [(s[g], lengths[g]) for s, g in zip(scores, gold, strict=True) if g >= 0]
        loss = -sum(v for v, _ in known) / max(1, sum(n for _, n in known))
        return {"eval_loss": loss, "accuracy": hits / max(1, len(gold))}

    def _loss(self, data: EvalSet) -> float:
        chat = self.host.chat
        rows = chat.rows(list(zip(data.inputs, data.outputs, strict=True)),
                         template=self.task.input_template, max_length=self.max_length)
        bank = self.runtime.bank
        start = bank.start(bank.resolve(self.task.name, _VERSION),
                           chat.head(template=self.task.input_template))
        total = count = 0.0
        for begin in range(0, len(rows), DEFAULT_BATCH):
            chunk = rows[begin:begin + DEFAULT_BATCH]
            sums, sizes = answer_logliks(self.host, [start], [0] * len(chunk), chunk)
            total += sum(sums)
            count += sum(sizes)
        return -total / max(count, 1.0)


class SourcesEvaluator:
    """A universal prompt evaluated on its source tasks, each by the source's own evaluator.

    Over all sources (a ``SourcesEval``) the metric is the mean eval loss, the one measure
    every kind of task has; on one source's set (named after it) it is that task's metric.
    """

    metric_name = "eval_loss"

    def __init__(self, host: ModelHost, sources, *, max_length: int, graphs: bool = True) -> None:
        runtime = Runtime(host, graphs=graphs)
        self.parts = {task.name: Evaluator(host, task, max_length=max_length, runtime=runtime)
                      for task in sources}

    def __call__(self, method: str, tensor: torch.Tensor, data: EvalSet | SourcesEval) -> dict:
        """The mean over every source (with each source's result under ``sources``), or one
        source's result (with its ``metric_name``)."""
        if isinstance(data, EvalSet):
            evaluator = self.parts[data.name]
            return {**evaluator(method, tensor, data), "metric_name": evaluator.metric_name}
        per = {name: self(method, tensor, part) for name, part in data.parts.items()}
        loss = sum(r["eval_loss"] for r in per.values()) / max(1, len(per))
        return {"eval_loss": loss, "metric": loss, "n": sum(r["n"] for r in per.values()),
                "sources": per}
