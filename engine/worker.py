"""The engine process (``promptbank worker``): one model copy, JSON lines on stdin/stdout.

A reader thread queues requests; the scheduler answers them first and otherwise advances the
running training job by one step. stdout carries only protocol lines (flushed); logs go to
stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from engine import __version__
from engine.cpu_threads import resolve_threads
from engine.errors import PromptbankError
from engine.faults import release_memory
from engine.library_requests import LibraryRequests
from engine.multitask_requests import MultitaskRequests
from engine.payloads import (
    ApplyOutcome,
    Bye,
    CancelAnswer,
    EvalOutcome,
    Exported,
    Generated,
    GeneratedText,
    Hello,
    JobLine,
    JobOutcome,
    JobsListing,
    LabelScores,
    LoadProgress,
    ModelDescription,
    NearTokens,
    Payload,
    Pong,
    PrepareProgress,
    ResumableRun,
    RowsProgress,
    Scored,
    Similarity,
    Token,
)
from engine.protocol import (
    OP_SPECS,
    PROTOCOL_VERSION,
    Event,
    ProtocolError,
    Request,
    decode_request,
    generate_rows,
    read_lines,
    request_id_of,
    validate_args,
)
from engine.scheduler import END_OF_INPUT, InputFailed, JobEntry, Malformed, Scheduler, one_line

log = logging.getLogger("promptbank.worker")


def not_available(feature: str) -> PromptbankError:
    """The error of an op whose engine module is not installed in this build."""
    return PromptbankError(f"The {feature} is not available yet in this engine build.",
                           hint="Update Promptbank.")


def fields_of(value: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict (to build a payload from an engine record)."""
    return dataclasses.asdict(value)


def _run_ids(described: dict[str, Any]) -> list[int]:
    """The runs a job's description names (a joint job's all, else its one)."""
    return list(described.get("run_ids") or [described.get("run_id")])


class EvalCancelled(Exception):
    """Raised from an evaluation's progress callback to stop it when cancelled."""


def shots(value: list) -> list[tuple[str, str]]:
    """Few-shot examples from JSON: a list of [input, output] pairs."""
    if not all(isinstance(p, list | tuple) and len(p) == 2 and all(isinstance(x, str) for x in p)
               for p in value):
        raise ProtocolError("Field 'shots' of 'generate' must be a list of [input, output] "
                            "string pairs.")
    return [(a, b) for a, b in value]


class TrainingJobAdapter:
    """A training job (one task's, a joint or a universal one) seen as a scheduler job (see
    engine/scheduler.Job)."""

    def __init__(self, job: Any, library: Any, on_finish: Any) -> None:
        self.job = job
        self.library = library
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


