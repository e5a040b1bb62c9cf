"""Joint training: the prompts of several tasks trained in one job on the one model copy.

Each step every task draws its own batches (its own batch size, seed order and accumulation,
exactly as its separate run would) and the job runs them through the model together in mixed
passes, each row after its own task's prompt (``engine.training.passes``). Each task's rows
are weighted for that task's own mean loss, and each task keeps its own optimiser, schedule,
evaluation, early stopping, checkpoint and run, so every task ends with the prompt its separate
run gives (to float rounding). A task that ends early (its steps, patience, loss target) is
saved at once and leaves the batches; one whose loss becomes non-finite fails alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.api.payload import Payload
from engine.api.training import JobOutcome, TaskFailed, VersionSaved
from engine.errors import PromptbankError
from engine.forward.breaks import layer_breaks
from engine.model.chat import OnRows
from engine.serving.runtime import Runtime
from engine.training.config import TrainConfig
from engine.training.job import SlotJob, TrainingJob, check_new_run
from engine.training.slot import TaskSlot, TrainResult

if TYPE_CHECKING:
    from engine.library import Library
    from engine.model.host import ModelHost


@dataclass
class JointResult:
    """What a finished joint job produced: one result per saved task, and the failures."""

    results: list[TrainResult]
    failed: dict[str, str] = field(default_factory=dict)
    train_seconds: float = 0.0

    def to_dict(self) -> dict:
        """The CLI's --json summary."""
        return {"tasks": [r.to_dict() for r in self.results], "failed": self.failed,
                "train_seconds": round(self.train_seconds, 2)}

    def outcome(self) -> JobOutcome:
        """The worker's result: each saved task's outcome (with its run's summary) and the
        tasks that failed alone (the worker adds the job's tasks and runs)."""
        return JobOutcome(status="done", steps=max((r.steps for r in self.results), default=0),
                          results=[r.outcome() for r in self.results], failed=dict(self.failed),
                          summary={"train_seconds": round(self.train_seconds, 2)})


