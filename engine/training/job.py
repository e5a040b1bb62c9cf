"""Training runs, driven one optimiser step at a time, with evaluation, checkpoints and resume.

``SlotJob`` steps the task slots of a job (``engine.training.slot``): each step draws every
slot's own batches, runs them together through the model in mixed passes (each row after its
own task's prompt, each task's rows weighted for its own mean loss), then lets each slot take
its own optimiser step. ``TrainingJob`` is the job of one task; ``engine.training.joint``
trains several at once. Jobs are stepped by their caller (the worker interleaves steps with
requests; the CLI uses ``run_job``). Continual learning starts from the task's active
version, mixes in replayed earlier data, pulls towards the parent, and records gain and
forgetting (``engine.training.continual``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from engine.api.payload import Payload
from engine.errors import PromptbankError
from engine.forward.breaks import layer_breaks
from engine.model.chat import OnRows, Row
from engine.prompts.initial import (
    EXAMPLE_OUTPUTS,
    initial_tensor,
    is_mix,
    mixture_sources,
    resolve_init,
)
from engine.prompts.soft_prompt import SoftPrompt, check_length
from engine.support.faults import is_out_of_memory, release_memory
from engine.training import continual
from engine.training.batches import encode, eval_set
from engine.training.checkpointing import has_checkpoint, restore_state
from engine.training.config import TrainConfig
from engine.training.evaluation import Evaluator
from engine.training.passes import Pass, Passes, group_by_width
from engine.training.slot import TaskSlot, TrainResult

if TYPE_CHECKING:
    from engine.library import Library
    from engine.model.host import ModelHost

__all__ = ["FLOAT16_SCALE", "GROWTH_STEPS", "SlotJob", "TrainResult", "TrainingJob",
           "check_new_run", "check_settings", "run_job"]

#: float16 gradients underflow unless the loss is scaled up before the backward pass (and the
#: gradients back down after it); an overflow skips the step and halves the scale, and every
#: GROWTH_STEPS good steps double it again (as torch's GradScaler does).
FLOAT16_SCALE = 2.0 ** 12
GROWTH_STEPS = 200


class SlotJob:
    """Steps one or several task slots on one model copy, in shared passes."""

    def __init__(self, host: ModelHost, slots: Sequence[TaskSlot], *, micro_batch: int,
                 graphs: bool) -> None:
        self.host = host
        self.slots = list(slots)
        self.passes = Passes(host, [s.params for s in self.slots], [s.head for s in self.slots],
                             graphs=graphs)
        # Where each slot's parameters sit in a pass's list of gradients.
        self.spans: list[tuple[int, int]] = []
        for index in range(len(self.slots)):
            begin = self.spans[-1][1] if self.spans else 0
            self.spans.append((begin, begin + len(self.passes.parameters(index))))
        self.micro_batch = micro_batch
        self.pass_rows = micro_batch
        # One loss scale for the passes the slots share; a resumed job goes on with the one
        # its checkpoints hold.
        self.scaling = host.dtype == torch.float16
        saved = [s.scale_state for s in self.slots if s.scale_state]
        self.loss_scale = min((x["loss_scale"] for x in saved),
                              default=FLOAT16_SCALE if self.scaling else 1.0)
        self.good_steps = min((x["good_steps"] for x in saved), default=0)

    @property
    def done(self) -> bool:
        return all(s.done for s in self.slots)

    def step(self, between: Callable[[], None] | None = None) -> list[Payload]:
        """One optimiser step of every slot still training, then each slot's evaluation and
        checkpoint when due; returns progress events.

        ``between`` is called between the model's layers (engine.forward.breaks), where the worker
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
            slots = [s for s in self.slots if not s.done]
            stepped, events = self._optimise(slots)
            seconds = time.perf_counter() - started - paused
            for slot in slots:
                slot.train_seconds += seconds
            for slot, loss, lr in stepped:
                events += slot.after_step(loss, lr)
            seconds = time.perf_counter() - started - paused
            for slot in slots:
                slot.wall_seconds += seconds
            return events + self._after_step()

    def _after_step(self) -> list[Payload]:
        """More events at the end of a step (a joint job saves the tasks that ended)."""
        return []

    def _slot_failed(self, slot: TaskSlot, exc: PromptbankError) -> list[Payload]:
        """A slot's run failed (it is closed already): a job of one task stops."""
        raise exc

    def _optimise(self, slots: list[TaskSlot]) -> tuple[list[tuple[TaskSlot, float, float]],
                                                        list[Payload]]:
        """Every slot's gradients in shared passes, then each slot's optimiser step.

        With float16 loss scaling a slot whose gradients overflowed skips its step (the
        others take theirs), and the job's scale halves; otherwise a non-finite loss fails
        that slot's run."""
        begun = [slot.begin_step() for slot in slots]
        grads, losses = self._gradients(slots, [draws for _, draws in begun])
        stepped, events, finite = [], [], True
        for slot, (lr, _), slot_grads, loss in zip(slots, begun, grads, losses, strict=True):
            try:
                value, ok = slot.apply(slot_grads, loss, self.loss_scale,
                                       skip_overflow=self.scaling)
            except PromptbankError as exc:
                events += self._slot_failed(slot, exc)
                continue
            stepped.append((slot, value, lr))
            finite = finite and ok
        if self.scaling:
            self._rescale(finite)
        return stepped, events

    def _rescale(self, finite: bool) -> None:
        """Loss scaling for float16: halve after an overflow (the slots that overflowed
        skipped their step), double after ``GROWTH_STEPS`` good steps; the slots keep the
        scale in their checkpoints."""
        if finite:
            self.good_steps += 1
            if self.good_steps % GROWTH_STEPS == 0:
                self.loss_scale *= 2.0
        else:
            self.loss_scale /= 2.0
            self.good_steps = 0
        for slot in self.slots:
            slot.scale_state = {"loss_scale": self.loss_scale, "good_steps": self.good_steps}

    def _gradients(self, slots: list[TaskSlot], draws: list[list[list[Row]]]
                   ) -> tuple[list[list[torch.Tensor]], list[torch.Tensor]]:
        """Each slot's summed gradients and mean loss over its batches. When the passes were
        sized automatically and run out of GPU memory, they are halved and the step retried."""
        while True:
            grads: list[list[torch.Tensor | None]] = [
                [None] * len(s.params.trainable()) for s in slots]
            try:
                return grads, self._accumulate(slots, draws, grads)
            except RuntimeError as exc:
                if not is_out_of_memory(exc):
                    raise
                del grads
                self.passes.reset()
                release_memory()
                rounds = _rounds(draws)
                planned = self.pass_rows or self.passes.rows_per_pass(
                    max(map(len, rounds)), max(len(r) for rows in rounds for r in rows),
                    max(len(r.answer_ids) for rows in rounds for r in rows))
                if self.micro_batch or planned <= 1:
                    self._fail_oom(slots, planned)
                self.pass_rows = planned // 2

    def _accumulate(self, slots: list[TaskSlot], draws: list[list[list[Row]]],
                    grads: list[list[torch.Tensor | None]]) -> list[torch.Tensor]:
        """Add every batch's gradients to ``grads``, in passes that mix the slots' k-th
        batches; return each slot's mean loss (device).

        A task's answer tokens weigh 1 / (its batch's answer tokens × its accumulation), so
        each slot's gradients add up to its own mean over its accumulated batches.
        """
        owners = [self.slots.index(s) for s in slots]
        losses: list[list[torch.Tensor]] = [[] for _ in slots]
        for k in range(max(map(len, draws))):
            members = [(i, draws[i][k]) for i in range(len(slots)) if k < len(draws[i])]
            rows = [r for _, batch in members for r in batch]
            index = [i for i, batch in members for _ in batch]
            row_owners = [owners[i] for i in index]
            weight = {i: slots[i].token_weight(batch) for i, batch in members}
            batch_loss = {i: torch.zeros((), device=self.host.device) for i, _ in members}
            for chosen in self._split(rows, row_owners):
                part, part_index = [rows[j] for j in chosen], [index[j] for j in chosen]
                sums, part_grads = self.passes.run(Pass(
                    part, [row_owners[j] for j in chosen], [weight[i] for i in part_index]),
                    self.loss_scale)
                for i in dict.fromkeys(part_index):
                    accum = slots[i].config.grad_accum
                    batch_loss[i] = batch_loss[i] + sums[owners[i]] * accum
                    begin_grad, end_grad = self.spans[owners[i]]
                    for j, g in enumerate(part_grads[begin_grad:end_grad]):
                        grads[i][j] = g.clone() if grads[i][j] is None else grads[i][j].add_(g)
                    slots[i].tokens += sum(len(r) for r, o in zip(part, part_index, strict=True)
                                           if o == i)
            for i, loss in batch_loss.items():
                losses[i].append(loss)
        return [sum(batch) / len(batch) for batch in losses]

    def _split(self, rows: list[Row], owners: list[int]) -> list[list[int]]:
        """A round's rows (by index) in passes: ``--micro-batch`` rows at a time, or as many
        as the GPU's memory holds (a GPU pads to a few widths anyway); on a CPU, rows of
        similar width together."""
        size = self.pass_rows or self.passes.rows_per_pass(
            len(rows), max(map(len, rows)), max(len(r.answer_ids) for r in rows))
        if not (self.pass_rows or self.passes.padded):
            groups = group_by_width([self.passes.width(o, r)
                                     for r, o in zip(rows, owners, strict=True)])
            return [g[b:b + size] for g in groups for b in range(0, len(g), size)]
        return [list(range(b, min(b + size, len(rows)))) for b in range(0, len(rows), size)]

    def _fail_oom(self, slots: list[TaskSlot], rows: int) -> None:
        size = sum(s.config.batch_size for s in slots)
        task_size = max(s.config.batch_size for s in slots)
        accum = max(s.config.grad_accum for s in slots)
        rows = min(rows, size)
        if rows > 1:
            hint = (f"Use --micro-batch {rows // 2}: the same training in smaller passes "
                    "(slower, same result).")
        else:
            hint = (f"Use --batch-size {max(1, task_size // 2)} (and --grad-accum {2 * accum} "
                    "for the same effective batch), or shorter texts (--max-length).")
        per_pass = "1 row" if rows == 1 else f"{rows} rows"
        if len(slots) == 1:
            message = (f"Out of memory at batch size {size} ({per_pass} per pass); run "
                       f"{slots[0].run_id} stopped and its last checkpoint is kept.")
        else:
            runs = ", ".join(str(s.run_id) for s in slots)
            message = (f"Out of memory at a joint batch of {size} rows ({per_pass} per pass); "
                       f"runs {runs} stopped and their last checkpoints are kept.")
        for slot in slots:
            slot.close_failed(f"{message} {hint}")
        raise PromptbankError(message, hint=hint)

    def fail_open(self, message: str) -> None:
        """Close every run of the job that is still open as failed (after an error the job
        itself did not handle)."""
        for slot in self.slots:
            if not slot.finished:
                slot.close_failed(message)