class Worker(LibraryRequests, MultitaskRequests):
    """Holds the one model copy, the library and the runtime; answers every op."""

    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
        self.args = args
        self.out = out
        self.host: Any = None
        self._library: Any = None
        self._runtime: Any = None
        self._lock = threading.Lock()
        self.client_gone = False
        self.scheduler = Scheduler(self.send, self.handle,
                                   quick=lambda op: OP_SPECS[op].kind == "quick"
                                   if op in OP_SPECS else True,
                                   on_failure=lambda exc: release_memory())

    # --- output ---------------------------------------------------------------------------

    def send(self, event: Event) -> None:
        """Write one protocol line and flush it.

        A closed pipe means the client went away (the desktop quit or died): that is no
        failure of the work in progress, so the worker stops as at the end of its input,
        checkpointing the running job, and writes nothing more.
        """
        line = event.encode()
        with self._lock:
            if self.client_gone:
                return
            try:
                self.out.write(line)
                self.out.flush()
            except (BrokenPipeError, ValueError, OSError) as exc:
                self.client_gone = True
                log.info("the client went away (%s); stopping", type(exc).__name__)
                self.scheduler.put(END_OF_INPUT)

    # --- shared state -----------------------------------------------------------------

    def ensure_model(self, rid: str = "", spec: str | None = None,
                     device: str | None = None, quantize: str | None = None) -> Any:
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
        from engine.model import ModelHost

        def on_progress(stage: str, fraction: float) -> None:
            self.send(LoadProgress(stage=stage, fraction=fraction).event(rid))

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
            self._library.record_model(self.host.info().to_dict())
        return self.host

    @property
    def library(self) -> Any:
        """The Library, opened on first use."""
        if self._library is None:
            try:
                from engine.library import Library
            except ImportError as exc:
                raise not_available("library") from exc
            self._library = Library(self.args.library)
            if self.host is not None:
                self._library.record_model(self.host.info().to_dict())
        return self._library

    def runtime(self, rid: str) -> Any:
        """The Runtime on the loaded model (created on first use)."""
        if self._runtime is None:
            host = self.ensure_model(rid)
            try:
                from engine.runtime import Runtime
            except ImportError as exc:
                raise not_available("runtime (generation and scoring)") from exc
            self._runtime = Runtime(host, self.library)
        return self._runtime

    def _invalidate(self, task: str) -> None:
        if self._runtime is not None:
            self._runtime.invalidate(task)

    # --- ops ------------------------------------------------------------------------------

    def hello(self) -> Hello:
        """What ``hello`` answers: protocol and engine versions, model info, the ops."""
        info = self.host.info().to_dict() if self.host else None
        return Hello(protocol=PROTOCOL_VERSION, engine=__version__, model=info,
                     ops=list(OP_SPECS))

    def handle(self, req: Request) -> None:
        """Validate a request and run its op (events go out through ``send``)."""
        try:
            args = validate_args(req.op, req.args)
        except ProtocolError as exc:
            self.send(Event(req.id, "error", {"message": str(exc)}))
            return
        getattr(self, "op_" + req.op)(req.id, args)

    def op_hello(self, rid: str, args: dict) -> None:
        self.send(Event(rid, "result", self.hello().to_data()))

    def op_ping(self, rid: str, args: dict) -> None:
        self.send(Pong().event(rid))

    def op_load_model(self, rid: str, args: dict) -> None:
        host = self.ensure_model(rid, args["model"], args["device"], args.get("quantize"))
        self.send(ModelDescription(**host.info().to_dict()).event(rid))

    def op_model_info(self, rid: str, args: dict) -> None:
        self.send(ModelDescription(**self.ensure_model(rid).info().to_dict()).event(rid))

    def op_shutdown(self, rid: str, args: dict) -> None:
        self.scheduler.stop("the worker was shut down")
        self.send(Bye().event(rid))

    def op_generate(self, rid: str, args: dict) -> None:
        rows = generate_rows(args)
        runtime = self.runtime(rid)
        from engine.runtime import GenRow

        fields = {f.name for f in dataclasses.fields(GenRow)}
        gen_rows = []
        for row in rows:
            if "shots" in row:
                row["shots"] = shots(row["shots"])
            gen_rows.append(GenRow(**{k: v for k, v in row.items() if k in fields}))

        def on_token(row: int, text: str) -> None:
            self.send(Token(row=row, text=text).event(rid))

        # A cancel of this request stops it between tokens (see Scheduler.stoppable).
        with self.scheduler.stoppable(rid) as should_stop:
            results = runtime.generate(gen_rows, on_token=on_token if args["stream"] else None,
                                       should_stop=should_stop)
        stopped = any(r.finish_reason == "cancelled" for r in results)
        self.send(Generated([GeneratedText(**fields_of(r)) for r in results],
                            status="cancelled" if stopped else "done").event(rid))

    def op_score(self, rid: str, args: dict) -> None:
        texts = args["texts"]
        if not all(isinstance(t, str) for t in texts):
            raise ProtocolError("Argument 'texts' of 'score' must be a list of strings.")
        scores = self.runtime(rid).score(args["task"], texts, version=args["version"])
        self.send(Scored([LabelScores(**fields_of(s)) for s in scores]).event(rid))

    def _train_config(self, config: dict, task: str | None = None) -> Any:
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

    def _submit(self, rid: str, op: str, task: str, start: Any,
                tasks: tuple[str, ...] = ()) -> None:
        """Queue a job that ``start(between, on_rows)`` builds when its turn comes; while it
        tokenises its rows it sends ``prepare`` progress and answers quick requests."""
        def begin(between: Callable[[], None]) -> TrainingJobAdapter:
            def on_rows(done: int, total: int) -> None:
                self.send(PrepareProgress(done, total).event(rid))
                between()

            return TrainingJobAdapter(start(between, on_rows), self.library, self._invalidate)

        self.scheduler.submit(JobEntry(rid, op, task, begin, tasks=tasks))

    def op_train(self, rid: str, args: dict) -> None:
        task = self.library.get_task(args["task"]).name
        config = self._train_config(args["config"], task)
        from engine.training.job import TrainingJob

        self._submit(rid, "train", task,
                     lambda between, on_rows: TrainingJob.start(
                         self.library, self.ensure_model(rid), task, config, between=between,
                         on_rows=on_rows))

    def op_plan(self, rid: str, args: dict) -> None:
        from engine.payloads import MemoryPlanned
        from engine.training.plan import plan_run

        tasks = [self.library.get_task(t).name for t in args["tasks"]]
        config = self._train_config(args["config"], tasks[0])
        host = self.ensure_model(rid)
        plan = plan_run(self.library, tasks, config, model=host.spec, device=str(host.device),
                        dtype=str(host.dtype).removeprefix("torch."), resident=host)
        self.send(MemoryPlanned(**plan.to_dict()).event(rid))

    def op_continue(self, rid: str, args: dict) -> None:
        config = self._train_config(args["config"])
        task = self.library.get_task(args["task"]).name
        data = Path(args["data"]).expanduser()
        if not data.is_file():
            raise PromptbankError(f"The data file {data} does not exist.", hint="Check the path.")
        from engine.training.job import TrainingJob

        self._submit(rid, "continue", task,
                     lambda between, on_rows: TrainingJob.start(
                         self.library, self.ensure_model(rid), task, config, continue_data=data,
                         between=between, on_rows=on_rows))

    def op_resume(self, rid: str, args: dict) -> None:
        run_id = args["run_id"]
        run = self.library.get_run(run_id)
        if any(run_id in _run_ids(e.job.describe()) for e in self.scheduler.jobs
               if e.job is not None):
            raise PromptbankError(f"Run {run_id} is already running in this worker.")
        self.library.claim_run(run_id)  # refuses a finished run and one another process trains
        try:
            from engine.training.resume import resume_run
        except ImportError as exc:
            raise not_available("trainer") from exc
        task = self._task_name(run.task_id)
        tasks = tuple(self._task_name(r.task_id) for r in self.library.joint_runs(run.joint_id)
                      ) if run.joint_id is not None else ()
        self._submit(rid, "resume", task,
                     lambda between, on_rows: resume_run(self.library, self.ensure_model(rid),
                                                         run_id, on_rows=on_rows),
                     tasks)

    def _task_name(self, task_id: int) -> str:
        return self.library.get_task_by_id(task_id).name

    def op_cancel(self, rid: str, args: dict) -> None:
        was = self.scheduler.cancel(args["job"])
        self.send(CancelAnswer(job=args["job"], was=was).event(rid))

    def op_jobs(self, rid: str, args: dict) -> None:
        from engine.library.owner import RunOwner

        listing = self.scheduler.listing()
        active = {i for j in listing for i in _run_ids(j)}
        me = RunOwner.this_process()
        resumable = [
            ResumableRun(run_id=r.id, task=self._task_name(r.task_id), status=r.status,
                         joint_id=r.joint_id)
            for r in self.library.list_runs()
            if r.status in ("running", "cancelled") and r.id not in active
            and not (r.owner and r.owner.blocks(me))
        ]
        self.send(JobsListing([JobLine(**line) for line in listing], resumable).event(rid))

    def op_eval(self, rid: str, args: dict) -> None:
        try:
            from engine.evaluate import evaluate
        except ImportError as exc:
            raise not_available("evaluation") from exc
        runtime = self.runtime(rid)
        data = Path(args["data"]).expanduser() if args["data"] else None

        def work(should_stop: Any) -> None:
            def on_progress(done: int, total: int) -> None:
                self.send(RowsProgress(done=done, total=total).event(rid))
                self.scheduler.serve_pending()
                if should_stop():
                    raise EvalCancelled

            try:
                res = evaluate(runtime, self.library, args["task"], version=args["version"],
                               data=data, baseline=args["baseline"], on_progress=on_progress)
            except EvalCancelled:
                # Nothing was stored: an evaluation is recorded only when complete.
                self.send(EvalOutcome(status="cancelled", task=args["task"]).event(rid))
                return
            self.send(EvalOutcome(status="done", **res.to_dict()).event(rid))

        self.scheduler.run_long(rid, "eval", args["task"], work)

    def op_apply(self, rid: str, args: dict) -> None:
        try:
            from engine.apply import apply_file
        except ImportError as exc:
            raise not_available("batch apply") from exc
        tasks = args["tasks"] if isinstance(args["tasks"], list) else [args["tasks"]]
        if not all(isinstance(t, str) for t in tasks):
            raise ProtocolError("Argument 'tasks' of 'apply' must be a task name or a list "
                                "of task names.")
        runtime = self.runtime(rid)

        def work(should_stop: Any) -> None:
            def on_progress(done: int, total: int, rate: float, eta: float | None) -> None:
                self.send(RowsProgress(done=done, total=total, rows_per_s=rate,
                                       eta_s=eta).event(rid))
                self.scheduler.serve_pending()

            res = apply_file(runtime, tasks, Path(args["input"]).expanduser(), args["column"],
                             Path(args["output"]).expanduser(), overwrite=args["overwrite"],
                             on_progress=on_progress, should_stop=should_stop)
            status = "done" if res.complete else "cancelled"
            self.send(ApplyOutcome(status=status, **res.to_dict()).event(rid))

        self.scheduler.run_long(rid, "apply", ",".join(tasks), work)

    def _soft_prompt(self, task: str, version: int | None) -> tuple[Any, Any]:
        from engine.prompts import SoftPrompt

        ver = self.library.get_version(task, version)
        data = self.library.read_version_bytes(ver)
        return ver, SoftPrompt.from_bytes(data, source=str(self.library.version_path(ver)))

    def op_nearest_tokens(self, rid: str, args: dict) -> None:
        from engine.inspect import nearest_tokens

        ver, prompt = self._soft_prompt(args["task"], args["version"])
        tokens = nearest_tokens(self.ensure_model(rid), prompt, k=args["k"])
        self.send(NearTokens(task=args["task"], version=ver.number, method=prompt.method,
                             k=args["k"], tokens=tokens).event(rid))

    def op_similarity(self, rid: str, args: dict) -> None:
        from engine.inspect import similarity

        names = args["tasks"] or [t.name for t in self.library.list_tasks()]
        host = self.ensure_model(rid)
        prompts, skipped = {}, []
        for name in names:
            if not isinstance(name, str):
                raise ProtocolError("Argument 'tasks' of 'similarity' must list task names.")
            try:
                _, prompt = self._soft_prompt(name, None)
            except PromptbankError as exc:
                skipped.append({"task": name, "reason": str(exc)})
                continue
            if prompt.method != args["method"]:
                skipped.append({"task": name, "reason": f"its active version is a "
                                f"{prompt.method}, not a {args['method']}"})
            elif prompt.geometry.fingerprint != host.fingerprint:
                skipped.append({"task": name, "reason": "trained on another model"})
            else:
                prompts[name] = prompt
        sim = similarity(prompts, pooling=args["pooling"])
        self.send(Similarity(method=args["method"], skipped=skipped, **sim).event(rid))

    def op_export(self, rid: str, args: dict) -> None:
        from engine.interop import export_version

        out = export_version(self.library, args["task"], args["format"], Path(args["out"]),
                             version=args["version"], include_eval=args["include_eval"])
        self.send(Exported(task=args["task"], format=args["format"], path=str(out)).event(rid))

    # --- the process ------------------------------------------------------------------

    def read(self, stream: BinaryIO) -> None:
        """The reader thread: decode lines and queue them for the main loop.

        A line that cannot be decoded, for whatever reason, is answered as a malformed
        request. If reading itself fails the main loop is told, and the worker exits so its
        client sees it gone and can start a fresh one.
        """
        try:
            for line in read_lines(stream):
                if line.strip():
                    self.scheduler.put(decode_line(line))
        except BaseException as exc:
            log.error("reading requests failed:\n%s", traceback.format_exc())
            self.scheduler.put(InputFailed(one_line(exc)))
            return
        self.scheduler.put(END_OF_INPUT)

    def serve(self, stream: BinaryIO) -> int:
        """Say hello, then serve requests from ``stream`` until shutdown or end of input;
        the exit status (1 when the input could no longer be read)."""
        self.send(self.hello().event(""))
        reader = threading.Thread(target=self.read, args=(stream,), name="reader", daemon=True)
        self.scheduler.input_alive = reader.is_alive
        reader.start()
        self.scheduler.run()
        return self.scheduler.exit_code


def decode_line(line: bytes) -> Request | Malformed:
    """A request line decoded, or what the main loop answers instead: never an exception."""
    try:
        return decode_request(line)
    except ProtocolError as exc:
        return Malformed(request_id_of(line), str(exc))
    except Exception as exc:  # a defect of ours costs this one line, not the reader
        log.error("could not decode a request line:\n%s", traceback.format_exc())
        return Malformed(request_id_of(line), one_line(exc))


def protocol_stdout() -> TextIO:
    """A private handle on the real stdout; fd 1 and ``sys.stdout`` then point at stderr.

    Stray prints (ours or a library's, even from C) can then never corrupt the protocol.
    """
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def run(args: argparse.Namespace) -> int:
    """Serve stdin/stdout until ``shutdown`` or end of input."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="worker: %(message)s")
    # A private handle on stdin: the interpreter, exiting, must not wait for the lock of a
    # stream the reader thread is blocked in (that aborts the process).
    requests = os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    return Worker(args, out=protocol_stdout()).serve(requests)
