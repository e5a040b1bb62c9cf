"""Training: jobs of one task or several, continuing, resuming, ranking starts, and the
memory plan.

Torch-free: each op is declared beside the payloads it answers with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from engine.api.payload import Payload
from engine.api.spec import (
    TRAIN_CONFIG_ARG,
    Arg,
    OpSpec,
    task_arg,
)

GB = float(1 << 30)
#: How a new prompt can start (besides ``task:NAME`` and ``universal:NAME``): ``auto`` takes
#: the task's instruction, else its labels, else its name and outputs, else vocabulary.
INITS = ("auto", "text", "labels", "examples", "vocab", "random")


def _gb(value: float) -> str:
    return f"{value / GB:.1f} GB"


@dataclass
class MemoryPlan(Payload):
    """A training run's memory, part by part (bytes), and the choice that makes it fit (the
    answer to ``plan``; computed by ``engine.model.memory``)."""

    device: str
    dtype: str
    free: int
    weights: int
    prompt_state: int
    runtime: int
    activations_per_row: int
    head_per_row: int
    rows_per_pass: int
    checkpointing: bool
    passes: int
    total: int
    fits: bool
    advice: str = ""
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """The plan in lines a person reads."""
        lines = [
            f"Device {self.device} ({self.dtype}): {_gb(self.free)} free",
            f"  model weights          {_gb(self.weights)}",
            f"  prompt and optimiser   {self.prompt_state / 2**20:.1f} MB",
            f"  activations per row    {self.activations_per_row / 2**20:.0f} MB"
            + (" (checkpointed)" if self.checkpointing else ""),
            f"  output head per row    {self.head_per_row / 2**20:.0f} MB",
            f"  process                {_gb(self.runtime)}",
            f"  total at {self.rows_per_pass} row(s) per pass: {_gb(self.total)}",
        ]
        lines.append(("Fits: " if self.fits else "Does not fit: ") + self.advice)
        return "\n".join(lines + self.notes)


@dataclass
class Queued(Payload):
    """A training job waits behind ``position`` others."""

    EVENT: ClassVar[str] = "progress"
    KIND: ClassVar[str] = "queued"
    position: int = 0
    task: str = ""


@dataclass
class Started(Payload):
    """A training job started (at ``step`` > 0 when it resumes a run); a joint job names
    every task it trains and their runs (``run_id`` is its first)."""

    EVENT: ClassVar[str] = "progress"
    KIND: ClassVar[str] = "started"
    task: str = ""
    run_id: int | None = None
    step: int = 0
    total: int = 0
    run_ids: list[int] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)


@dataclass
class StepProgress(Payload):
    """One optimiser step of ``task``'s run: loss, learning rate, data tokens/s, measured ETA
    and step time (a joint job sends one per task and step)."""

    EVENT: ClassVar[str] = "progress"
    KIND: ClassVar[str] = "step"
    step: int = 0
    total: int = 0
    loss: float | None = None
    lr: float = 0.0
    tokens_per_s: float = 0.0
    eta_s: float | None = None
    step_ms: float | None = None
    job: str = ""
    task: str = ""


@dataclass
class EvalProgress(Payload):
    """An evaluation during training: ``task``'s metric on ``n`` held-out examples."""

    EVENT: ClassVar[str] = "progress"
    KIND: ClassVar[str] = "eval"
    step: int = 0
    eval_loss: float | None = None
    metric: float | None = None
    metric_name: str = ""
    n: int = 0
    step_ms: float | None = None
    job: str = ""
    task: str = ""


@dataclass
class VersionSaved(Payload):
    """A task of a joint job ended (its steps, patience or loss target) and its new version
    is saved; the job goes on with the others."""

    EVENT: ClassVar[str] = "progress"
    KIND: ClassVar[str] = "saved"
    task: str = ""
    version: int = 0
    step: int = 0
    run_id: int | None = None


@dataclass
class TaskFailed(Payload):
    """A task of a joint job failed alone (its run is closed as failed); the others go on."""

    EVENT: ClassVar[str] = "progress"
    KIND: ClassVar[str] = "failed"
    task: str = ""
    message: str = ""


@dataclass
class ProbeProgress(Payload):
    """Ranking starting points: the candidates' probe steps done of ``total``."""

    EVENT: ClassVar[str] = "progress"
    KIND: ClassVar[str] = "probe"
    done: int = 0
    total: int = 0


@dataclass
class PrepareProgress(Payload):
    """A training job tokenising its rows before its first step: ``done`` of ``total``
    (sent after each chunk of rows)."""

    EVENT: ClassVar[str] = "progress"
    KIND: ClassVar[str] = "prepare"
    done: int = 0
    total: int = 0
    eta_s: float | None = None  # seconds left at the pace so far (None: too early to say)


