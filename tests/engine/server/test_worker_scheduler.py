"""The scheduler in-process with counting jobs: requests first, FIFO jobs, cancel, failures."""

from __future__ import annotations

from typing import Any

from engine.api.training import JobOutcome, StepProgress
from engine.api.wire import Event, Request
from engine.errors import PromptbankError
from engine.server.scheduler import END_OF_INPUT, JobEntry, Malformed, Scheduler


def result(rid: str, **fields: Any) -> Event:
    """A result event with these fields (what the fake handler answers)."""
    return Event(rid, "result", fields)


class CountingJob:
    """A job of ``total`` steps that records what the scheduler did to it."""

    def __init__(self, name: str, total: int, trace: list[str], *,
                 on_step: Any = None, mid_step: Any = None, fail_at: int | None = None) -> None:
        self.name, self.total, self.trace = name, total, trace
        self.index = 0
        self.on_step = on_step
        self.mid_step = mid_step
        self.fail_at = fail_at
        self.failed: str | None = None

    @property
    def done(self) -> bool:
        return self.index >= self.total

    def step(self, between: Any) -> list[StepProgress]:
        if self.index == self.fail_at:
            raise RuntimeError(f"boom at step {self.index}\nsecond line")
        if self.mid_step:
            self.mid_step(self.index + 1, between)
        self.index += 1
        self.trace.append(f"{self.name}:{self.index}")
        if self.on_step:
            self.on_step(self.index)
        return [StepProgress(step=self.index, total=self.total)]

    def cancel(self, reason: str = "") -> JobOutcome:
        self.trace.append(f"{self.name}:cancelled@{self.index}")
        return JobOutcome(step=self.index)

    def finish(self, between: Any) -> JobOutcome:
        if self.mid_step:
            self.mid_step("finish", between)
        self.trace.append(f"{self.name}:finished")
        return JobOutcome(steps=self.index)

    def fail(self, message: str) -> None:
        self.failed = message

    def describe(self) -> dict:
        return {"step": self.index, "total": self.total}


