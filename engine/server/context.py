"""What every op handler of the engine process works with: the one model copy, the library,
the runtime, the scheduler and the way out (``send``). Handlers in ``engine.server.ops`` take
it as their first argument; nothing else is shared between them."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine import __version__
from engine.api.generation import DEFAULT_MAX_INPUT_TOKENS
from engine.api.payload import Payload
from engine.api.registry import OP_SPECS
from engine.api.session import DeviceJob, DeviceLine, Hello, LoadProgress
from engine.api.threads import resolve_threads
from engine.api.training import JobOutcome, PrepareProgress
from engine.api.wire import PROTOCOL_VERSION, Event, ProtocolError
from engine.errors import PromptbankError
from engine.methods import describe_methods
from engine.server.scheduler import JobEntry, Scheduler
from engine.support.eta import Eta

if TYPE_CHECKING:
    from engine.library import Library
    from engine.model.host import ModelHost
    from engine.prompts.soft_prompt import SoftPrompt
    from engine.server.openai_http.app import HttpServer
    from engine.serving.runtime import Runtime
    from engine.training.config import TrainConfig


def not_available(feature: str) -> PromptbankError:
    """The error of an op whose engine module is not installed in this build."""
    return PromptbankError(f"The {feature} is not available yet in this engine build.",
                           hint="Update Promptbank.")


def run_ids(described: dict[str, Any]) -> list[int]:
    """The runs a job's description names (a joint job's all, else its one)."""
    return list(described.get("run_ids") or [described.get("run_id")])


class TrainingJobAdapter:
    """A training job (one task's, a joint or a universal one) seen as a scheduler job (see
    ``engine.server.scheduler.Job``)."""

    def __init__(self, job: Any, on_finish: Callable[[str], None]) -> None:
        self.job = job
        self.on_finish = on_finish

    @property
    def done(self) -> bool:
        return bool(self.job.done)

    def step(self, between: Callable[[], None]) -> list[Payload]:
        return list(self.job.step(between))

    def describe(self) -> dict[str, Any]:
        return self.job.describe()

    def cancel(self, reason: str = "") -> JobOutcome:
        self.job.cancel(reason)
        return JobOutcome(status="cancelled", task=self.job.tasks[0], **self.describe())

    def finish(self, between: Callable[[], None]) -> JobOutcome:
        done = self.job.finish(between)
        for task in self.job.tasks:
            self.on_finish(task)
        # The job's own description (a joint job: every task and run) over its result's.
        return dataclasses.replace(done.outcome(), **self.describe())

    def fail(self, message: str) -> None:
        # The trainer closes the runs itself on the failures it knows (NaN, out of memory).
        self.job.fail_open(message)


@dataclasses.dataclass
class Feed:
    """More rows for an in-process ``generate`` while it decodes (the HTTP server's waiting
    requests): ``take(free)`` gives at most ``free`` rows (``generate`` row objects), which
    are numbered after the rows given before; up to ``capacity`` rows decode together;
    ``gone(row)`` tells that a row's requester went away, so the row can stop."""

    take: Callable[[int], list[dict[str, Any]]]
    capacity: int
    gone: Callable[[int], bool]


