"""A training run, driven one optimiser step at a time, with evaluation, checkpoints and resume.

``TrainingJob`` is stepped by its caller (the worker interleaves steps with requests; the CLI
uses ``run_job``). Continual learning starts from the task's active version, mixes in replayed
earlier data, pulls towards the parent, and records gain and forgetting
(``engine.training.continual``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.breaks import layer_breaks
from engine.chat import OnRows, Row
from engine.errors import PromptbankError
from engine.faults import is_out_of_memory, release_memory
from engine.methods import get_method
from engine.payloads import EvalProgress, StepProgress
from engine.prompt_init import initial_tensor
from engine.prompts import ModelGeometry, SoftPrompt, check_length
from engine.training import continual
from engine.training.checkpointing import restore_optimizer, restore_state, save_state
from engine.training.config import TrainConfig
from engine.training.data import EvalSet, encode, eval_set, length_grouped_order
from engine.training.evaluation import Evaluator
from engine.training.params import PromptParams
from engine.training.passes import Pass, Passes

#: float16 gradients underflow unless the loss is scaled up before the backward pass (and the
#: gradients back down after it); an overflow skips the step and halves the scale, and every
#: GROWTH_STEPS good steps double it again (as torch's GradScaler does).
FLOAT16_SCALE = 2.0 ** 12
GROWTH_STEPS = 200


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

    def to_dict(self) -> dict:
        """The CLI's --json summary."""
        return {"task": self.task, "version": self.version, "steps": self.steps,
                "best_metric": self.best_metric, "metric_name": self.metric_name,
                "tokens_per_s": round(self.tokens_per_s, 1), "run_id": self.run_id}


def _optimizer(params: list[torch.nn.Parameter], config: TrainConfig,
               device: torch.device) -> torch.optim.Optimizer:
    # Fused AdamW is one kernel on a GPU instead of a dozen per step.
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay,
                             fused=device.type == "cuda")


