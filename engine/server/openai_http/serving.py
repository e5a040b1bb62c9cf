"""The OpenAI endpoints' handler: each HTTP request becomes an engine request on the worker's
scheduler, beside the desktop's requests and training steps, on the one loaded model.

Generations that wait together are sent as one mixed-task ``generate`` (one decode step
serves every task in it), and generations that arrive while it decodes join it between two
steps (continuous batching), so a request waits for one prefill, not for others to end. A
classify task is answered by ``score``, its label with the label probabilities. Events of
these requests go back to their HTTP requests, never to stdout.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.api.generation import Generated, GeneratedText, RowDone, Scored
from engine.api.wire import Event, Request
from engine.server.context import Feed
from engine.server.openai_http.protocol import Answer, ApiError, CompletionRequest

if TYPE_CHECKING:
    from engine.server.context import Context

log = logging.getLogger("promptbank.http")
#: How long the first waiting generation waits for others to share its decode steps.
BATCH_WINDOW_S = 0.005
MAX_BATCH = 32
#: Requests waiting for the engine beyond which new ones are refused (429).
MAX_WAITING = 256
#: The model id that runs the base model without a task.
BASE_MODEL = "base"


@dataclass
class Target:
    """What a model id names: a task (and version) or the base model."""

    task: str | None
    version: int | None = None
    kind: str = "generate"


@dataclass
class Pending:
    """A request waiting for the engine; its outputs arrive on ``out``: ("token", text),
    then ("answer", Answer) or ("error", ApiError)."""

    request: CompletionRequest
    target: Target
    out: queue.Queue = field(default_factory=queue.Queue)
    settled: bool = False
    gone: bool = False  # the client went away: its row stops at the next token

    def settle(self, kind: str, value: Answer | ApiError) -> None:
        """Give the request its end: ("answer", Answer) or ("error", ApiError)."""
        self.settled = True
        self.out.put((kind, value))

    def answer(self) -> Answer:
        """Wait for the whole answer (tokens are dropped); raise the engine's refusal."""
        while True:
            kind, value = self.out.get()
            if kind == "answer":
                return value
            if kind == "error":
                raise value


