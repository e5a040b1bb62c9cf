"""Training soft prompts: one optimiser step at a time, with evaluation, checkpoints and resume.

``TrainingJob`` is driven step by step (the worker interleaves steps with requests; the CLI
uses ``run_job``). The prompt's keys/values are computed once per step and shared by the
batch (engine.kv), which is exact. Continual learning starts from the task's active version,
mixes in replayed earlier data and pulls towards the parent, and records gain and forgetting.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from engine.batching import DEFAULT_MAX_LENGTH, Row, collate, encode_row, length_grouped_order
from engine.breaks import layer_breaks
from engine.checkpoint import (
    load_checkpoint,
    optimizer_tensors,
    restore_optimizer,
    save_checkpoint,
)
from engine.errors import PromptbankError
from engine.kv import prompt_past
from engine.prompt_init import initial_tensor
from engine.prompts import METHODS, ModelGeometry, SoftPrompt
from engine.scoring import batch_loss, label_logliks, rank_accuracy, target_logprobs

#: Learning rates measured on the embedded model (see the README): KV prefixes move in a
#: different scale from input embeddings.
DEFAULT_LR = {"prefix": 2e-2, "prompt": 0.3}


@dataclass
class TrainConfig:
    """Settings of one training run (defaults chosen by measurement on the embedded model)."""

    method: str = "prefix"
    length: int = 20
    init: str = "text"
    steps: int = 300
    lr: float | None = None  # None: DEFAULT_LR[method]
    batch_size: int = 8
    grad_accum: int = 1
    # Rows per forward/backward pass (0: the whole batch). The passes' gradients add up to the
    # whole batch's, so this bounds activation memory without changing the result.
    micro_batch: int = 0
    eval_every: int = 50
    eval_size: int = 200
    seed: int = 0
    checkpoint_every: int = 50
    patience: int = 0  # evaluations without improvement before stopping; 0: never
    stop_at_loss: float | None = None
    time_budget_s: float | None = None
    warmup: float = 0.1  # share of the steps spent warming up
    weight_decay: float = 0.0
    clip: float = 1.0
    max_length: int = DEFAULT_MAX_LENGTH
    reparam: int = 0  # prefix only: hidden width of an MLP reparameterisation; 0: none
    replay: float = 0.0  # continual: share of the training pool drawn from earlier data
    anchor: float = 0.0  # continual: weight of the mean squared distance to the parent

    def __post_init__(self) -> None:
        if self.lr is None:
            self.lr = DEFAULT_LR.get(self.method, 0.1)

    def check(self) -> None:
        """Refuse settings that cannot work, before anything is written."""
        problems = [
            (self.method not in METHODS, f"Unknown method '{self.method}'; use prompt or prefix."),
            (self.length < 1, "The prompt length must be at least 1."),
            (self.steps < 1, "The number of steps must be at least 1."),
            (self.batch_size < 1, "The batch size must be at least 1."),
            (self.grad_accum < 1, "Gradient accumulation must be at least 1."),
            (self.micro_batch < 0, "The micro-batch cannot be negative (0: the whole batch)."),
            (not self.lr or self.lr <= 0 or not math.isfinite(self.lr),
             "The learning rate must be a positive number."),
            (self.eval_every < 0 or self.checkpoint_every < 0,
             "Evaluation and checkpoint intervals cannot be negative."),
            (not 0.0 <= self.replay < 1.0, "The replay fraction must be in [0, 1)."),
            (self.anchor < 0, "The anchor weight cannot be negative."),
            (self.reparam and self.method != "prefix",
             "The MLP reparameterisation applies to prefix prompts only."),
        ]
        for bad, message in problems:
            if bad:
                raise PromptbankError(message, hint="Fix the setting and start again.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


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


class PromptParams(torch.nn.Module):
    """The trainable prompt; for prefixes optionally an MLP on top of the initial keys/values.

    The MLP's last layer starts at zero, so step 0 is exactly the initial tensor; ``value()``
    folds everything into the plain tensor that is saved.
    """

    def __init__(self, method: str, init: torch.Tensor, reparam: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.method = method
        self.shape = tuple(init.shape)
        if reparam:
            layers, two, kv, n, hd = self.shape
            self.register_buffer("base", init.clone())
            with torch.random.fork_rng(devices=[]):  # seeded, without touching the global RNG
                torch.manual_seed(seed)
                self.seed_tokens = torch.nn.Parameter(torch.randn(n, reparam) * 0.1)
                self.mlp = torch.nn.Sequential(
                    torch.nn.Linear(reparam, reparam), torch.nn.Tanh(),
                    torch.nn.Linear(reparam, layers * two * kv * hd))
            torch.nn.init.zeros_(self.mlp[2].weight)
            torch.nn.init.zeros_(self.mlp[2].bias)
        else:
            self.tensor = torch.nn.Parameter(init.clone())

    def value(self) -> torch.Tensor:
        if not hasattr(self, "mlp"):
            return self.tensor
        layers, two, kv, n, hd = self.shape
        delta = self.mlp(self.seed_tokens).reshape(n, layers, two, kv, hd).permute(1, 2, 3, 0, 4)
        return self.base + delta


@dataclass
class EvalSet:
    """Evaluation examples with a name and a checksum (for the library's evaluations)."""

    name: str
    inputs: list[str]
    outputs: list[str]

    @property
    def sha256(self) -> str:
        payload = json.dumps([self.inputs, self.outputs]).encode()
        return hashlib.sha256(payload).hexdigest()

    def __len__(self) -> int:
        return len(self.inputs)


def _eval_set(name: str, examples, size: int, seed: int) -> EvalSet:
    examples = list(examples)
    if len(examples) > size:
        examples = random.Random(seed).sample(examples, size)
    return EvalSet(name, [e.input for e in examples], [e.output for e in examples])


def _is_oom(exc: BaseException) -> bool:
    oom_type = getattr(torch, "OutOfMemoryError", ())
    text = str(exc).lower()
    return isinstance(exc, oom_type) or "out of memory" in text or "can't allocate memory" in text


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
        self.params = PromptParams(config.method, init_tensor, config.reparam, config.seed)
        self.params.to(host.device)
        self.optimizer = torch.optim.AdamW(self.params.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
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
        self.summary: dict = {}

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def start(cls, library, host, task: str, config: TrainConfig, *,
              continue_data: Path | None = None,
              between: Callable[[], None] | None = None) -> TrainingJob:
        """Validate, create the run row and return a job ready to step.

        With ``continue_data`` the job continues the task's active version on that file;
        ``between`` is called between the model's layers (engine.breaks) while it evaluates.
        """
        config.check()
        record = library.get_task(task)
        parent = parent_tensor = None
        if continue_data is not None:
            parent = library.get_version(task)
            if parent.method != config.method and config.lr == DEFAULT_LR[config.method]:
                config.lr = DEFAULT_LR[parent.method]
            config.method, config.length = parent.method, parent.length
            prompt = SoftPrompt.load(library.version_path(parent), sha256=parent.sha256)
            prompt.check_fits(ModelGeometry.of(host))
            parent_tensor = prompt.tensor
        if hasattr(library, "record_model"):
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
        else:
            cls._check_examples(library, task)
        run = library.create_run(task, run_config,
                                 parent_version_id=parent.id if parent else None,
                                 kind="continue" if parent else "train")
        job = cls._build(library, host, record, config, run.id, run_config, init, parent,
                         parent_tensor)
        if parent is not None:
            with layer_breaks(host.model, between):
                job.summary["before"] = job._evaluate_sets(parent_tensor)
        job.save_checkpoint()
        return job

    @staticmethod
    def _check_examples(library, task: str) -> None:
        if not library.examples(task, "train"):
            raise PromptbankError(f"The task '{task}' has no training examples.",
                                  hint="Add a dataset to it first (promptbank dataset add).")

    @classmethod
    def _build(cls, library, host, record, config: TrainConfig, run_id: int, run_config: dict,
               init: torch.Tensor, parent, parent_tensor) -> TrainingJob:
        template = record.input_template
        new_id = run_config.get("continue_dataset_id")
        if new_id is None:
            train = library.examples(record.name, "train")
            evals = library.examples(record.name, "eval") or train
            old_eval = None
        else:
            train = library.examples(record.name, "train", dataset_id=new_id)
            evals = library.examples(record.name, "eval", dataset_id=new_id) or train
            old_ids = [d.id for d in library.list_datasets(record.name) if d.id != new_id]
            old_train = [e for i in old_ids for e in library.examples(record.name, "train",
                                                                      dataset_id=i)]
            old_evals = [e for i in old_ids for e in library.examples(record.name, "eval",
                                                                      dataset_id=i)]
            train = train + _replay_sample(old_train, len(train), config.replay, config.seed)
            old_eval = _eval_set("old", old_evals or old_train, config.eval_size, config.seed)
        rows = [encode_row(host, e.input, e.output, template=template,
                           max_length=config.max_length) for e in train]
        eval_set = _eval_set("new" if new_id is not None else "eval", evals, config.eval_size,
                             config.seed)
        return cls(library, host, record, config, run_id, train_rows=rows, eval_set=eval_set,
                   init_tensor=init, parent=parent, parent_tensor=parent_tensor,
                   old_eval=old_eval)

    @classmethod
    def resume(cls, library, host, run_id: int) -> TrainingJob:
        """Continue a cancelled or interrupted run from its last checkpoint."""
        run = library.get_run(run_id)
        if run.status == "done":
            raise PromptbankError(f"Run {run_id} has already finished.",
                                  hint="Start a new run, or continue the task's new version.")
        if run.config.get("model") not in (None, host.fingerprint):
            raise PromptbankError(f"Run {run_id} was trained on another model.",
                                  hint="Load that model to resume it.")
        tensors, state = load_checkpoint(library.checkpoint_dir(run_id))
        config = TrainConfig.from_dict(run.config["train"])
        record = library.get_task_by_id(run.task_id)
        parent = parent_tensor = None
        if run.parent_version_id is not None:
            parent = library.version_by_id(run.parent_version_id)
            parent_tensor = SoftPrompt.load(library.version_path(parent),
                                            sha256=parent.sha256).tensor
        job = cls._build(library, host, record, config, run_id, run.config,
                         tensors["init"], parent, parent_tensor)
        job._restore(tensors, state)
        library.finish_run(run_id, "running")
        return job

    # ---- state --------------------------------------------------------------------------
    def _epoch_order(self, epoch: int) -> list[list[int]]:
        return length_grouped_order([len(r) for r in self.rows], self.config.batch_size,
                                    self.config.seed * 100_003 + epoch)

    def _state(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors, opt_meta = optimizer_tensors(self.optimizer)
        for name, value in self.params.state_dict().items():
            tensors[f"param.{name}"] = value
        tensors["init"] = (self.params.base if hasattr(self.params, "mlp")
                           else self.params.tensor).detach()
        tensors["rng"] = torch.get_rng_state()
        if self.best_tensor is not None:
            tensors["best"] = self.best_tensor
        state = {"step": self.step_index, "epoch": self.epoch, "cursor": self.cursor,
                 "order": self.order, "best": self.best, "evals_since_best": self.evals_since_best,
                 "tokens": self.tokens, "train_seconds": self.train_seconds,
                 "history": self.history, "summary": self.summary, "optimizer": opt_meta}
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

    def save_checkpoint(self) -> None:
        """Write the full training state to the run's checkpoint folder."""
        tensors, state = self._state()
        save_checkpoint(self.library.checkpoint_dir(self.run_id), tensors, state)

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

    def _autocast(self):
        if self.host.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _accumulate(self, rows: list[Row]) -> float:
        """Add one batch's gradients, in passes of ``micro_batch`` rows; returns its mean loss.

        Each pass's summed answer-token loss is divided by the whole batch's answer-token
        count, so the passes' gradients add up to the whole batch's.
        """
        size = self.config.micro_batch or len(rows)
        pad, device = self.host.tokenizer.pad_token_id, self.host.device
        parts = [collate(rows[i:i + size], pad).to(device) for i in range(0, len(rows), size)]
        count = sum(len(part.targets()) for part in parts)
        with self._autocast():
            value = self.params.value()
            past = prompt_past(self.host, self.config.method, value)
        loss = 0.0
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            with self._autocast():
                part_loss = -target_logprobs(self.host, past, part)[0].sum() / count
                total = part_loss
                if last and self.config.anchor and self.parent_tensor is not None:
                    pull = (value - self.parent_tensor.to(value.device)).pow(2).mean()
                    total = part_loss + self.config.anchor * pull
            # The prompt's keys/values are shared by every pass: keep their graph until the last.
            (total / self.config.grad_accum).backward(retain_graph=not last)
            self.tokens += part.tokens
            loss += float(part_loss.detach())
        return loss

    def step(self, between: Callable[[], None] | None = None) -> list[dict]:
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

        with layer_breaks(self.host.model, pause if between is not None else None):
            loss, lr = self._optimise()
            self.train_seconds += time.perf_counter() - started - paused
            return self._after_step(loss, lr)

    def _optimise(self) -> tuple[float, float]:
        """Gradients of ``grad_accum`` batches, then the optimiser step; (mean loss, lr)."""
        lr = self.lr_at(self.step_index)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        try:
            losses = [self._accumulate(self._next_batch()) for _ in range(self.config.grad_accum)]
        except RuntimeError as exc:
            if _is_oom(exc):
                self.optimizer.zero_grad(set_to_none=True)
                self._fail_oom()
            raise
        loss = sum(losses) / len(losses)
        grads_ok = all(p.grad is None or torch.isfinite(p.grad).all()
                       for p in self.params.parameters())
        if not math.isfinite(loss) or not grads_ok:
            self.optimizer.zero_grad(set_to_none=True)
            self._fail_non_finite(loss)
        torch.nn.utils.clip_grad_norm_(self.params.parameters(), self.config.clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step_index += 1
        self.last_loss = loss
        return loss, lr

    def _after_step(self, loss: float, lr: float) -> list[dict]:
        """The step's events; stop conditions, evaluation and checkpoint when due."""
        events = [self._step_event(loss, lr)]
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

    def _step_event(self, loss: float, lr: float) -> dict:
        per_step = self.train_seconds / max(1, self.step_index)
        event = {"kind": "step", "step": self.step_index, "total": self.total_steps,
                 "loss": loss, "lr": lr,
                 "tokens_per_s": self.tokens / max(self.train_seconds, 1e-9),
                 "eta_s": per_step * (self.total_steps - self.step_index)}
        self.library.log_metrics(self.run_id, self.step_index,
                                 {"loss": loss, "lr": lr, "tokens_per_s": event["tokens_per_s"]})
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

    def _fail_oom(self) -> None:
        size, accum = self.config.batch_size, self.config.grad_accum
        rows = min(self.config.micro_batch or size, size)
        if rows > 1:
            hint = (f"Use --micro-batch {rows // 2}: the same training in smaller passes "
                    "(slower, same result).")
        else:
            hint = (f"Use --batch-size {max(1, size // 2)} (and --grad-accum {2 * accum} for "
                    "the same effective batch), or shorter texts.")
        per_pass = "1 row" if rows == 1 else f"{rows} rows"
        self._fail(f"Out of memory at batch size {size} ({per_pass} per pass); run "
                   f"{self.run_id} stopped and its last checkpoint is kept.", hint)

    # ---- evaluation ---------------------------------------------------------------------
    @property
    def metric_name(self) -> str:
        if self.task_record.kind == "classify" and self.task_record.labels:
            return "accuracy"
        return "eval_loss"

    @torch.no_grad()
    def evaluate(self, tensor: torch.Tensor, data: EvalSet) -> dict:
        """Eval loss and the task's metric of a prompt tensor on an evaluation set."""
        host, config = self.host, self.config
        past = prompt_past(host, config.method, tensor)
        template = self.task_record.input_template
        rows = [encode_row(host, i, o, template=template, max_length=config.max_length)
                for i, o in zip(data.inputs, data.outputs, strict=True)]
        total = count = 0.0
        for start in range(0, len(rows), 16):
            batch = collate(rows[start:start + 16], host.tokenizer.pad_token_id).to(host.device)
            n = len(batch.targets())
            total += float(batch_loss(host, past, batch)) * n
            count += n
        result = {"eval_loss": total / max(count, 1.0), "n": len(rows)}
        if self.metric_name == "accuracy":
            labels = self.task_record.labels
            scores = label_logliks(host, past, data.inputs, labels, template=template,
                                   max_length=config.max_length)
            result["accuracy"] = rank_accuracy(scores, labels, data.outputs)
        result["metric"] = result[self.metric_name]
        return result

    def _better(self, metric: float) -> bool:
        if self.best is None:
            return True
        if self.metric_name == "eval_loss":
            return metric < self.best["metric"]
        return metric > self.best["metric"]

    def _eval_event(self) -> dict:
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
        return {"kind": "eval", "step": self.step_index, "eval_loss": result["eval_loss"],
                "metric": result["metric"], "metric_name": self.metric_name}

    def _evaluate_sets(self, tensor: torch.Tensor) -> dict:
        sets = {"new": self.eval_set}
        if self.old_eval is not None and len(self.old_eval):
            sets["old"] = self.old_eval
        return {name: self.evaluate(tensor, data) for name, data in sets.items()}

    # ---- ending -------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop at this step boundary: checkpoint now and mark the run cancelled (resumable)."""
        if self.finished or self.cancelled:
            return
        self.cancelled = True
        self.save_checkpoint()
        self.library.finish_run(self.run_id, "cancelled",
                                summary={**self.summary, "steps": self.step_index,
                                         "resumable": True})

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
                   "steps": self.step_index, "init": config.init}
        version = self.library.add_version(self.task, prompt.to_bytes(),
                                           parent_id=self.parent.id if self.parent else None,
                                           run_id=self.run_id, metrics=metrics)
        if self.parent is not None:
            self._record_continual(tensor, version)
        # A task's first version is served at once; later ones wait for the user to compare
        # them (and, after continual learning, to check the forgetting) and activate them.
        activated = self.library.get_task(self.task).active_version_id is None
        if activated:
            self.library.set_active(self.task, version.number)
        tokens_per_s = self.tokens / max(self.train_seconds, 1e-9)
        self.summary.update({"steps": self.step_index, "best": self.best,
                             "stop_reason": self.stop_reason or "steps done",
                             "tokens_per_s": tokens_per_s, "version": version.number,
                             "activated": activated})
        self.library.finish_run(self.run_id, "done", version_id=version.id,
                                summary=self.summary)
        self.finished = True
        return TrainResult(self.task, version.number, self.step_index, best.get("metric"),
                           self.metric_name, tokens_per_s, self.run_id, self.summary)

    def _record_continual(self, tensor: torch.Tensor, version) -> None:
        before = self.summary.get("before", {})
        after = self._evaluate_sets(tensor.to(self.host.device))
        sets = {"new": self.eval_set, "old": self.old_eval}
        for name, result in after.items():
            for label, version_id, res in (("before", self.parent.id, before.get(name)),
                                           ("after", version.id, result)):
                if res is None:
                    continue
                self.library.add_evaluation(self.task, version_id,
                                            data_sha256=sets[name].sha256,
                                            baseline=f"continual-{label}-{name}",
                                            metrics=res, n=res["n"])
        sign = -1.0 if self.metric_name == "eval_loss" else 1.0
        self.summary["after"] = after
        if "new" in before:
            self.summary["gain_new"] = sign * (after["new"]["metric"] - before["new"]["metric"])
        if "old" in before and "old" in after:
            self.summary["forgetting_old"] = sign * (before["old"]["metric"]
                                                     - after["old"]["metric"])


def _replay_sample(old: list, new_count: int, replay: float, seed: int) -> list:
    """Earlier examples making up ``replay`` of the pool (as far as there are enough)."""
    if not replay or not old:
        return []
    want = min(len(old), round(new_count * replay / (1.0 - replay)))
    return random.Random(seed).sample(old, want)


def run_job(job: TrainingJob, on_event: Callable[[dict], None] | None = None,
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
