"""The worker's scheduler: answer pending requests first, else advance the running job one step.

Torch-free. Requests arrive on a queue (filled by a reader thread); background jobs (training
runs) wait in a FIFO and the one at its head advances by one ``step()`` whenever no request is
pending, so inference on any task is served between two training steps on the same model.
A job's start, steps and finish call back between the model's layers (engine.forward.breaks), where
quick requests are answered too, so a request waits for about one layer of a step or an
evaluation rather than the whole of it.
"""

from __future__ import annotations

import logging
import queue
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from engine.api.payload import Payload
from engine.api.training import EvalProgress, JobOutcome, Queued, Started, StepProgress
from engine.api.wire import Event, ProtocolError, Request, error
from engine.errors import PromptbankError
from engine.support.faults import is_out_of_memory

log = logging.getLogger("promptbank.worker")


class Job(Protocol):
    """Background work advanced in slices (a training run)."""

    @property
    def done(self) -> bool: ...

    def step(self, between: Callable[[], None]) -> list[Payload]: ...

    def cancel(self, reason: str = "") -> JobOutcome: ...

    def finish(self, between: Callable[[], None]) -> JobOutcome: ...

    def fail(self, message: str) -> None: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class JobEntry:
    """A queued or running job, known by the id of the request that asked for it."""

    id: str
    op: str
    task: str
    start: Callable[[Callable[[], None]], Job]
    job: Job | None = None
    submitted: float = field(default_factory=time.time)
    tasks: tuple[str, ...] = ()  # every task a joint job trains (default: just ``task``)
    followers: list[str] = field(default_factory=list)
    """Ids of ``watch`` requests that hear the job's events too (other clients, or one that
    came back after its connection dropped)."""

    @property
    def listeners(self) -> list[str]:
        """Every request id the job's events go out under."""
        return [self.id, *self.followers]

    @property
    def state(self) -> str:
        return "queued" if self.job is None else "running"

    def trains(self, task: str) -> bool:
        """Whether the job trains ``task``."""
        return task == self.task or task in self.tasks

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly line of the ``jobs`` listing."""
        info = {"job": self.id, "op": self.op, "task": self.task, "state": self.state}
        if self.job is not None:
            info.update(self.job.describe())
        return info


@dataclass
class Malformed:
    """A line the reader could not decode, answered in order by the main loop."""

    id: str
    message: str


@dataclass
class InputFailed:
    """The request reader stopped on an error: the worker can no longer hear its client."""

    reason: str


END_OF_INPUT = object()
Item = Request | Malformed | InputFailed | object
#: How often a main loop waiting for requests checks that the reader still runs (seconds).
WATCH_S = 0.5
#: Ops that change the jobs themselves: inside a job's start, step or finish they wait for its
#: end, so a job is cancelled or checkpointed only at a step boundary.
STEP_BOUNDARY_OPS = frozenset({"cancel", "shutdown"})
#: Ops answered even from inside a request's own model pass (a long prefill): they read no
#: model and no catalogue, so nothing they touch is in use there.
CONTROL_OPS = frozenset({"ping", "hello", "jobs"})
#: How many ended stoppable requests are remembered, so a late cancel of one is no error.
ENDED_MEMORY = 256


def one_line(exc: BaseException) -> str:
    """A one-line message for an exception (PromptbankError text, else type and text)."""
    if isinstance(exc, PromptbankError | ProtocolError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Scheduler:
    """The main loop: pending requests first (through ``handle``), else one job step."""

    def __init__(self, send: Callable[[Event], None], handle: Callable[[Request], None],
                 *, quick: Callable[[str], bool] = lambda op: True,
                 on_failure: Callable[[BaseException], None] = lambda exc: None,
                 input_alive: Callable[[], bool] = lambda: True) -> None:
        self.send = send
        self.handle = handle
        self.quick = quick
        self.on_failure = on_failure
        self.input_alive = input_alive
        self.exit_code = 0
        self.inbox: queue.Queue[Item] = queue.Queue()
        self.backlog: deque[Item] = deque()
        self.jobs: deque[JobEntry] = deque()
        self.running = True
        self.long_op: dict[str, Any] | None = None
        self.long_cancelled = False
        self.in_job = False  # inside a job's start, step or finish
        self.served_s = 0.0  # time spent answering requests from inside long ops and jobs
        # Requests that stop when a cancel for them arrives (generate): id → cancel seen.
        # The reader thread sets the flag as the cancel line arrives, because the main thread
        # is busy running the request and reads its queue only afterwards.
        self.stoppable_requests: dict[str, bool] = {}
        self.ended_requests: deque[str] = deque(maxlen=ENDED_MEMORY)
        self.early_cancels: deque[str] = deque(maxlen=ENDED_MEMORY)  # before they started

    # --- requests ---------------------------------------------------------------------

    def put(self, item: Item) -> None:
        """Queue a request (thread-safe; the reader thread calls this)."""
        if isinstance(item, Request) and item.op == "cancel":
            target = item.args.get("job")
            if isinstance(target, str) and target in self.stoppable_requests:
                self.stoppable_requests[target] = True
            elif isinstance(target, str):
                self.early_cancels.append(target)
        self.inbox.put(item)

    @contextmanager
    def stoppable(self, rid: str) -> Iterator[Callable[[], bool]]:
        """While inside, the callable it gives turns True once a ``cancel`` of request
        ``rid`` has arrived; a request checks it between small pieces of its work (a
        generate between tokens). Nothing is served re-entrantly: the flag is all it sees."""
        self.stoppable_requests[rid] = rid in self.early_cancels
        try:
            yield lambda: self.stoppable_requests.get(rid, False)
        finally:
            self.stoppable_requests.pop(rid, None)
            self.ended_requests.append(rid)

    def _next(self, block: bool) -> Item | None:
        if self.backlog:
            return self.backlog.popleft()
        try:
            return self.inbox.get(block=block, timeout=WATCH_S if block else None)
        except queue.Empty:
            # A reader that ended without a word (end of input is queued before it ends)
            # would leave the worker deaf for ever: stop, so its client sees it gone.
            if not self.input_alive() and self.inbox.empty():
                return InputFailed("the request reader ended")
            return None

    def dispatch(self, item: Item) -> None:
        """Answer one request; every failure becomes an ``error`` event, never a crash."""
        if item is END_OF_INPUT:
            self.stop("the desktop or client went away")
            return
        if isinstance(item, InputFailed):
            log.error("the worker cannot read requests any more (%s); it exits", item.reason)
            self.exit_code = 1
            self.stop(f"the worker could not read its input ({item.reason})")
            return
        if isinstance(item, Malformed):
            self.send(error(item.id, f"Malformed request: {item.message}."))
            return
        assert isinstance(item, Request)
        try:
            self.handle(item)
        except Exception as exc:
            self.fail_request(item.id, exc)

    def fail_request(self, rid: str, exc: BaseException) -> None:
        """Send the one-line error of a failed request; the trace goes to the log."""
        if isinstance(exc, PromptbankError):
            log.info("request %s: %s", rid, exc)
        else:
            log.error("request %s failed:\n%s", rid, traceback.format_exc())
        if is_out_of_memory(exc):
            self.on_failure(exc)
            self.send(error(rid, f"Out of memory: {one_line(exc)}. The request was dropped; "
                            "try fewer rows, shorter texts or a smaller batch."))
            return
        self.send(error(rid, one_line(exc)))

    def busy(self) -> bool:
        """Whether requests wait or a job is queued or running: work that a request which
        could go on taking more rows (a served decode) should let have the model."""
        return bool(self.backlog or self.jobs) or not self.inbox.empty()

    def serve_pending(self) -> None:
        """Answer the quick requests waiting now (called from inside a long op or a job).

        Other requests (jobs, long ops; inside a job also cancel and shutdown) wait in the
        backlog until the long op or the job's slice ends.
        """
        if self.long_op is None and not self.in_job:
            return
        started = time.perf_counter()
        self._drain(lambda item: not self._must_wait(item))
        self.served_s += time.perf_counter() - started

    def serve_control(self) -> None:
        """Answer the control requests waiting now (ping, hello, jobs) from inside a quick
        request's model pass; every other request keeps its place in the backlog. Inside a
        job or a long op their own breaks serve, so this does nothing there."""
        if self.long_op is not None or self.in_job:
            return
        self._drain(lambda item: isinstance(item, Request) and item.op in CONTROL_OPS)

    def _drain(self, now: Callable[[Item], bool]) -> None:
        """Take every waiting request: dispatch those ``now`` accepts, backlog the rest."""
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return
            if now(item):
                self.dispatch(item)
            else:
                self.backlog.append(item)

    def _must_wait(self, item: Item) -> bool:
        if item is END_OF_INPUT or isinstance(item, InputFailed):
            return True
        if not isinstance(item, Request):
            return False
        return not self.quick(item.op) or (self.in_job and item.op in STEP_BOUNDARY_OPS)

    def run_long(self, rid: str, op: str, task: str,
                 work: Callable[[Callable[[], bool]], None]) -> None:
        """Run a long op inline; ``work`` gets a should-stop callable and may call
        ``serve_pending`` from its progress callback so quick requests are answered meanwhile."""
        self.long_op = {"job": rid, "op": op, "task": task, "state": "running"}
        self.long_cancelled = False
        try:
            work(lambda: self.long_cancelled)
        finally:
            self.long_op = None

    # --- jobs ---------------------------------------------------------------------------

    def submit(self, entry: JobEntry) -> None:
        """Queue a job behind the others (FIFO) and tell its requester where it stands."""
        self.jobs.append(entry)
        self.send(Queued(position=len(self.jobs) - 1, task=entry.task).event(entry.id))

    def in_progress(self, rid: str) -> bool:
        """Whether a request with id ``rid`` is still queued or running (its id is taken)."""
        return (self.find(rid) is not None or rid in self.stoppable_requests
                or (self.long_op is not None and self.long_op["job"] == rid))

    def watch(self, job_id: str, rid: str) -> None:
        """Send a job's events under ``rid`` too from now on, starting with where it stands."""
        entry = self.find(job_id)
        if entry is None:
            raise PromptbankError(f"No job '{job_id}' is queued or running; a job that ended "
                                  "has its results in the library.",
                                  hint="List them with the 'jobs' op.")
        entry.followers.append(rid)
        if entry.job is None:
            self.send(Queued(position=self.jobs.index(entry), task=entry.task).event(rid))
        else:
            self.send(Started(task=entry.task, **entry.job.describe()).event(rid))

    def find(self, job_id: str) -> JobEntry | None:
        """The queued or running job asked for under ``job_id`` or followed under it."""
        return next((e for e in self.jobs if job_id in e.listeners), None)

    def _tell(self, entry: JobEntry, payload: Payload) -> None:
        for rid in entry.listeners:
            self.send(payload.event(rid))

    def _fail_job(self, entry: JobEntry, exc: BaseException) -> None:
        for rid in entry.listeners:
            self.fail_request(rid, exc)

    def cancel(self, job_id: str, reason: str = "") -> str:
        """Cancel a queued job or stop the running one (checkpointed); returns its old state.

        ``reason`` says why when the user did not ask (the client went away, shutdown)."""
        if self.long_op is not None and self.long_op["job"] == job_id:
            self.long_cancelled = True
            return "running"
        if job_id in self.ended_requests:
            return "ended"  # a generate that stopped on the cancel (or had just finished)
        entry = self.find(job_id)
        if entry is None:
            raise PromptbankError(f"No job '{job_id}' is queued or running.",
                                  hint="List them with the 'jobs' op.")
        state = entry.state
        self.jobs.remove(entry)
        if entry.job is None:
            self._tell(entry, JobOutcome(status="cancelled", started=False, task=entry.task,
                                         interrupted=reason))
            return state
        try:
            outcome = entry.job.cancel(reason)
        except Exception as exc:
            self._fail_job(entry, exc)
            return state
        self._tell(entry, replace(outcome, status="cancelled", started=True, task=entry.task,
                                  interrupted=reason))
        return state

    def _inside_job(self, call: Callable[[Callable[[], None]], Any]) -> Any:
        """Run a slice of a job, answering quick requests wherever it calls back."""
        self.in_job = True
        try:
            return call(self.serve_pending)
        finally:
            self.in_job = False

    def advance(self) -> None:
        """Start the job at the head, or run one of its steps (finishing it after the last)."""
        entry = self.jobs[0]
        try:
            if entry.job is None:
                entry.job = self._inside_job(entry.start)
                self._tell(entry, Started(task=entry.task, **entry.job.describe()))
                return  # requests that came in while it started go first
            if not entry.job.done:
                started, served = time.perf_counter(), self.served_s
                events = self._inside_job(entry.job.step)
                # The step's own time: requests answered inside it do not count.
                busy = time.perf_counter() - started - (self.served_s - served)
                step_ms = round(busy * 1000, 2)
                for info in events:
                    # Steps and evaluations say which job and how long the step took; a joint
                    # job's other events (a task saved or failed) go as they are.
                    stamped = (replace(info, job=entry.id, step_ms=step_ms)
                               if isinstance(info, StepProgress | EvalProgress) else info)
                    self._tell(entry, stamped)
            if entry.job.done:
                outcome = self._inside_job(entry.job.finish)
                self.jobs.popleft()
                self._tell(entry, replace(outcome, status="done", task=entry.task))
        except Exception as exc:
            if self.jobs and self.jobs[0] is entry:
                self.jobs.popleft()
            if entry.job is not None:
                try:
                    entry.job.fail(one_line(exc))
                except Exception:
                    log.error("could not record the failure of job %s:\n%s", entry.id,
                              traceback.format_exc())
            self._fail_job(entry, exc)

    def stop(self, reason: str) -> None:
        """Checkpoint the running job, drop the queued ones, and end the loop."""
        for entry in list(self.jobs):
            if entry.job is not None:
                self.cancel(entry.id, reason)
            else:
                self.jobs.remove(entry)
                for rid in entry.listeners:
                    self.send(error(rid, f"The job did not start: {reason}."))
        self.long_cancelled = True
        self.running = False

    def listing(self) -> list[dict[str, Any]]:
        """Every running and queued job, in order."""
        listing = [e.describe() for e in self.jobs]
        return [self.long_op, *listing] if self.long_op is not None else listing

    # --- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until ``stop``: requests first, else one step of the head job."""
        while self.running:
            item = self._next(block=not self.jobs)
            if item is not None:
                self.dispatch(item)
            elif self.jobs:
                self.advance()
