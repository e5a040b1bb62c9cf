"""Typed payloads of the engine's events: one dataclass per progress kind, per streamed token
and per op's result. Torch-free.

The worker builds an event from a payload (``payload.event(rid)``); a client turns an event
back into its payload with ``parse_event(op, event)``. The JSON on the wire is the payload's
fields (plus ``kind`` for progress), so the protocol's line format is unchanged. Unknown fields
are ignored when parsing, so an older client can read a newer engine's events.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from engine.memory import MemoryPlan
from engine.protocol import Event, ProtocolError

P = TypeVar("P", bound="Payload")


@dataclass
class Payload:
    """Base of every event payload: ``EVENT`` is the event type, ``KIND`` the progress kind."""

    EVENT: ClassVar[str] = "result"
    KIND: ClassVar[str] = ""

    def to_data(self) -> dict[str, Any]:
        """The payload as the event's JSON fields."""
        data = dataclasses.asdict(self)
        return {"kind": self.KIND, **data} if self.KIND else data

    def event(self, rid: str) -> Event:
        """The event that carries this payload for request ``rid``."""
        return Event(rid, self.EVENT, self.to_data())

    @classmethod
    def from_data(cls: type[P], data: dict[str, Any]) -> P:
        """The payload from an event's fields; nested payloads are parsed too."""
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                values[f.name] = _parse_value(hints[f.name], data[f.name])
        try:
            return cls(**values)
        except TypeError as exc:
            raise ProtocolError(f"a '{cls.__name__}' event is missing a field: {exc}") from exc


def _payload_type(hint: Any) -> type[Payload] | None:
    plain = typing.get_origin(hint) is None and isinstance(hint, type)
    return hint if plain and issubclass(hint, Payload) else None


def _parse_value(hint: Any, value: Any) -> Any:
    """``value`` with nested payloads (a payload, a list of them, or optional) parsed."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return value if value is None or len(inner) != 1 else _parse_value(inner[0], value)
    nested = _payload_type(hint)
    if nested is not None and isinstance(value, dict):
        return nested.from_data(value)
    if origin is list and args and _payload_type(args[0]) and isinstance(value, list):
        return [args[0].from_data(v) if isinstance(v, dict) else v for v in value]
    return value


# --- progress ---------------------------------------------------------------------------

@dataclass
class LoadProgress(Payload):
    """The model is loading: what it is doing and how far it got (0–1)."""

    EVENT: ClassVar[str] = "progress"
    KIND: ClassVar[str] = "load"
    stage: str = ""
    fraction: float = 0.0


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
class RowsProgress(Payload):
    """Rows done of an evaluation or a batch apply (with rows/s and ETA when known)."""

    EVENT: ClassVar[str] = "progress"
    KIND: ClassVar[str] = "rows"
    done: int = 0
    total: int = 0
    rows_per_s: float | None = None
    eta_s: float | None = None


@dataclass
class PrepareProgress(Payload):
    """A training job tokenising its rows before its first step: ``done`` of ``total``
    (sent after each chunk of rows)."""

    EVENT: ClassVar[str] = "progress"
    KIND: ClassVar[str] = "prepare"
    done: int = 0
    total: int = 0


@dataclass
class Token(Payload):
    """A piece of generated text for row ``row`` of a ``generate`` request."""

    EVENT: ClassVar[str] = "token"
    row: int = 0
    text: str = ""


# --- results ----------------------------------------------------------------------------

@dataclass
class Hello(Payload):
    """What the worker says first (and answers to ``hello``)."""

    EVENT: ClassVar[str] = "hello"
    protocol: int = 0
    engine: str = ""
    model: dict | None = None
    ops: list[str] = field(default_factory=list)


@dataclass
class Pong(Payload):
    """The answer to ``ping``."""

    pong: bool = True


@dataclass
class Bye(Payload):
    """The answer to ``shutdown``."""

    bye: bool = True


@dataclass
class ModelDescription(Payload):
    """The loaded model (``load_model``, ``model_info``)."""

    name: str = ""
    source: str = ""
    path: str = ""
    fingerprint: str = ""
    parameters: int = 0
    hidden_size: int = 0
    layers: int = 0
    heads: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    vocab_size: int = 0
    max_positions: int = 0
    device: str = ""
    dtype: str = ""
    threads: int = 0
    load_seconds: float = 0.0
    family: str = ""
    exactness: float | None = None
    template: str = ""
    conversion: str = ""
    dtype_reason: str = ""
    quantization: str = ""


@dataclass
class GeneratedText(Payload):
    """One row's answer; ``finish_reason`` is eos, stop, length or cancelled."""

    text: str = ""
    tokens: list[int] = field(default_factory=list)
    finish_reason: str = ""
    truncated: bool = False
    version: int | None = None


@dataclass
class Generated(Payload):
    """The answer to ``generate``: one result per row; ``status`` is done or cancelled."""

    results: list[GeneratedText] = field(default_factory=list)
    status: str = "done"


@dataclass
class LabelScores(Payload):
    """The best label of one text and every label's probability."""

    label: str = ""
    probs: dict[str, float] = field(default_factory=dict)
    truncated: bool = False
    version: int | None = None


@dataclass
class Scored(Payload):
    """The answer to ``score``: one result per text."""

    results: list[LabelScores] = field(default_factory=list)


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
class CancelAnswer(Payload):
    """The answer to ``cancel``: which job and what state it was in."""

    job: str = ""
    was: str = ""


