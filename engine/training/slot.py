"""One task's prompt in training: its rows and batch order, parameters and optimiser,
schedule, evaluation with keep-best and early stopping, checkpoint state, and the version it
saves.

A job (``engine.training.job``) runs the model: it steps one slot (``TrainingJob``) or the
slots of several tasks in mixed passes (``engine.training.joint``). A slot's result depends
only on its own rows, seed and settings, so a task trained beside others ends where it ends
alone.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from engine.api.training import EvalProgress, JobOutcome, StepProgress
from engine.errors import PromptbankError
from engine.library.catalogue import CatalogueBusy
from engine.methods import get_method
from engine.model.chat import Row
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
from engine.training import continual
from engine.training.batches import EvalSet, length_grouped_order
from engine.training.checkpointing import restore_optimizer, save_state
from engine.training.config import TrainConfig
from engine.training.params import PromptParams

#: Seconds to wait before each new try of a metrics write another program's lock kept out
#: (each try first waits the catalogue's own busy timeout).
LOCK_RETRY_S = (2.0, 5.0, 10.0)

if TYPE_CHECKING:
    from engine.library import Library
    from engine.model.host import ModelHost


@dataclass
class TrainResult:
    """What a finished run produced."""

    task: str
    version: int
    steps: int
    best_metric: float | None
    metric_name: str
    tokens_per_s: float
    run_id: int
    summary: dict = field(default_factory=dict)
    total: int = 0  # the steps the run was asked for

    def to_dict(self) -> dict:
        """The CLI's --json summary."""
        return {"task": self.task, "version": self.version, "steps": self.steps,
                "best_metric": self.best_metric, "metric_name": self.metric_name,
                "tokens_per_s": round(self.tokens_per_s, 1), "run_id": self.run_id}

    def outcome(self) -> JobOutcome:
        """The worker's result of the run, with its summary."""
        return JobOutcome(status="done", task=self.task, run_id=self.run_id,
                          version=self.version, steps=self.steps, step=self.steps,
                          total=self.total, best_metric=self.best_metric,
                          metric_name=self.metric_name,
                          tokens_per_s=round(self.tokens_per_s, 1), summary=self.summary)


def optimizer_for(params: list[torch.nn.Parameter], config: TrainConfig,
                  device: torch.device) -> torch.optim.Optimizer:
    """The optimiser of a prompt's parameters (AdamW with the run's settings)."""
    # Fused AdamW is one kernel on a GPU instead of a dozen per step.
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay,
                             fused=device.type == "cuda")


def lr_at(config: TrainConfig, step: int, total: int) -> float:
    """Linear warm-up, then linear decay to zero at the last of ``total`` steps."""
    warm = max(1, int(config.warmup * total))
    if step < warm:
        return config.lr * (step + 1) / warm
    remaining = max(1, total - warm)
    return config.lr * max(0.0, 1.0 - (step - warm) / remaining)