class Harness:
    """A scheduler whose handler answers ping/cancel/shutdown and logs every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.trace: list[str] = []
        self.sched = Scheduler(self.events.append, self.handle,
                               quick=lambda op: op != "slow")

    def handle(self, req: Request) -> None:
        self.trace.append(f"req:{req.op}:{req.id}")
        if req.op == "ping":
            self.events.append(result(req.id, pong=True))
        elif req.op == "cancel":
            self.events.append(result(req.id, was=self.sched.cancel(req.args["job"])))
        elif req.op == "watch":
            self.sched.watch(req.args["job"], req.id)
        elif req.op == "shutdown":
            self.sched.stop("shut down")
            self.events.append(result(req.id, bye=True))
        elif req.op == "oops":
            raise PromptbankError("That task does not exist.", hint="Create it first.")
        elif req.op == "crash":
            raise ValueError("internal\ntrace detail")
        elif req.op == "oom":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
        else:
            self.events.append(result(req.id, op=req.op))

    def job(self, name: str, total: int, **kw: Any) -> CountingJob:
        job = CountingJob(name, total, self.trace, **kw)
        self.sched.submit(JobEntry(name, "train", "t", lambda between: job))
        return job

    def of(self, rid: str) -> list[Event]:
        return [e for e in self.events if e.id == rid]


def test_requests_are_served_between_steps_and_jobs_run_in_order():
    h = Harness()
    h.job("a", 3, on_step=lambda i: i == 1 and h.sched.put(Request("p1", "ping")))
    h.job("b", 2)
    h.sched.put(Request("p0", "ping"))

    def last_step(i: int) -> None:
        h.sched.put(Request("bye", "shutdown"))

    h.job("c", 1, on_step=last_step)
    h.sched.run()
    assert h.trace == ["req:ping:p0", "a:1", "req:ping:p1", "a:2", "a:3", "a:finished",
                       "b:1", "b:2", "b:finished", "c:1", "c:finished", "req:shutdown:bye"]
    assert [e.type for e in h.of("a")] == ["progress", "progress", "progress", "progress",
                                           "progress", "result"]
    assert h.of("a")[0].data["kind"] == "queued" and h.of("b")[0].data["position"] == 1
    assert h.of("a")[1].data["kind"] == "started"
    final = h.of("a")[-1].data
    assert final["status"] == "done" and final["steps"] == 3 and final["task"] == "t"
    steps = [e.data for e in h.of("a") if e.data.get("kind") == "step"]
    assert [s["step"] for s in steps] == [1, 2, 3] and all("step_ms" in s for s in steps)


def test_cancel_running_and_queued_jobs():
    h = Harness()

    def on_step(i: int) -> None:
        if i == 2:
            h.sched.put(Request("c1", "cancel", {"job": "a"}))
            h.sched.put(Request("c2", "cancel", {"job": "b"}))
            h.sched.put(Request("c3", "cancel", {"job": "zzz"}))
            h.sched.put(Request("bye", "shutdown"))

    a = h.job("a", 10, on_step=on_step)
    h.job("b", 3)
    h.sched.run()
    assert a.index == 2 and "a:cancelled@2" in h.trace
    assert not any(t.startswith("b:") for t in h.trace)
    assert h.of("a")[-1].data.items() >= {"status": "cancelled", "started": True, "task": "t",
                                          "step": 2}.items()
    assert h.of("b")[-1].data.items() >= {"status": "cancelled", "started": False,
                                          "task": "t"}.items()
    assert h.of("c1")[-1].data == {"was": "running"} and h.of("c2")[-1].data == {"was": "queued"}
    assert h.of("c3")[-1].type == "error" and "No job 'zzz'" in h.of("c3")[-1].message
    assert h.sched.listing() == []


def test_a_watcher_hears_the_job_beside_its_requester_and_can_cancel_it():
    h = Harness()

    def on_step(i: int) -> None:
        if i == 1:
            h.sched.put(Request("w", "watch", {"job": "a"}))
        if i == 3:
            h.sched.put(Request("c", "cancel", {"job": "w"}))  # the watcher's own id
            h.sched.put(Request("bye", "shutdown"))

    h.job("a", 10, on_step=on_step)
    h.sched.run()
    watched = [e.data.get("kind", e.data.get("status")) for e in h.of("w")]
    assert watched == ["started", "step", "step", "cancelled"]
    assert [e.data.get("step") for e in h.of("a") if e.data.get("kind") == "step"] == [1, 2, 3]
    assert h.of("a")[-1].data["status"] == h.of("w")[-1].data["status"] == "cancelled"
    assert h.of("c")[-1].data == {"was": "running"}


def test_a_failing_step_fails_that_job_only():
    h = Harness()
    bad = h.job("a", 5, fail_at=1)
    h.job("b", 1, on_step=lambda i: h.sched.put(END_OF_INPUT))
    h.sched.run()
    assert bad.failed == "RuntimeError: boom at step 1"
    assert h.of("a")[-1].type == "error" and h.of("a")[-1].message == bad.failed
    assert h.of("b")[-1].data["status"] == "done"


def test_failing_requests_become_one_line_errors():
    h = Harness()
    for rid, op in [("e1", "oops"), ("e2", "crash"), ("e3", "oom"), ("ok", "ping")]:
        h.sched.put(Request(rid, op))
    h.sched.put(Malformed("", "not JSON"))
    h.sched.put(Malformed("x9", "'args' must be an object"))
    h.sched.put(END_OF_INPUT)
    h.sched.run()
    assert h.of("e1")[0].message == "That task does not exist. Create it first."
    assert h.of("e2")[0].message == "ValueError: internal"
    assert h.of("e3")[0].message.startswith("Out of memory")
    assert h.of("ok")[0].data == {"pong": True}
    assert h.of("")[0].message == "Malformed request: not JSON."
    assert "'args'" in h.of("x9")[0].message
    assert all(e.final for e in h.events)


def test_end_of_input_checkpoints_the_running_job_and_drops_queued_ones():
    h = Harness()
    h.job("a", 10, on_step=lambda i: i == 3 and h.sched.put(END_OF_INPUT))
    h.job("b", 10)
    h.sched.run()
    assert "a:cancelled@3" in h.trace
    assert h.of("a")[-1].data["status"] == "cancelled"
    assert h.of("b")[-1].type == "error" and "did not start" in h.of("b")[-1].message


def test_a_job_that_cannot_start_reports_an_error():
    h = Harness()

    def start(between) -> CountingJob:
        raise PromptbankError("The task 't' has no data.", hint="Add a dataset.")

    h.sched.submit(JobEntry("a", "train", "t", start))
    h.job("b", 1, on_step=lambda i: h.sched.put(END_OF_INPUT))
    h.sched.run()
    assert h.of("a")[-1].message == "The task 't' has no data. Add a dataset."
    assert h.of("b")[-1].data["status"] == "done"


def test_long_op_serves_quick_requests_and_defers_the_rest():
    h = Harness()
    seen: list[str] = []

    def work(should_stop) -> None:
        h.sched.put(Request("p1", "ping"))
        h.sched.put(Request("s1", "slow"))
        h.sched.put(Request("c1", "cancel", {"job": "L"}))
        assert h.sched.listing()[0]["job"] == "L"
        h.sched.serve_pending()
        seen.append(f"stop={should_stop()}")
        h.events.append(result("L", done=True))

    h.sched.run_long("L", "eval", "t", work)
    assert seen == ["stop=True"]
    assert h.trace == ["req:ping:p1", "req:cancel:c1"]
    h.sched.put(END_OF_INPUT)
    h.sched.run()
    assert h.trace[-1] == "req:slow:s1"
    assert h.of("c1")[0].data == {"was": "running"}


def test_a_step_serves_quick_requests_between_passes_and_defers_the_rest(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("engine.server.scheduler.time.perf_counter", lambda: clock[0])
    h = Harness()
    answer = h.handle

    def slow_answer(req: Request) -> None:
        clock[0] += 5.0  # serving takes "long"; it is not the step's time
        answer(req)

    h.sched.handle = slow_answer

    def mid_step(index: int, between) -> None:
        clock[0] += 0.25  # the step's own first pass
        if index == 2:
            for req in (Request("p1", "ping"), Request("c1", "cancel", {"job": "a"}),
                        Request("s1", "slow"), Request("bye", "shutdown"), Request("p2", "ping")):
                h.sched.put(req)
            h.sched.put(END_OF_INPUT)
            between()
            assert h.sched.listing()[0]["state"] == "running"
        clock[0] += 0.25  # its second pass

    h.job("a", 10, mid_step=mid_step)
    h.sched.run()
    # Pings are answered inside step 2; cancel, the slow op and shutdown wait for its end, so
    # the job is cancelled at a step boundary, and in the order they came.
    assert h.trace == ["a:1", "req:ping:p1", "req:ping:p2", "a:2", "req:cancel:c1",
                       "a:cancelled@2", "req:slow:s1", "req:shutdown:bye"]
    assert h.of("a")[-1].data["status"] == "cancelled" and h.of("a")[-1].data["step"] == 2
    steps = [e.data for e in h.of("a") if e.data.get("kind") == "step"]
    assert [s["step_ms"] for s in steps] == [500.0, 500.0]
    assert h.sched.served_s == 10.0


def test_serve_pending_outside_a_step_or_long_op_leaves_requests_queued():
    h = Harness()
    h.sched.put(Request("p1", "ping"))
    h.sched.serve_pending()
    assert h.trace == [] and h.sched.inbox.qsize() == 1


def test_requests_are_served_while_a_job_starts_and_finishes():
    h = Harness()
    a = CountingJob("a", 5, h.trace)

    def start(between) -> CountingJob:
        h.sched.put(Request("p1", "ping"))
        h.sched.put(Request("c1", "cancel", {"job": "a"}))
        between()  # e.g. the evaluation before continual learning
        h.trace.append("a:started")
        return a

    def finishing(when, between) -> None:
        if when == "finish":
            h.sched.put(Request("p2", "ping"))
            h.sched.put(END_OF_INPUT)
            between()  # e.g. the evaluations after continual learning

    h.sched.submit(JobEntry("a", "train", "t", start))
    h.job("b", 1, mid_step=finishing)
    h.sched.run()
    assert h.trace == ["req:ping:p1", "a:started", "req:cancel:c1", "a:cancelled@0",
                       "b:1", "req:ping:p2", "b:finished"]
    assert h.of("a")[-1].data["status"] == "cancelled"
    assert h.of("b")[-1].data.items() >= {"status": "done", "steps": 1}.items()


def test_a_reader_that_ends_without_a_word_stops_the_worker():
    h = Harness()
    alive = {"reader": True}
    h.sched.input_alive = lambda: alive["reader"]
    h.job("a", 100, on_step=lambda i: i == 2 and alive.update(reader=False))
    h.sched.run()  # returns: the loop noticed its reader is gone
    assert h.sched.exit_code == 1
    assert "a:cancelled@2" in h.trace  # the running job was checkpointed first
    assert h.of("a")[-1].data["status"] == "cancelled"


def test_a_cancel_reaches_a_stoppable_request_while_it_runs():
    h = Harness()
    pieces: list[int] = []

    def generate(req: Request) -> None:
        status = "done"
        with h.sched.stoppable(req.id) as should_stop:
            for i in range(100):
                if i == 3:  # the reader thread queues a cancel while this request runs
                    h.sched.put(Request("c", "cancel", {"job": req.id}))
                if should_stop():
                    status = "cancelled"
                    break
                pieces.append(i)
        h.events.append(result(req.id, status=status))
        h.sched.put(Request("bye", "shutdown"))

    h.sched.handle = lambda req: generate(req) if req.op == "gen" else Harness.handle(h, req)
    h.sched.put(Request("g", "gen"))
    h.sched.run()
    assert pieces == [0, 1, 2]
    assert h.of("g")[-1].data == {"status": "cancelled"}
    assert h.of("c")[-1].data == {"was": "ended"}  # answered afterwards, not an error


def test_a_cancel_that_arrives_before_its_request_starts_stops_it_at_once():
    h = Harness()
    ran: list[bool] = []

    def generate(req: Request) -> None:
        with h.sched.stoppable(req.id) as should_stop:
            ran.append(should_stop())
        h.sched.put(Request("bye", "shutdown"))

    h.sched.handle = lambda req: generate(req) if req.op == "gen" else Harness.handle(h, req)
    h.sched.put(Request("g", "gen"))
    h.sched.put(Request("c", "cancel", {"job": "g"}))  # read before "g" is served
    h.sched.run()
    assert ran == [True]