@dataclass
class JobOutcome(Payload):
    """How a training job (train, continue, resume, train_joint, universal) ended: done or
    cancelled.

    A cancelled job that had started has a checkpoint (``resumable``); ``interrupted`` says
    why it stopped when the user did not ask (the client went away, the worker shut down).
    A joint job names its tasks and runs, has one outcome per saved task in ``results`` and
    the tasks that failed alone (with why) in ``failed``.
    """

    status: str = "done"
    task: str = ""
    run_id: int | None = None
    version: int | None = None
    steps: int = 0
    step: int = 0
    total: int = 0
    best_metric: float | None = None
    metric_name: str = ""
    tokens_per_s: float = 0.0
    summary: dict = field(default_factory=dict)
    started: bool = True
    interrupted: str = ""
    run_ids: list[int] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    results: list[JobOutcome] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class StartRank(Payload):
    """One candidate starting point for a new task: its init string (``task:NAME``,
    ``universal:NAME`` or ``text``), where it comes from, its probe losses and why it ranks
    where it does."""

    init: str = ""
    source: str = ""
    version: int | None = None
    loss_before: float = 0.0
    loss_after: float = 0.0
    why: str = ""
    #: The best start's head start over the text init in probe steps (None: not measured).
    steps_saved: int | None = None
    head_start: str = ""


@dataclass
class RankedStarts(Payload):
    """The answer to ``rank_starts``: the candidates best first, and the best's init (None
    when the library has no prompt of that method and length and there is no text)."""

    method: str = ""
    length: int = 0
    starts: list[StartRank] = field(default_factory=list)
    best: str | None = None


SPECS = (
    OpSpec("train", "Queue a training job for a task; streams progress until it ends.",
           (task_arg(), TRAIN_CONFIG_ARG), "progress*, result", "job",
           result=JobOutcome),
    OpSpec("continue", "Queue continual learning of the active version on new data.",
           (task_arg(), Arg("data", "str", required=True, doc="path of the new data file",
                                  file="in"),
            TRAIN_CONFIG_ARG), "progress*, result", "job",
           result=JobOutcome),
    OpSpec("watch", "Follow a queued or running job from now on: its events come under this "
           "request too, ending with its result (another client of a shared worker, or one "
           "reconnected to a worker that outlived its connection, as a remote engine's does).",
           (Arg("job", "str", required=True, doc="the job's id in the 'jobs' listing"),),
           "progress*, result", result=JobOutcome),
    OpSpec("resume", "Queue a cancelled or interrupted run again from its last checkpoint.",
           (Arg("run_id", "int", required=True, minimum=1),), "progress*, result", "job",
           result=JobOutcome),
    OpSpec("train_joint", "Queue one joint job training several tasks' prompts in mixed "
           "batches (each task its own optimiser, schedule, early stopping and version).",
           (Arg("tasks", "list", required=True, doc="two or more task names"), TRAIN_CONFIG_ARG),
           "progress*, result", "job",
           result=JobOutcome),
    OpSpec("universal", "Queue training a universal prompt on source tasks (sources), or "
           "continuing one on added tasks with replay of its sources (add).",
           (task_arg(), Arg("sources", "list", doc="source task names (create)"),
            Arg("add", "list", doc="task names to add (update)"),
            Arg("instruction", "str", doc="its instruction (text init; create)"),
            TRAIN_CONFIG_ARG), "progress*, result", "job",
           result=JobOutcome),
    OpSpec("rank_starts", "Rank the library's prompts of one method and length (and the "
           "text init) as starting points for a task or a dataset file, by a short probe.",
           (task_arg(required=False),
            Arg("data", "str", doc="a dataset file (instead of task)", file="in"),
            Arg("input_column", "str"), Arg("output_column", "str"),
            Arg("input_template", "str"), Arg("instruction", "str"),
            Arg("method", "str", doc="a prompt method"), Arg("length", "int", minimum=1),
            Arg("rows", "int", default=32, minimum=1, doc="rows the probe trains on"),
            Arg("steps", "int", default=5, minimum=1, doc="steps from each start")),
           "progress*, result", "long",
           result=RankedStarts),
    OpSpec("plan", "The memory a training of the tasks needs on the loaded model's device, "
           "part by part, and the rows per pass (and checkpointing) that make it fit.",
           (Arg("tasks", "list", required=True, doc="one or more task names"), TRAIN_CONFIG_ARG),
           result=MemoryPlan),
)
PROGRESS = (Queued, Started, StepProgress, EvalProgress, VersionSaved, TaskFailed,
            ProbeProgress, PrepareProgress)