def _rounds(draws: list[list[list[Row]]]) -> list[list[Row]]:
    """The rows of each accumulation round: every slot's k-th batch together."""
    return [[r for batches in draws if k < len(batches) for r in batches[k]]
            for k in range(max(map(len, draws)))]


def _not_universal(record) -> None:
    if record.kind == "universal":
        raise PromptbankError(
            f"The task '{record.name}' is a universal prompt: it trains on its source tasks.",
            hint=f"Continue it with `promptbank universal update {record.name} --add TASK`.")


def check_settings(host: ModelHost, config: TrainConfig) -> None:
    """Check a run's settings, and that its prompt leaves the model's context room for its
    longest row (``max_length``)."""
    config.check()
    check_length(config.length, host.max_positions, room=config.max_length)


def check_new_run(library: Library, host: ModelHost, task: str, config: TrainConfig):
    """Check a new run of a task before anything is written: its record, start tensor, when
    ``auto`` fell back from the instruction why, and a ``mix`` start's sources (else None);
    ``config.init`` becomes the start."""
    check_settings(host, config)
    record = library.get_task(task)
    _not_universal(record)
    examples = library.examples(task, "train")
    if not examples:
        raise PromptbankError(f"The task '{task}' has no training examples.",
                              hint="Add a dataset to it first (promptbank data add).")
    outputs = [e.output for e in examples[:EXAMPLE_OUTPUTS * 4]]
    sources = None
    if is_mix(config.init):
        mixed, sources = mixture_sources(library, host, config.init, config.method,
                                         config.length, task)
        own, note = resolve_init("auto", record, outputs)
        config.init = mixed
    else:
        config.init, note = resolve_init(config.init, record, outputs)
        own = config.init
    init = initial_tensor(host, config.method, config.length, own, record,
                          seed=config.seed, library=library, outputs=outputs)
    return record, init, note, sources