class JointJob(SlotJob):
    """The runs of several tasks, advanced together one optimiser step at a time."""

    def __init__(self, host: ModelHost, slots: Sequence[TaskSlot], *, micro_batch: int,
                 graphs: bool) -> None:
        super().__init__(host, slots, micro_batch=micro_batch, graphs=graphs)
        self.results: dict[str, TrainResult] = {}
        self.failed: dict[str, str] = {}
        self.cancelled = False

    @property
    def tasks(self) -> list[str]:
        return [s.task for s in self.slots]

    @property
    def run_ids(self) -> list[int]:
        return [s.run_id for s in self.slots]

    @property
    def run_id(self) -> int:
        """The joint job's id: its first run's."""
        return self.slots[0].run_id

    @property
    def step_index(self) -> int:
        return max(s.step_index for s in self.slots)

    @property
    def total_steps(self) -> int:
        return max(s.total_steps for s in self.slots)

    @property
    def train_seconds(self) -> float:
        return max(s.train_seconds for s in self.slots)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def start(cls, library: Library, host: ModelHost, tasks: Sequence[str],
              configs: Sequence[TrainConfig], *,
              on_rows: OnRows | None = None) -> JointJob:
        """Check every task, create their runs (one joint job) and return the job ready to
        step; ``configs`` holds each task's settings, in the order of ``tasks``."""
        tasks = list(tasks)
        if len(tasks) < 2:
            raise PromptbankError("A joint job trains two or more tasks.",
                                  hint="Name several tasks, or train one task on its own.")
        if len(set(tasks)) != len(tasks):
            raise PromptbankError("A joint job names a task more than once.",
                                  hint="Name each task once.")
        checked = [check_new_run(library, host, task, config)
                   for task, config in zip(tasks, configs, strict=True)]
        library.record_model(host.info().to_data())
        runs = library.create_joint_runs([
            (task, {"train": config.to_dict(), "model": host.fingerprint, "joint": tasks,
                    **({"init_note": note} if note else {})})
            for task, config, (_, _, note, _) in zip(tasks, configs, checked, strict=True)])
        runtime = Runtime(host, graphs=configs[0].graphs)
        try:
            slots = [TrainingJob.build_slot(library, host, record, config, run.id, run.config,
                                            init, None, None, on_rows, runtime=runtime,
                                            sources=sources)
                     for (record, init, _, sources), config, run in zip(checked, configs, runs,
                                                                        strict=True)]
        except BaseException as exc:
            for run in runs:
                library.finish_run(run.id, "failed", summary={"error": str(exc)})
            raise
        job = cls(host, slots, micro_batch=configs[0].micro_batch, graphs=configs[0].graphs)
        for slot in slots:
            slot.save_checkpoint()
        return job

    @classmethod
    def resume(cls, library: Library, host: ModelHost, run_id: int, *,
               on_rows: OnRows | None = None) -> JointJob:
        """Continue the unfinished runs of the joint job ``run_id`` belongs to, each from its
        last checkpoint (its tasks that were saved, or failed alone, stay as they are)."""
        run = library.get_run(run_id)
        if run.joint_id is None:
            raise PromptbankError(f"Run {run_id} is not part of a joint job.",
                                  hint=f"Resume it with `promptbank train --resume {run_id}`.")
        # A task that failed alone stays failed (it would fail again); the one named is tried.
        members = [r for r in library.joint_runs(run.joint_id)
                   if r.status in ("running", "cancelled") or (r.id == run_id
                                                              and r.status != "done")]
        if not members:
            raise PromptbankError(f"Every run of the joint job of run {run_id} has finished.",
                                  hint="Start a new run with 'train'.")
        claimed: list[int] = []
        try:
            for member in members:
                library.claim_run(member.id)
                claimed.append(member.id)
            slots = [TrainingJob.restore_slot(library, host, m.id, on_rows) for m in members]
        except BaseException:
            for member in claimed:
                library.release_run(member)
            raise
        for member in members:
            library.finish_run(member.id, "running")
        config = slots[0].config
        return cls(host, slots, micro_batch=config.micro_batch, graphs=config.graphs)

    # ---- stepping -----------------------------------------------------------------------
    def _slot_failed(self, slot: TaskSlot, exc: PromptbankError) -> list[Payload]:
        """One task's run failed (closed already); the others go on unless none is left."""
        self.failed[slot.task] = str(exc)
        if all(s.finished for s in self.slots) and not self.results:
            raise PromptbankError(
                "Every task of the joint job failed: " + "; ".join(
                    f"{task}: {message}" for task, message in self.failed.items()),
                hint=exc.hint)
        return [TaskFailed(task=slot.task, message=str(exc))]

    def _after_step(self) -> list[Payload]:
        """Save every task whose run ended in this step (it leaves the batches)."""
        events: list[Payload] = []
        for slot in self.slots:
            if slot.done and not slot.finished and not slot.cancelled:
                result = slot.save_version()
                self.results[slot.task] = result
                events.append(VersionSaved(task=slot.task, version=result.version,
                                           step=slot.step_index, run_id=slot.run_id))
        return events

    # ---- the job ------------------------------------------------------------------------
    def describe(self) -> dict:
        """Where the job stands (the worker's job listing)."""
        return {"run_id": self.run_id, "run_ids": self.run_ids, "tasks": self.tasks,
                "step": self.step_index, "total": self.total_steps}

    def cancel(self, reason: str = "") -> None:
        """Stop at this step boundary: every unfinished run is checkpointed and cancelled
        (``reason`` says why when nobody asked)."""
        self.cancelled = True
        for slot in self.slots:
            slot.cancel(reason)

    def finish(self, between: Callable[[], None] | None = None) -> JointResult:
        """Save every task not saved yet and return the results, in the job's task order.

        ``between`` is called between the model's layers while it evaluates.
        """
        with layer_breaks(self.host.model, between):
            for slot in self.slots:
                if not slot.finished and not slot.cancelled:
                    self.results[slot.task] = slot.save_version()
        return JointResult([self.results[t] for t in self.tasks if t in self.results],
                           dict(self.failed), self.train_seconds)