class TrainingJob:
    """One training run, advanced one optimiser step at a time."""

    def __init__(self, library, host, task, config: TrainConfig, run_id: int, *,
                 train_rows: list[Row], eval_set: EvalSet, init_tensor: torch.Tensor,
                 parent=None, parent_tensor: torch.Tensor | None = None,
                 old_eval: EvalSet | None = None) -> None:
        self.library, self.host, self.task_record, self.config = library, host, task, config
        self.task: str = task.name
        self.run_id = run_id
        self.rows = train_rows
        self.eval_set = eval_set
        self.old_eval = old_eval
        self.parent = parent
        self.parent_tensor = parent_tensor
        self.method = get_method(config.method)
        self.params = PromptParams(self.method, init_tensor, ModelGeometry.of(host),
                                   config.reparam, config.seed)
        self.params.to(host.device)
        self.passes = Passes(host, [self.params],
                             [host.chat.head(template=task.input_template)],
                             graphs=config.graphs)
        self.optimizer = _optimizer(self.passes.parameters(0), config, host.device)
        self.evaluator = Evaluator(host, task, max_length=config.max_length,
                                   graphs=config.graphs)
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
        self.last_loss = float("nan")
        self.stop_reason = ""
        self.cancelled = False
        self.finished = False
        self.history: list[dict] = []
        self.summary: dict = {"rows": len(train_rows),
                              "truncated_rows": sum(r.truncated for r in train_rows)}
        self.pass_rows = config.micro_batch
        self.scaling = host.dtype == torch.float16
        self.loss_scale = FLOAT16_SCALE if self.scaling else 1.0
        self.good_steps = 0

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def start(cls, library, host, task: str, config: TrainConfig, *,
              continue_data: Path | None = None,
              between: Callable[[], None] | None = None,
              on_rows: OnRows | None = None) -> TrainingJob:
        """Validate, create the run row and return a job ready to step.

        With ``continue_data`` the job continues the task's active version on that file;
        ``between`` is called between the model's layers (engine.breaks) while it evaluates;
        ``on_rows`` follows the tokenising of the training rows.
        """
        config.check()
        check_length(config.length, host.max_positions, room=config.max_length)
        record = library.get_task(task)
        parent = parent_tensor = None
        if continue_data is not None:
            parent, parent_tensor = continual.parent_of(library, host, task, config)
        library.record_model(host.info().to_dict())
        init = (parent_tensor.clone() if parent_tensor is not None else
                initial_tensor(host, config.method, config.length, config.init, record,
                               seed=config.seed, library=library))
        run_config = {"train": config.to_dict(), "model": host.fingerprint}
        if continue_data is not None:
            dataset = library.add_dataset(task, continue_data, seed=config.seed)
            run_config["continue_dataset_id"] = dataset.id
            run_config["continue_data"] = str(continue_data)
            config.init = f"continue:v{parent.number}"
            run_config["train"] = config.to_dict()
        elif not library.examples(task, "train"):
            raise PromptbankError(f"The task '{task}' has no training examples.",
                                  hint="Add a dataset to it first (promptbank data add).")
        run = library.create_run(task, run_config,
                                 parent_version_id=parent.id if parent else None,
                                 kind="continue" if parent else "train")
        job = cls._build(library, host, record, config, run.id, run_config, init, parent,
                         parent_tensor, on_rows)
        if parent is not None:
            with layer_breaks(host.model, between):
                job.summary["before"] = job.evaluate_sets(parent_tensor)
        job.save_checkpoint()
        return job

    @classmethod
    def _build(cls, library, host, record, config: TrainConfig, run_id: int, run_config: dict,
               init: torch.Tensor, parent, parent_tensor,
               on_rows: OnRows | None = None) -> TrainingJob:
        pools = continual.pools(library, record.name, config,
                                run_config.get("continue_dataset_id"))
        rows = encode(host, pools.train, template=record.input_template,
                      max_length=config.max_length, on_rows=on_rows)
        evals = eval_set(pools.eval_name, pools.evals, config.eval_size, config.seed)
        return cls(library, host, record, config, run_id, train_rows=rows, eval_set=evals,
                   init_tensor=init, parent=parent, parent_tensor=parent_tensor,
                   old_eval=pools.old_eval)

    @classmethod
    def resume(cls, library, host, run_id: int, *,
               on_rows: OnRows | None = None) -> TrainingJob:
        """Continue a cancelled or interrupted run from its last checkpoint.

        The run is claimed for this process first, so no other process trains it at the same
        time (a finished run, or one a live process holds, is refused).
        """
        run = library.claim_run(run_id)
        try:
            if run.config.get("model") not in (None, host.fingerprint):
                raise PromptbankError(f"Run {run_id} was trained on another model.",
                                      hint="Load that model to resume it.")
            tensors, state = restore_state(library.checkpoint_dir(run_id))
            config = TrainConfig.from_dict(run.config["train"])
            record = library.get_task_by_id(run.task_id)
            parent = parent_tensor = None
            if run.parent_version_id is not None:
                parent = library.version_by_id(run.parent_version_id)
                parent_tensor = SoftPrompt.load(library.version_path(parent),
                                                sha256=parent.sha256).tensor
            job = cls._build(library, host, record, config, run_id, run.config,
                             tensors["init"], parent, parent_tensor, on_rows)
            job._restore(tensors, state)
        except BaseException:
            library.release_run(run_id)
            raise
        library.finish_run(run_id, "running")
        return job

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
                 "history": self.history, "summary": self.summary,
                 "loss_scale": self.loss_scale, "good_steps": self.good_steps}
        return tensors, state

    def _restore(self, tensors: dict[str, torch.Tensor], state: dict) -> None:
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
        self.history, self.summary = state["history"], state["summary"]
        self.loss_scale = state.get("loss_scale", self.loss_scale)
        self.good_steps = state.get("good_steps", 0)

    def save_checkpoint(self) -> None:
        """Write the full training state to the run's checkpoint folder."""
        tensors, state = self._state()
        save_state(self.library.checkpoint_dir(self.run_id), tensors, state, self.optimizer)

    # ---- stepping -----------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.finished or self.cancelled or self.step_index >= self.total_steps \
            or bool(self.stop_reason)

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then linear decay to zero at the last step."""
        warm = max(1, int(self.config.warmup * self.total_steps))
        if step < warm:
            return self.config.lr * (step + 1) / warm
        remaining = max(1, self.total_steps - warm)
        return self.config.lr * max(0.0, 1.0 - (step - warm) / remaining)

    def _next_batch(self) -> list[Row]:
        if self.cursor >= len(self.order):
            self.epoch += 1
            self.cursor = 0
            self.order = self._epoch_order(self.epoch)
        idx = self.order[self.cursor]
        self.cursor += 1
        return [self.rows[i] for i in idx]

    def _accumulate(self, rows: list[Row], grads: list[torch.Tensor | None]) -> torch.Tensor:
        """Add one batch's gradients to ``grads``, in passes; return its mean loss (device).

        Every answer token weighs 1 / (the batch's answer tokens × accumulation), so the
        passes' gradients add up to the whole batch's mean over the accumulated batches.
        """
        count = sum(len(r.answer_ids) for r in rows)
        weight = 1.0 / (count * self.config.grad_accum)
        width = max(len(r) for r in rows)
        size = self.pass_rows or self.passes.rows_per_pass(len(rows), width)
        loss = torch.zeros((), device=self.host.device)
        for begin in range(0, len(rows), size):
            part = rows[begin:begin + size]
            sums, part_grads = self.passes.run(Pass(part, [0] * len(part), [weight] * len(part)),
                                               self.loss_scale)
            loss = loss + sums[0] * self.config.grad_accum
            for i, g in enumerate(part_grads):
                grads[i] = g.clone() if grads[i] is None else grads[i].add_(g)
            self.tokens += sum(len(r) for r in part)
        return loss

    def step(self, between: Callable[[], None] | None = None
             ) -> list[StepProgress | EvalProgress]:
        """One optimiser step, then evaluation/checkpoint when due; returns progress events.

        ``between`` is called between the model's layers (engine.breaks), where the worker
        answers requests; its time does not count as training time.
        """
        if self.done:
            return []
        started = time.perf_counter()
        paused = 0.0

        def pause() -> None:
            nonlocal paused
            begun = time.perf_counter()
            between()
            paused += time.perf_counter() - begun

        # A step replayed from CUDA graphs has no layers to break between (and a capture must
        # not serve anything): its requests wait for the step, which is short on a GPU.
        breaks = pause if between is not None and not self.passes.graphs.enabled else None
        with layer_breaks(self.host.model, breaks):
            loss, lr = self._optimise()
            self.train_seconds += time.perf_counter() - started - paused
            return self._after_step(loss, lr)

    def _gradients(self, batches: list[list[Row]]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The summed gradients and mean loss of ``batches``. When the passes were sized
        automatically and run out of GPU memory, they are halved and the step retried."""
        while True:
            grads: list[torch.Tensor | None] = [None] * len(self.passes.parameters(0))
            try:
                losses = [self._accumulate(rows, grads) for rows in batches]
                return grads, sum(losses) / len(losses)
            except RuntimeError as exc:
                if not is_out_of_memory(exc):
                    raise
                del grads
                self.passes.reset()
                release_memory()
                planned = self.pass_rows or self.passes.rows_per_pass(
                    max(map(len, batches)), max(len(r) for b in batches for r in b))
                if self.config.micro_batch or planned <= 1:
                    self._fail_oom(planned)
                self.pass_rows = planned // 2

    def _optimise(self) -> tuple[float, float]:
        """Gradients of ``grad_accum`` batches, then the optimiser step; (mean loss, lr)."""
        lr = self.lr_at(self.step_index)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        params = self.passes.parameters(0)
        grads, mean_loss = self._gradients([self._next_batch()
                                            for _ in range(self.config.grad_accum)])
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad.div_(self.loss_scale) if self.loss_scale != 1.0 else grad
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
        if not finite and not self.scaling:
            self._fail_non_finite(loss)
        if self.scaling:
            self._rescale(finite)
        self.step_index += 1
        self.last_loss = loss
        return loss, lr

    def _rescale(self, finite: bool) -> None:
        """Loss scaling for float16: halve after an overflow (that step changed nothing),
        double after ``GROWTH_STEPS`` good steps."""
        if not finite:
            self.loss_scale /= 2.0
            self.good_steps = 0
            self.summary["skipped_steps"] = self.summary.get("skipped_steps", 0) + 1
            return
        self.good_steps += 1
        if self.good_steps % GROWTH_STEPS == 0:
            self.loss_scale *= 2.0

    def _after_step(self, loss: float, lr: float) -> list[StepProgress | EvalProgress]:
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
                             eta_s=per_step * (self.total_steps - self.step_index))
        self.library.log_metrics(self.run_id, self.step_index,
                                 {"loss": loss, "lr": lr, "tokens_per_s": event.tokens_per_s})
        return event

    def _fail(self, message: str, hint: str) -> None:
        self.finished = True
        self.library.finish_run(self.run_id, "failed",
                                summary={**self.summary, "error": f"{message} {hint}",
                                         "steps": self.step_index})
        raise PromptbankError(message, hint=hint)

    def _fail_non_finite(self, loss: float) -> None:
        kind = "NaN" if math.isnan(loss) else ("infinite" if math.isinf(loss) else "non-finite")
        what = "loss" if not math.isfinite(loss) else "gradient"
        self._fail(
            f"The training {what} became {kind} at step {self.step_index + 1}, so the run "
            f"stopped; its last good checkpoint (run {self.run_id}) is kept.",
            f"Lower the learning rate (now {self.config.lr:g}) and start again.")

    def _fail_oom(self, rows: int) -> None:
        size, accum = self.config.batch_size, self.config.grad_accum
        rows = min(rows, size)
        if rows > 1:
            hint = (f"Use --micro-batch {rows // 2}: the same training in smaller passes "
                    "(slower, same result).")
        else:
            hint = (f"Use --batch-size {max(1, size // 2)} (and --grad-accum {2 * accum} for "
                    "the same effective batch), or shorter texts (--max-length).")
        per_pass = "1 row" if rows == 1 else f"{rows} rows"
        self._fail(f"Out of memory at batch size {size} ({per_pass} per pass); run "
                   f"{self.run_id} stopped and its last checkpoint is kept.", hint)

    # ---- evaluation ---------------------------------------------------------------------
    @property
    def metric_name(self) -> str:
        return self.evaluator.metric_name

    def evaluate(self, tensor: torch.Tensor, data: EvalSet) -> dict:
        """Eval loss and the task's metric of a prompt tensor on an evaluation set."""
        return self.evaluator(self.config.method, tensor, data)

    def _better(self, metric: float) -> bool:
        if self.best is None:
            return True
        if self.metric_name == "eval_loss":
            return metric < self.best["metric"]
        return metric > self.best["metric"]

    def _eval_event(self) -> EvalProgress:
        value = self.params.value().detach()
        result = self.evaluate(value, self.eval_set)
        if self._better(result["metric"]):
            self.best = {"step": self.step_index, **result}
            self.best_tensor = value.clone().cpu()
            self.evals_since_best = 0
        else:
            self.evals_since_best += 1
            if self.config.patience and self.evals_since_best >= self.config.patience:
                self.stop_reason = f"no improvement in {self.config.patience} evaluations"
        self.history.append({"step": self.step_index, **result})
        self.library.log_metrics(self.run_id, self.step_index,
                                 {"eval_loss": result["eval_loss"], "metric": result["metric"]})
        return EvalProgress(step=self.step_index, eval_loss=result["eval_loss"],
                            metric=result["metric"], metric_name=self.metric_name,
                            n=result["n"])

    def evaluate_sets(self, tensor: torch.Tensor) -> dict:
        """The tensor evaluated on the new (and, in continual runs, the old) evaluation set."""
        sets = {"new": self.eval_set}
        if self.old_eval is not None and len(self.old_eval):
            sets["old"] = self.old_eval
        return {name: self.evaluate(tensor, data) for name, data in sets.items()}

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

    def finish(self, between: Callable[[], None] | None = None) -> TrainResult:
        """Save the kept prompt as a new version (never overwriting) and close the run.

        ``between`` is called between the model's layers while it evaluates.
        """
        if self.finished:
            raise PromptbankError(f"Run {self.run_id} is already closed.")
        with layer_breaks(self.host.model, between):
            return self._save_version()

    def _save_version(self) -> TrainResult:
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
                   "seed": config.seed})
        best = self.best or {}
        metrics = {"metric_name": self.metric_name, "best_metric": best.get("metric"),
                   "eval_loss": best.get("eval_loss"), "best_step": best.get("step"),
                   "eval_n": best.get("n"), "steps": self.step_index, "init": config.init}
        version = self.library.add_version(self.task, prompt.to_bytes(),
                                           parent_id=self.parent.id if self.parent else None,
                                           run_id=self.run_id, metrics=metrics)
        if self.parent is not None:
            continual.record(self, tensor, version)
        # A task's first version is served at once; later ones wait for the user to compare
        # them (and, after continual learning, to check the forgetting) and activate them.
        activated = self.library.get_task(self.task).active_version_id is None
        if activated:
            self.library.set_active(self.task, version.number)
        tokens_per_s = self.tokens / max(self.train_seconds, 1e-9)
        self.summary.update({"steps": self.step_index, "best": self.best,
                             "stop_reason": self.stop_reason or "steps done",
                             "tokens_per_s": tokens_per_s, "version": version.number,
                             "activated": activated, "train_seconds": self.train_seconds})
        self.library.finish_run(self.run_id, "done", version_id=version.id,
                                summary=self.summary)
        self.finished = True
        return TrainResult(self.task, version.number, self.step_index, best.get("metric"),
                           self.metric_name, tokens_per_s, self.run_id, self.summary)


def run_job(job: TrainingJob,
            on_event: Callable[[StepProgress | EvalProgress], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> TrainResult | None:
    """Step a job to its end and save the version; None when ``should_stop`` cancelled it."""
    while not job.done:
        if should_stop is not None and should_stop():
            job.cancel()
            return None
        for event in job.step():
            if on_event is not None:
                on_event(event)
    if job.cancelled:
        return None
    return job.finish()