class TrainingJob(SlotJob):
    """One task's training run, advanced one optimiser step at a time."""

    def __init__(self, slot: TaskSlot) -> None:
        super().__init__(slot.host, [slot], micro_batch=slot.config.micro_batch,
                         graphs=slot.config.graphs)
        self.slot = slot

    # What callers read of the run (tests, benchmarks, the worker) is the slot's.
    library = property(lambda self: self.slot.library)
    task = property(lambda self: self.slot.task)
    run_id = property(lambda self: self.slot.run_id)
    config = property(lambda self: self.slot.config)
    rows = property(lambda self: self.slot.rows)
    order = property(lambda self: self.slot.order)
    params = property(lambda self: self.slot.params)
    eval_set = property(lambda self: self.slot.eval_set)
    summary = property(lambda self: self.slot.summary)
    best = property(lambda self: self.slot.best)
    step_index = property(lambda self: self.slot.step_index)
    total_steps = property(lambda self: self.slot.total_steps)
    tokens = property(lambda self: self.slot.tokens)
    train_seconds = property(lambda self: self.slot.train_seconds)
    metric_name = property(lambda self: self.slot.metric_name)
    finished = property(lambda self: self.slot.finished)
    cancelled = property(lambda self: self.slot.cancelled)

    @property
    def tasks(self) -> list[str]:
        return [self.slot.task]

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def start(cls, library: Library, host: ModelHost, task: str, config: TrainConfig, *,
              continue_data: Path | None = None,
              between: Callable[[], None] | None = None,
              on_rows: OnRows | None = None) -> TrainingJob:
        """Validate, create the run row and return a job ready to step.

        With ``continue_data`` the job continues the task's active version on that file;
        ``between`` is called between the model's layers (engine.forward.breaks) while it evaluates;
        ``on_rows`` follows the tokenising of the training rows.
        """
        parent = parent_tensor = sources = None
        note = ""
        if continue_data is None:
            record, init, note, sources = check_new_run(library, host, task, config)
        else:
            check_settings(host, config)
            record = library.get_task(task)
            _not_universal(record)
            parent, parent_tensor = continual.parent_of(library, host, task, config)
            init = parent_tensor.clone()
        library.record_model(host.info().to_data())
        run_config = {"train": config.to_dict(), "model": host.fingerprint}
        if continue_data is None and note:
            run_config["init_note"] = note
        if continue_data is not None:
            dataset = library.add_dataset(task, continue_data, seed=config.seed)
            run_config["continue_dataset_id"] = dataset.id
            run_config["continue_data"] = str(continue_data)
            config.init = f"continue:v{parent.number}"
            run_config["train"] = config.to_dict()
        run = library.create_run(task, run_config,
                                 parent_version_id=parent.id if parent else None,
                                 kind="continue" if parent else "train")
        job = cls(cls.build_slot(library, host, record, config, run.id, run_config, init,
                                 parent, parent_tensor, on_rows, sources=sources))
        if parent is not None:
            with layer_breaks(host.model, between):
                job.summary["before"] = job.slot.evaluate_sets(parent_tensor)
        job.slot.save_checkpoint()
        return job

    @classmethod
    def build_slot(cls, library: Library, host: ModelHost, record, config: TrainConfig, run_id: int,
                   run_config: dict, init: torch.Tensor, parent, parent_tensor,
                   on_rows: OnRows | None = None, *, runtime=None,
                   sources: torch.Tensor | None = None) -> TaskSlot:
        """The slot of a run: the task's rows and evaluation set, from the library
        (``runtime``: one its evaluator may share with other slots' evaluators; ``sources``:
        a ``mix`` start's)."""
        pools = continual.pools(library, record.name, config,
                                run_config.get("continue_dataset_id"))
        rows = encode(host, pools.train, template=record.input_template,
                      max_length=config.max_length, on_rows=on_rows)
        evals = eval_set(pools.eval_name, pools.evals, config.eval_size, config.seed)
        evaluator = Evaluator(host, record, max_length=config.max_length,
                              graphs=config.graphs, runtime=runtime)
        slot = TaskSlot(library, host, record, config, run_id, rows=rows, eval_set=evals,
                        evaluator=evaluator, init_tensor=init, parent=parent,
                        parent_tensor=parent_tensor, old_eval=pools.old_eval,
                        select_on_loss=pools.select_on_loss, eval_on_train=pools.on_train,
                        sources=sources)
        if run_config.get("init_note"):
            slot.summary["init_note"] = run_config["init_note"]
        return slot

    @classmethod
    def restore_slot(cls, library: Library, host: ModelHost, run_id: int,
                     on_rows: OnRows | None = None) -> TaskSlot:
        """A slot back at a claimed run's last checkpoint (the run is not released here); a
        run killed before its first checkpoint starts again from its beginning."""
        run = library.get_run(run_id)
        if run.config.get("model") not in (None, host.fingerprint):
            raise PromptbankError(f"Run {run_id} was trained on another model.",
                                  hint="Load that model to resume it.")
        folder = library.checkpoint_dir(run_id)
        config = TrainConfig.from_dict(run.config["train"])
        record = library.get_task_by_id(run.task_id)
        parent = parent_tensor = None
        if run.parent_version_id is not None:
            parent = library.version_by_id(run.parent_version_id)
            parent_tensor = SoftPrompt.load(library.version_path(parent),
                                            sha256=parent.sha256).tensor
        if has_checkpoint(folder):
            tensors, state = restore_state(folder)
            init, sources = tensors["init"], tensors.get("param.sources")
        elif parent_tensor is not None:
            tensors, state = {}, None
            init, sources = parent_tensor.clone(), None
        else:
            tensors, state = {}, None
            _, init, _, sources = check_new_run(library, host, record.name, config)
        slot = cls.build_slot(library, host, record, config, run_id, run.config, init, parent,
                              parent_tensor, on_rows, sources=sources)
        if state is None:
            slot.save_checkpoint()
        else:
            slot.restore(tensors, state)
        return slot

    @classmethod
    def resume(cls, library: Library, host: ModelHost, run_id: int, *,
               on_rows: OnRows | None = None) -> TrainingJob:
        """Continue a cancelled or interrupted run from its last checkpoint.

        The run is claimed for this process first, so no other process trains it at the same
        time (a finished run, or one a live process holds, is refused).
        """
        library.claim_run(run_id)
        try:
            job = cls(cls.restore_slot(library, host, run_id, on_rows))
        except BaseException:
            library.release_run(run_id)
            raise
        library.finish_run(run_id, "running")
        return job

    # ---- the run ------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Write the full training state to the run's checkpoint folder."""
        self.slot.save_checkpoint()

    def evaluate(self, tensor: torch.Tensor, data) -> dict:
        """Eval loss and the task's metric of a prompt tensor on an evaluation set."""
        return self.slot.evaluate(tensor, data)

    def describe(self) -> dict:
        """Where the job stands (the worker's job listing)."""
        return {"run_id": self.run_id, "step": self.step_index, "total": self.total_steps}

    def cancel(self, reason: str = "") -> None:
        """Stop at this step boundary: checkpoint now and mark the run cancelled (resumable).

        ``reason`` says why when nobody asked (the client went away, shutdown)."""
        self.slot.cancel(reason)

    def final_tensor(self) -> torch.Tensor:
        """The kept prompt: the best evaluated one, else the current one (MLP folded in)."""
        return self.slot.final_tensor()

    def finish(self, between: Callable[[], None] | None = None) -> TrainResult:
        """Save the kept prompt as a new version (never overwriting) and close the run.

        ``between`` is called between the model's layers while it evaluates.
        """
        with layer_breaks(self.host.model, between):
            return self.slot.save_version()


def run_job(job: SlotJob, on_event: Callable[[Payload], None] | None = None,
            should_stop: Callable[[], bool] | None = None):
    """Step a job to its end and save its versions (a ``TrainResult``, or a joint job's
    ``JointResult``); None when ``should_stop`` cancelled it."""
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