class Context:
    """The engine process's shared state, loaded on first use."""

    def __init__(self, args: argparse.Namespace, send: Callable[[Event], None]) -> None:
        self.args = args
        self.send = send
        self.host: ModelHost | None = None
        self.scheduler: Scheduler
        self._library: Library | None = None
        self._runtime: Runtime | None = None
        #: Where the events of in-process requests go instead of the client (the HTTP
        #: server's): request id -> a callable taking each event.
        self.taps: dict[str, Callable[[Event], None]] = {}
        #: Where such a request's running ``generate`` takes more rows from: request id ->
        #: its feed.
        self.feeds: dict[str, Feed] = {}
        #: The OpenAI-compatible server running in this process, if any.
        self.http: HttpServer | None = None

    def hello(self) -> Hello:
        """What ``hello`` answers: protocol and engine versions, model info, the ops."""
        info = self.host.info().to_data() if self.host else None
        return Hello(protocol=PROTOCOL_VERSION, engine=__version__, model=info,
                     ops=list(OP_SPECS), methods=describe_methods())

    def device_line(self) -> DeviceLine:
        """The device this engine computes on (its model's, else the one it would load on),
        its memory, and the jobs here."""
        import os

        from engine.model.device import device_name, memory_use, pick_device

        device = self.host.device if self.host is not None else pick_device(self.args.device)
        used, total, own = memory_use(device)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        gpu = (visible if device.type == "cuda" and visible and "," not in visible
               else str(device.index or 0) if device.type == "cuda" else None)
        jobs = [DeviceJob.from_data(j) for j in self.scheduler.listing()]
        return DeviceLine(device=str(device), name=device_name(device), gpu=gpu,
                          used_bytes=used, total_bytes=total, engine_bytes=own, jobs=jobs)

    def ensure_model(self, rid: str = "", spec: str | None = None, device: str | None = None,
                     quantize: str | None = None) -> ModelHost:
        """The loaded ModelHost, loading it (with progress events on ``rid``) if needed;
        ``quantize`` ("" for full precision) changes the base's precision from then on."""
        wanted = spec or self.args.model
        same = quantize is None or quantize == getattr(self.host, "quantization", None)
        if self.host is not None and spec in (None, self.host.spec) and device is None \
                and same:
            return self.host
        if self.host is not None and self.scheduler.jobs:
            raise PromptbankError("A training job uses the loaded model.",
                                  hint="Cancel or finish the jobs before switching models.")
        from engine.forward.fidelity import check_fidelity
        from engine.model.host import ModelHost

        eta = Eta()

        def on_progress(stage: str, fraction: float) -> None:
            self.send(LoadProgress(stage=stage, fraction=fraction,
                                   eta_s=eta.update(fraction)).event(rid))

        if quantize is not None:
            self.args.quantize = quantize or None
        host = ModelHost(wanted, device=device or self.args.device, dtype=self.args.dtype,
                         trust_remote_code=self.args.trust_remote_code, progress=on_progress,
                         threads=resolve_threads(getattr(self.args, "threads", None)),
                         quantize=getattr(self.args, "quantize", None),
                         offload=getattr(self.args, "offload", False))
        check_fidelity(host)
        self.host = host
        self._runtime = None
        if self._library is not None:
            self._library.record_model(host.info().to_data())
        return host

    @property
    def library(self) -> Library:
        """The Library, opened on first use."""
        if self._library is None:
            try:
                from engine.library import Library
            except ImportError as exc:
                raise not_available("library") from exc
            self._library = Library(self.args.library)
            if self.host is not None:
                self._library.record_model(self.host.info().to_data())
        return self._library

    def runtime(self, rid: str) -> Runtime:
        """The Runtime on the loaded model (created on first use)."""
        if self._runtime is None:
            host = self.ensure_model(rid)
            try:
                from engine.serving.runtime import Runtime
            except ImportError as exc:
                raise not_available("runtime (generation and scoring)") from exc
            self._runtime = Runtime(host, self.library,
                                    max_input_tokens=getattr(self.args, "max_input_tokens",
                                                             DEFAULT_MAX_INPUT_TOKENS))
        return self._runtime

    def invalidate(self, task: str) -> None:
        """Forget a task's cached prompt keys/values (it has a new version or is gone)."""
        if self._runtime is not None:
            self._runtime.invalidate(task)

    def task_name(self, task_id: int) -> str:
        return self.library.get_task_by_id(task_id).name

    def soft_prompt(self, task: str, version: int | None) -> tuple[Any, SoftPrompt]:
        """A task's version record and its prompt file."""
        from engine.prompts.soft_prompt import SoftPrompt

        ver = self.library.get_version(task, version)
        data = self.library.read_version_bytes(ver)
        return ver, SoftPrompt.from_bytes(data, source=str(self.library.version_path(ver)))

    def refuse_if_training(self, task: str) -> None:
        """A task with a queued or running job here keeps its name and rows until it ends."""
        entry = next((e for e in self.scheduler.jobs if e.trains(task)), None)
        if entry is not None:
            raise PromptbankError(f"The task '{task}' has a {entry.state} training job "
                                  f"({entry.id}).",
                                  hint="Cancel it or wait for it to end, then try again.")

    def train_config(self, config: dict, task: str | None = None) -> TrainConfig:
        """The settings of a run from a request's ``config``: for a new run of ``task``, the
        defaults of the mode its size picks (``mode`` auto or absent) under the given fields;
        otherwise the given fields (mode auto is standard there)."""
        try:
            from engine.training.config import TrainConfig
            from engine.training.settings import settings_for
        except ImportError as exc:
            raise not_available("trainer") from exc
        known = [f.name for f in dataclasses.fields(TrainConfig)]
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ProtocolError(f"Unknown field 'config.{unknown[0]}' for training; known "
                                f"fields: {', '.join(known)}.")
        try:
            if task is not None:
                parsed = settings_for(self.library, task, config)
            else:
                mode = "standard" if config.get("mode") in (None, "auto") else config["mode"]
                parsed = TrainConfig(**{**config, "mode": mode})
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"Argument 'config' is not valid: {exc}.") from exc
        parsed.check()
        return parsed

    def submit(self, rid: str, op: str, task: str, start: Callable[..., Any],
               tasks: tuple[str, ...] = ()) -> None:
        """Queue a job that ``start(between, on_rows)`` builds when its turn comes; while it
        tokenises its rows it sends ``prepare`` progress and answers quick requests."""
        def begin(between: Callable[[], None]) -> TrainingJobAdapter:
            eta = Eta()

            def on_rows(done: int, total: int) -> None:
                self.send(PrepareProgress(done, total, eta.update(done / max(1, total)))
                          .event(rid))
                between()

            return TrainingJobAdapter(start(between, on_rows), self.invalidate)

        self.scheduler.submit(JobEntry(rid, op, task, begin, tasks=tasks))