@dataclass
class JobLine(Payload):
    """One running or queued job (or a running eval/apply) in the ``jobs`` listing; a joint
    job names every task and run."""

    job: str = ""
    op: str = ""
    task: str = ""
    state: str = ""
    run_id: int | None = None
    step: int = 0
    total: int = 0
    run_ids: list[int] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)


@dataclass
class ResumableRun(Payload):
    """A run that stopped before its end and can be resumed from its checkpoint (a run of a
    joint job resumes the whole job, ``joint_id``)."""

    run_id: int = 0
    task: str = ""
    status: str = ""
    joint_id: int | None = None


@dataclass
class JobsListing(Payload):
    """The answer to ``jobs``."""

    jobs: list[JobLine] = field(default_factory=list)
    resumable: list[ResumableRun] = field(default_factory=list)


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


@dataclass
class RankedStarts(Payload):
    """The answer to ``rank_starts``: the candidates best first, and the best's init (None
    when the library has no prompt of that method and length and there is no text)."""

    method: str = ""
    length: int = 0
    starts: list[StartRank] = field(default_factory=list)
    best: str | None = None


@dataclass
class EvalOutcome(Payload):
    """The answer to ``eval``: metrics on ``n`` examples whose content hashes to
    ``data_sha256`` (same hash, same examples); ``status`` is done or cancelled."""

    status: str = "done"
    task: str = ""
    version: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    n: int = 0
    baseline: str = "none"
    data_sha256: str = ""


@dataclass
class ApplyOutcome(Payload):
    """The answer to ``apply``: the file written, or (cancelled) how far it got."""

    status: str = "done"
    out_path: str = ""
    rows: int = 0
    done: int = 0
    resumed_from: int = 0
    truncated: int = 0
    complete: bool = True
    columns: list[str] = field(default_factory=list)


@dataclass
class NearTokens(Payload):
    """The answer to ``nearest_tokens``: per virtual token its k nearest vocabulary tokens
    (``{id, token, score}``)."""

    task: str = ""
    version: int = 0
    method: str = ""
    k: int = 0
    tokens: list[list[dict]] = field(default_factory=list)


@dataclass
class Similarity(Payload):
    """The answer to ``similarity``: a task-by-task cosine matrix and the tasks left out."""

    method: str = ""
    tasks: list[str] = field(default_factory=list)
    matrix: list[list[float]] = field(default_factory=list)
    pooling: str = "mean"
    skipped: list[dict] = field(default_factory=list)


@dataclass
class Exported(Payload):
    """The answer to ``export``: where the file (or folder) was written."""

    task: str = ""
    format: str = ""
    path: str = ""


@dataclass
class Imported(Payload):
    """The answer to ``import``: what was added, renamed on a clash, or skipped."""

    format: str = ""
    added: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class LibraryInfo(Payload):
    """The answer to ``library_info``."""

    root: str = ""
    schema_version: int = 0
    tasks: int = 0


@dataclass
class TaskSaved(Payload):
    """The answer to ``create_task`` and ``edit_task``: the task's row (and its datasets)."""

    task: dict = field(default_factory=dict)
    datasets: list[dict] = field(default_factory=list)


@dataclass
class TaskDeleted(Payload):
    """The answer to ``delete_task``."""

    deleted: str = ""


@dataclass
class Activated(Payload):
    """The answer to ``activate``: the task and the version it now serves."""

    task: str = ""
    version: dict = field(default_factory=dict)


@dataclass
class DatasetAdded(Payload):
    """The answer to ``add_dataset``; ``added`` is False when the same file was there."""

    dataset: dict = field(default_factory=dict)
    added: bool = True


@dataclass
class ExamplesInstalled(Payload):
    """The answer to ``install_examples``."""

    installed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass
class MemoryPlanned(MemoryPlan, Payload):
    """The answer to ``plan``: a training run's memory, part by part (``engine.memory``)."""


PROGRESS: dict[str, type[Payload]] = {cls.KIND: cls for cls in (
    LoadProgress, Queued, Started, StepProgress, EvalProgress, VersionSaved, TaskFailed,
    ProbeProgress, RowsProgress, PrepareProgress)}
RESULTS: dict[str, type[Payload]] = {
    "hello": Hello, "ping": Pong, "shutdown": Bye, "load_model": ModelDescription,
    "model_info": ModelDescription, "generate": Generated, "score": Scored,
    "train": JobOutcome, "continue": JobOutcome, "resume": JobOutcome,
    "train_joint": JobOutcome, "universal": JobOutcome, "rank_starts": RankedStarts,
    "cancel": CancelAnswer, "jobs": JobsListing, "eval": EvalOutcome, "apply": ApplyOutcome,
    "nearest_tokens": NearTokens, "similarity": Similarity, "export": Exported,
    "import": Imported, "library_info": LibraryInfo, "create_task": TaskSaved,
    "edit_task": TaskSaved, "delete_task": TaskDeleted, "activate": Activated,
    "add_dataset": DatasetAdded, "install_examples": ExamplesInstalled,
    "plan": MemoryPlanned,
}


def parse_event(op: str, event: Event) -> Payload:
    """The typed payload of an event of an ``op`` request (ProtocolError if unknown)."""
    if event.type == "progress":
        cls = PROGRESS.get(str(event.data.get("kind", "")))
    elif event.type == "token":
        cls = Token
    elif event.type == "hello":
        cls = Hello
    elif event.type == "result":
        cls = RESULTS.get(op)
    else:
        cls = None
    if cls is None:
        raise ProtocolError(f"no payload type for a '{event.type}' event of '{op}' "
                            f"({event.data.get('kind', '')})")
    return cls.from_data(event.data)