class Bridge:
    """Feeds OpenAI requests to an engine process's scheduler and their events back."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._ids = itertools.count(1)
        self._waiting: queue.Queue[Pending] = queue.Queue(MAX_WAITING)
        # Classify requests met while feeding a running generate: served next, in order.
        self._held: deque[Pending] = deque()
        threading.Thread(target=self._dispatch, name="http-batches", daemon=True).start()

    # ---- what is served ---------------------------------------------------------------
    def _tasks(self, only: str | None = None) -> list:
        """(task, its versions) of every task, or of the task called ``only``."""
        from engine.library import Library

        library = Library(self.ctx.args.library, read_only=True)
        try:
            return [(task, library.list_versions(task.name)) for task in library.list_tasks()
                    if only is None or task.name == only]
        finally:
            library.close()

    def model_ids(self) -> list[str]:
        """Every task with a trained version (served: the active one, else the latest),
        each of its versions as TASK@N, and the base model."""
        ids = []
        for task, versions in self._tasks():
            if versions:
                ids += [task.name, *(f"{task.name}@{v.number}" for v in versions)]
        return [*ids, BASE_MODEL]

    def resolve(self, model: str) -> Target:
        """The target of a model id, or 404 in OpenAI's shape."""
        if model == BASE_MODEL:
            return Target(None)
        name, _, number = model.rpartition("@") if "@" in model else (model, "", "")
        for task, versions in self._tasks(only=name):
            if number and not (number.isdigit() and int(number) in {v.number for v in versions}):
                break
            if not versions:
                raise ApiError(404, f"The task '{name}' has no trained version to serve yet.",
                               code="model_not_found", param="model")
            return Target(name, int(number) if number else None, task.kind)
        raise ApiError(404, f"The model '{model}' does not exist; GET /v1/models lists them.",
                       code="model_not_found", param="model")

    # ---- requests ----------------------------------------------------------------------
    def submit(self, request: CompletionRequest) -> Pending:
        """Queue a request for the engine (429 when too many are waiting)."""
        pending = Pending(request, self.resolve(request.model))
        try:
            self._waiting.put_nowait(pending)
        except queue.Full:
            raise ApiError(429, f"{MAX_WAITING} requests are already waiting; try again "
                           "shortly.", kind="rate_limit_error", code="overloaded") from None
        return pending

    def _dispatch(self) -> None:
        while True:
            batch = [self._held.popleft() if self._held else self._waiting.get()]
            deadline = time.monotonic() + BATCH_WINDOW_S
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._waiting.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            for pending in [p for p in batch if p.target.kind == "classify"]:
                self._guarded([pending], self._classify)
            generations = [p for p in batch if p.target.kind != "classify" and not p.gone]
            if generations:
                self._guarded(generations, self._generate)

    def _guarded(self, batch: list[Pending], run) -> None:
        """Run a batch; a refusal of a shared batch is retried row by row, so only the row
        at fault gets it. Rows already answered keep their answer."""
        try:
            run(batch)
        except ApiError as exc:
            open_rows = [p for p in batch if not p.settled]
            if len(batch) > 1:
                for pending in open_rows:
                    self._guarded([pending], run)
            elif open_rows:
                open_rows[0].settle("error", exc)
        except Exception as exc:  # a defect of ours: this request fails, the server lives
            log.exception("serving a request failed")
            for pending in [p for p in batch if not p.settled]:
                pending.settle("error", ApiError(500, f"The engine failed: {exc}",
                                                 kind="server_error"))

    def _engine(self, op: str, args: dict, feed: Feed | None = None) -> Iterator[Event]:
        """Send one request to the worker's scheduler and yield its events to the last."""
        rid = f"http-{next(self._ids)}"
        events: queue.Queue[Event] = queue.Queue()
        self.ctx.taps[rid] = events.put
        if feed is not None:
            self.ctx.feeds[rid] = feed
        try:
            self.ctx.scheduler.put(Request(rid, op, args))
            while True:
                event = events.get()
                if event.type == "error":
                    raise _refusal(event.data.get("message", "The engine refused it."))
                yield event
                if event.type == "result":
                    return
        finally:
            self.ctx.taps.pop(rid, None)
            self.ctx.feeds.pop(rid, None)

    def _joining(self, batch: list[Pending], free: int) -> list[dict]:
        """Waiting generations that join ``batch`` while it decodes (on the engine's thread):
        each is appended to ``batch``, so its row number is its place there. A classify
        request stops the feed, to be served as soon as the running batch ends."""
        rows = []
        while len(rows) < free and not self._held:
            try:
                pending = self._waiting.get_nowait()
            except queue.Empty:
                break
            if pending.gone:
                continue
            if pending.target.kind == "classify":
                self._held.append(pending)
                break
            batch.append(pending)
            rows.append(_row(pending))
        return rows

    def _generate(self, batch: list[Pending]) -> None:
        feed = Feed(lambda free: self._joining(batch, free), MAX_BATCH,
                    lambda row: batch[row].gone)
        for event in self._engine("generate", {"rows": [_row(p) for p in batch],
                                               "stream": True}, feed):
            if event.type == "token":
                batch[int(event.data.get("row", 0))].out.put(("token", event.data["text"]))
            elif event.type == "row_done":
                done = RowDone.from_data(event.data)
                pending = batch[done.row]
                if done.result is None:
                    pending.settle("error", _refusal(done.error))
                else:
                    pending.settle("answer", _answer(done.result))
            elif event.type == "result":
                for p, found in zip(batch, Generated.from_data(event.data).results, strict=True):
                    if not p.settled:
                        p.settle("answer", _answer(found))

    def _classify(self, batch: list[Pending]) -> None:
        (pending,) = batch
        if pending.request.system or pending.request.shots:
            raise ApiError(400, f"The classify task '{pending.target.task}' takes one user "
                           "message, without a system message or earlier turns.",
                           param="messages")
        args = {"task": pending.target.task, "texts": [pending.request.text],
                "version": pending.target.version}
        for event in self._engine("score", {k: v for k, v in args.items() if v is not None}):
            if event.type == "result":
                found = Scored.from_data(event.data).results[0]
                pending.out.put(("token", found.label))
                pending.settle("answer", Answer(found.label, "stop", probs=found.probs))


def _row(pending: Pending) -> dict:
    """The ``generate`` row object of a request."""
    s = pending.request.sampling
    row = {"text": pending.request.text, "max_new_tokens": s.max_tokens,
           "temperature": s.temperature, "top_p": s.top_p, "stop": s.stop, "seed": s.seed,
           "system": pending.request.system,
           "shots": [list(pair) for pair in pending.request.shots]}
    if pending.target.task is not None:
        row["task"] = pending.target.task
        row["version"] = pending.target.version
    return {k: v for k, v in row.items() if v not in (None, [])}


def _answer(found: GeneratedText) -> Answer:
    return Answer(found.text, found.finish_reason, found.prompt_tokens, len(found.tokens))


def _refusal(message: str) -> ApiError:
    """An engine error as an HTTP error: too long is 413, anything else the caller's 400."""
    if "longer than the" in message or "context" in message:
        return ApiError(413, message, code="input_too_long")
    return ApiError(400, message)

