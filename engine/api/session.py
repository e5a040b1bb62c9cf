"""The session with the engine: greeting, liveness, the model, jobs and cancelling.

Torch-free: each op is declared beside the payloads it answers with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from engine.api.payload import Payload
from engine.api.spec import (
    Arg,
    OpSpec,
)


@dataclass
class LoadProgress(Payload):
    """The model is loading: what it is doing and how far it got (0–1)."""

    EVENT: ClassVar[str] = "progress"
    KIND: ClassVar[str] = "load"
    stage: str = ""
    fraction: float = 0.0
    eta_s: float | None = None  # seconds left at the pace so far (None: too early to say)


@dataclass
class MethodInfo(Payload):
    """A prompt method as the desktop sees it: its name, its tensor's key and token axis."""

    name: str = ""
    summary: str = ""
    tensor_key: str = ""
    token_axis: int = 0
    input_embeddings: bool = False
    default_lr: float = 0.0


@dataclass
class Hello(Payload):
    """What the worker says first (and answers to ``hello``)."""

    EVENT: ClassVar[str] = "hello"
    protocol: int = 0
    engine: str = ""
    model: dict | None = None
    ops: list[str] = field(default_factory=list)
    methods: list[MethodInfo] = field(default_factory=list)


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
    worker: int | None = None
    """On a remote engine with several workers: which one holds the job."""
    gpu: str | None = None
    """…and the GPU that worker runs on (its CUDA device number on the host)."""


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
class DeviceJob(Payload):
    """A job computing on a device; on a shared GPU host, possibly another library's."""

    task: str = ""
    op: str = ""
    state: str = ""
    step: int = 0
    total: int = 0
    library: str = ""
    """Empty for this library; else the first characters of the other library's id."""
    user: str = ""
    """The host account whose worker runs it (another library's job)."""


@dataclass
class DeviceLine(Payload):
    """One device an engine computes on: its memory and the jobs on it."""

    device: str = ""
    """``cpu``, ``cuda:0``, ``mps``."""
    name: str = ""
    gpu: str | None = None
    """On a remote host: the GPU's CUDA number there."""
    worker: int | None = None
    used_bytes: int = 0
    """Memory in use on the device: by every process on a GPU, by the whole system on the
    CPU."""
    total_bytes: int = 0
    engine_bytes: int = 0
    """This library's engine's own share of it."""
    jobs: list[DeviceJob] = field(default_factory=list)


@dataclass
class DevicesListing(Payload):
    """The answer to ``devices``."""

    devices: list[DeviceLine] = field(default_factory=list)


SPECS = (
    OpSpec("hello", "Protocol version, engine version, model info (null until loaded).",
           result=Hello),
    OpSpec("ping", "Answers at once; measures the round trip.",
           result=Pong),
    OpSpec("load_model", "Load (or switch to) a base model; streams load progress.",
           (Arg("model", "str", doc="model spec (default: the worker's --model)"),
            Arg("device", "str", doc="auto | cpu | cuda[:N] | mps"),
            Arg("quantize", "str", choices=("", "8bit", "4bit"),
                doc="hold the base in 8 or 4 bits (\"\": full precision; default: as started)")),
           "progress*, result", "long",
           result=ModelDescription),
    OpSpec("model_info", "The loaded model's description (loads it if needed).",
           result=ModelDescription),
    OpSpec("cancel", "Stop a job at the next step boundary (checkpointed, resumable), "
           "a running eval/apply at its next batch, or a generate at its next token.",
           (Arg("job", "str", required=True, doc="the id of the train/train_joint/universal/"
                "continue/resume/eval/apply/generate request"),),
           result=CancelAnswer),
    OpSpec("jobs", "Running and queued jobs, and interrupted runs that can be resumed.",
           result=JobsListing),
    OpSpec("devices", "Each device the engine computes on, its memory and its jobs (on a "
           "shared GPU host, other libraries' jobs on the same GPU too).",
           result=DevicesListing),
    OpSpec("shutdown", "Checkpoint the running job, then exit.",
           result=Bye),
)
PROGRESS = (LoadProgress,)