class TaskSlot:
    """One task's run: everything but the passes through the model.

    ``evaluator`` measures a tensor on ``eval_set`` (``engine.training.evaluation``).
    """

    def __init__(self, library: Library, host: ModelHost, task, config: TrainConfig, run_id: int, *,
                 rows: list[Row], eval_set, evaluator, init_tensor: torch.Tensor,
                 parent=None, parent_tensor: torch.Tensor | None = None,
                 old_eval: EvalSet | None = None, select_on_loss: bool = False,
                 eval_on_train: bool = False, sources: torch.Tensor | None = None) -> None:
        self.library, self.host, self.task_record, self.config = library, host, task, config
        self.task: str = task.name
        self.run_id = run_id
        self.rows = rows
        self.eval_set = eval_set
        self.old_eval = old_eval
        self.parent = parent
        self.parent_tensor = parent_tensor
        # Few-shot runs without held-out rows keep the prompt whose loss is lowest.
        self.select_on_loss = select_on_loss
        #: What the run's metric is measured on, said with every result of it.
        self.eval_on = "training rows" if eval_on_train else "held-out rows"
        self.method = get_method(config.method)
        self.params = PromptParams(self.method, init_tensor, ModelGeometry.of(host),
                                   config.reparam, config.seed, sources=sources)
        self.params.to(host.device)
        self.head = host.chat.head(template=task.input_template)
        self.optimizer = optimizer_for(self.params.trainable(), config, host.device)
        self.evaluator = evaluator
        self.total_steps = config.steps
        self.step_index = 0
        self.epoch = 0
        self.cursor = 0
        self.order = self._epoch_order(0)
        self.best: dict | None = None
        self.best_tensor: torch.Tensor | None = None
        self.evals_since_best = 0
        self.tokens = 0
        self.train_seconds = 0.0
        # The steps' time with their evaluations and checkpoints (what a run really takes per
        # step here, for the desktop's time estimates); train_seconds is the optimiser's alone.
        self.wall_seconds = 0.0
        self.last_loss = float("nan")
        self.stop_reason = ""
        self.cancelled = False
        self.finished = False
        self.history: list[dict] = []
        self.summary: dict = {"rows": len(rows), "truncated_rows": sum(r.truncated for r in rows)}
        # The loss scale of the job stepping this slot (float16), kept in the checkpoint so a
        # resumed job goes on with it: {"loss_scale": ..., "good_steps": ...}.
        self.scale_state: dict = {}

    # ---- state --------------------------------------------------------------------------
    def _epoch_order(self, epoch: int) -> list[list[int]]:
        return length_grouped_order([len(r) for r in self.rows], self.config.batch_size,
                                    self.config.seed * 100_003 + epoch)

    def _state(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors = {f"param.{name}": value for name, value in self.params.state_dict().items()}
        tensors["init"] = self.params.initial().detach()
        tensors["rng"] = torch.get_rng_state()
        if self.best_tensor is not None:
            tensors["best"] = self.best_tensor
        state = {"step": self.step_index, "epoch": self.epoch, "cursor": self.cursor,
                 "order": self.order, "best": self.best, "evals_since_best": self.evals_since_best,
                 "tokens": self.tokens, "train_seconds": self.train_seconds,
                 "wall_seconds": self.wall_seconds, "history": self.history,
                 "summary": self.summary, **self.scale_state}
        return tensors, state

    def restore(self, tensors: dict[str, torch.Tensor], state: dict) -> None:
        """Put back what ``save_checkpoint`` wrote (the run continues from there)."""
        params = {k.removeprefix("param."): v for k, v in tensors.items()
                  if k.startswith("param.")}
        self.params.load_state_dict(params)
        restore_optimizer(self.optimizer, tensors, state["optimizer"])
        torch.set_rng_state(tensors["rng"])
        self.best_tensor = tensors.get("best")
        self.step_index, self.epoch, self.cursor = state["step"], state["epoch"], state["cursor"]
        self.order = state["order"]
        self.best, self.evals_since_best = state["best"], state["evals_since_best"]
        self.tokens, self.train_seconds = state["tokens"], state["train_seconds"]
        self.wall_seconds = state.get("wall_seconds", self.train_seconds)  # older checkpoints
        self.history, self.summary = state["history"], state["summary"]
        self.scale_state = {k: state[k] for k in ("loss_scale", "good_steps") if k in state}

    def save_checkpoint(self) -> None:
        """Write the full training state to the run's checkpoint folder."""
        tensors, state = self._state()
        save_state(self.library.checkpoint_dir(self.run_id), tensors, state, self.optimizer)

    # ---- one optimiser step ----------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.finished or self.cancelled or self.step_index >= self.total_steps \
            or bool(self.stop_reason)

    def lr_at(self, step: int) -> float:
        return lr_at(self.config, step, self.total_steps)

    def _next_batch(self) -> list[Row]:
        if self.cursor >= len(self.order):
            self.epoch += 1
            self.cursor = 0
            self.order = self._epoch_order(self.epoch)
        idx = self.order[self.cursor]
        self.cursor += 1
        return [self.rows[i] for i in idx]

    def begin_step(self) -> tuple[float, list[list[Row]]]:
        """Set this step's learning rate; (it, the ``grad_accum`` batches the step trains on)."""
        lr = self.lr_at(self.step_index)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr, [self._next_batch() for _ in range(self.config.grad_accum)]

    def token_weight(self, rows: Sequence[Row]) -> float:
        """Each answer token's loss weight in a batch: the passes' gradients then add up to the
        gradient of the mean over the step's accumulated batches."""
        return 1.0 / (sum(len(r.answer_ids) for r in rows) * self.config.grad_accum)

    def apply(self, grads: list[torch.Tensor], mean_loss: torch.Tensor, scale: float = 1.0,
              *, skip_overflow: bool = False) -> tuple[float, bool]:
        """The optimiser step on summed gradients of a loss scaled by ``scale`` (unscaled
        here, then the anchor and clipping); (the loss, whether it was finite).

        A non-finite loss or gradient changes nothing: with ``skip_overflow`` (float16 loss
        scaling) the step is skipped and counted, otherwise the run closes as failed."""
        params = self.params.trainable()
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad.div_(scale) if scale != 1.0 else grad
        if self.config.anchor and self.parent_tensor is not None:
            value = self.params.value()
            pull = (value - self.parent_tensor.to(value.device)).pow(2).mean()
            (self.config.anchor * pull).backward()
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.clip)
        loss, norm_value = torch.stack([mean_loss, norm.float()]).tolist()
        finite = math.isfinite(loss) and math.isfinite(norm_value)
        if finite:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if not finite:
            if not skip_overflow:
                self._fail_non_finite(loss)
            self.summary["skipped_steps"] = self.summary.get("skipped_steps", 0) + 1
        self.step_index += 1
        self.last_loss = loss
        return loss, finite

    def after_step(self, loss: float, lr: float) -> list[StepProgress | EvalProgress]:
        """The step's events; stop conditions, evaluation and checkpoint when due."""
        events: list[StepProgress | EvalProgress] = [self._step_event(loss, lr)]
        if self.config.stop_at_loss is not None and loss <= self.config.stop_at_loss:
            self.stop_reason = f"train loss reached {self.config.stop_at_loss}"
        budget = self.config.time_budget_s
        if budget is not None and self.train_seconds >= budget:
            self.stop_reason = f"time budget of {budget:g} s used"
        every = self.config.eval_every
        if (every and self.step_index % every == 0) or self.done:
            events.append(self._eval_event())
        every = self.config.checkpoint_every
        if every and self.step_index % every == 0 and not self.done:
            self.save_checkpoint()
        return events

    def _step_event(self, loss: float, lr: float) -> StepProgress:
        # The ETA comes from the measured time per step of this run, nothing else.
        per_step = self.train_seconds / max(1, self.step_index)
        event = StepProgress(step=self.step_index, total=self.total_steps, loss=loss, lr=lr,
                             tokens_per_s=self.tokens / max(self.train_seconds, 1e-9),
                             eta_s=per_step * (self.total_steps - self.step_index),
                             task=self.task)
        self._log({"loss": loss, "lr": lr, "tokens_per_s": event.tokens_per_s})
        return event

    def _log(self, metrics: dict, merge: bool = False) -> None:
        """Record this step's metrics. While another program holds the catalogue locked the
        write is tried again after longer and longer waits; past them the run stops at this
        step with its checkpoint saved, resumable, and says so."""
        for wait in (*LOCK_RETRY_S, None):
            try:
                self.library.log_metrics(self.run_id, self.step_index, metrics, merge=merge)
                return
            except CatalogueBusy as exc:
                if wait is None:
                    self._stop_locked(exc)
                time.sleep(wait)

    def _stop_locked(self, exc: CatalogueBusy) -> None:
        self.save_checkpoint()  # files only: the catalogue is not needed to resume from it
        self.finished = True
        reason = "another program held the library catalogue locked"
        # Still locked, the run shows as interrupted once this process ends.
        with contextlib.suppress(CatalogueBusy):
            self.library.finish_run(self.run_id, "cancelled", summary={
                **self.summary, "steps": self.step_index, "resumable": True,
                "interrupted": reason})
        raise PromptbankError(
            f"{exc.message} Run {self.run_id} of '{self.task}' stopped at step "
            f"{self.step_index} after trying again for {sum(LOCK_RETRY_S):g} s more; its "
            "checkpoint is saved, nothing is lost.",
            hint=f"When the other program is done, resume it: `promptbank train {self.task} "
            f"--resume {self.run_id}` (or Resume on the Training page).")

    # ---- failures -----------------------------------------------------------------------
    def fail(self, message: str, hint: str) -> None:
        """Close the run as failed (its last checkpoint stays) and raise the error."""
        self.close_failed(f"{message} {hint}")
        raise PromptbankError(message, hint=hint)

    def close_failed(self, error: str) -> None:
        """Mark the run failed with ``error`` (its last checkpoint stays)."""
        self.finished = True
        self.library.finish_run(self.run_id, "failed",
                                summary={**self.summary, "error": error,
                                         "steps": self.step_index})

    def _fail_non_finite(self, loss: float) -> None:
        kind = "NaN" if math.isnan(loss) else ("infinite" if math.isinf(loss) else "non-finite")
        what = "loss" if not math.isfinite(loss) else "gradient"
        self.fail(
            f"The training {what} became {kind} at step {self.step_index + 1}, so the run "
            f"stopped; its last good checkpoint (run {self.run_id}) is kept.",
            f"Lower the learning rate (now {self.config.lr:g}) and start again.")

    # ---- evaluation ---------------------------------------------------------------------
    @property
    def metric_name(self) -> str:
        return "eval_loss" if self.select_on_loss else self.evaluator.metric_name

    def evaluate(self, tensor: torch.Tensor, data) -> dict:
        """Eval loss and the task's metric of a prompt tensor on an evaluation set."""
        result = self.evaluator(self.config.method, tensor, data)
        if self.select_on_loss:
            result["metric"] = result["eval_loss"]
        return result

    def _better(self, metric: float, best: dict | None, margin: float = 0.0) -> bool:
        """Whether ``metric`` beats ``best`` by more than ``margin`` of it."""
        if best is None:
            return True
        slack = abs(best["metric"]) * margin
        if self.metric_name == "eval_loss":
            return metric < best["metric"] - slack
        return metric > best["metric"] + slack

    def _eval_event(self) -> EvalProgress:
        value = self.params.value().detach()
        result = self.evaluate(value, self.eval_set)
        previous = self.best
        if self._better(result["metric"], previous):
            self.best = {"step": self.step_index, **result}
            self.best_tensor = value.clone().cpu()
        if self._better(result["metric"], previous, self.config.min_improvement):
            self.evals_since_best = 0
        else:
            self.evals_since_best += 1
            if self.config.patience and self.evals_since_best >= self.config.patience:
                self.stop_reason = f"no improvement in {self.config.patience} evaluations"
        self.history.append({"step": self.step_index, **result})
        # The metric's name goes with it, so a run read back later (curves, overlays) says
        # what its evaluation measured.
        self._log({"eval_loss": result["eval_loss"], "metric": result["metric"],
                   "metric_name": self.metric_name}, merge=True)
        return EvalProgress(step=self.step_index, eval_loss=result["eval_loss"],
                            metric=result["metric"], metric_name=self.metric_name,
                            n=result["n"], task=self.task)

    def comparison_sets(self) -> dict[str, EvalSet]:
        """The named sets a continued prompt is measured on before and after: the new data
        and, in continual runs, the old."""
        sets = {"new": self.eval_set}
        if self.old_eval is not None and len(self.old_eval):
            sets["old"] = self.old_eval
        return sets

    #: Names in ``comparison_sets`` whose change counts as gain (the rest as forgetting).
    new_sets = frozenset({"new"})
    #: How the before/after evaluations are named in the catalogue (``continual-after-new``).
    comparison_prefix = "continual"

    def evaluate_sets(self, tensor: torch.Tensor) -> dict:
        """The tensor evaluated on every set of ``comparison_sets``."""
        return {name: self.evaluate(tensor, data)
                for name, data in self.comparison_sets().items()}

    # ---- ending -------------------------------------------------------------------------
    def cancel(self, reason: str = "") -> None:
        """Stop at this step boundary: checkpoint now and mark the run cancelled (resumable).

        ``reason`` says why when nobody asked (the client went away, shutdown)."""
        if self.finished or self.cancelled:
            return
        self.cancelled = True
        self.save_checkpoint()
        summary = {**self.summary, "steps": self.step_index, "resumable": True}
        if reason:
            summary["interrupted"] = reason
        self.library.finish_run(self.run_id, "cancelled", summary=summary)

    def final_tensor(self) -> torch.Tensor:
        """The kept prompt: the best evaluated one, else the current one (MLP folded in)."""
        if self.best_tensor is not None:
            return self.best_tensor
        return self.params.value().detach().cpu()

    def version_extra(self) -> dict:
        """What the saved version records beyond the run's settings (in its metrics and, lists
        joined by commas, in its file's metadata)."""
        return {}

    def record_version(self, tensor: torch.Tensor, version) -> None:
        """Store what the new version is compared on (continual runs: before and after)."""
        if self.parent is not None:
            continual.record(self, tensor, version)

    def save_version(self):
        """Save the kept prompt as a new version (never overwriting) and close the run."""
        if self.finished:
            raise PromptbankError(f"Run {self.run_id} is already closed.")
        if self.best is None and self.step_index > 0:
            self._eval_event()
        tensor = self.final_tensor()
        config = self.config
        prompt = SoftPrompt(
            method=config.method, tensor=tensor, geometry=ModelGeometry.of(self.host),
            task=self.task, parent=f"{self.task}@v{self.parent.number}" if self.parent else "",
            init=config.init,
            extra={"run_id": self.run_id, "steps": self.step_index, "lr": config.lr,
                   "batch_size": config.batch_size, "reparam": config.reparam,
                   "seed": config.seed,
                   **({"quantization": self.host.quantization} if self.host.quantization
                      else {}),
                   **{k: ",".join(map(str, v)) if isinstance(v, list) else v
                      for k, v in self.version_extra().items()}})
        best = self.best or {}
        metrics = {"metric_name": self.metric_name, "best_metric": best.get("metric"),
                   "eval_loss": best.get("eval_loss"), "best_step": best.get("step"),
                   "eval_n": best.get("n"), "eval_on": self.eval_on, "steps": self.step_index,
                   "init": config.init,
                   **self.version_extra()}
        version = self.library.add_version(self.task, prompt.to_bytes(),
                                           parent_id=self.parent.id if self.parent else None,
                                           run_id=self.run_id, metrics=metrics)
        self.record_version(tensor, version)
        # A task's first version is served at once; later ones wait for the user to compare
        # them (and, after continual learning, to check the forgetting) and activate them.
        activated = self.library.get_task(self.task).active_version_id is None
        if activated:
            self.library.set_active(self.task, version.number)
        tokens_per_s = self.tokens / max(self.train_seconds, 1e-9)
        self.summary.update({"steps": self.step_index, "best": self.best,
                             "stop_reason": self.stop_reason or "steps done",
                             "tokens_per_s": tokens_per_s, "version": version.number,
                             "activated": activated, "train_seconds": self.train_seconds,
                             "wall_seconds": round(self.wall_seconds, 2)})
        self.library.finish_run(self.run_id, "done", version_id=version.id,
                                summary=self.summary)
        self.finished = True
        return TrainResult(self.task, version.number, self.step_index, best.get("metric"),
                           self.metric_name, tokens_per_s, self.run_id, self.summary,
                           self.total_steps)
