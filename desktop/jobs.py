"""JobTracker: sends training requests to the engine and keeps each job's live state.

Shared by the pages, the wizard and the status bar; kept per job so that one curve (or, for
joint training, one per task) can be drawn from ``JobState.curves()``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.run_metrics import MetricSeries, Points, metric_series
from desktop.session import Session
from engine.api.payload import Payload
from engine.api.session import DevicesListing, JobsListing
from engine.api.training import (
    EvalProgress,
    JobOutcome,
    PrepareProgress,
    Queued,
    Started,
    StepProgress,
)
from engine.errors import PromptbankError
from engine.library.pending import PendingJob, PendingJobs

ACTIVE = ("queued", "running")
#: The engine's job ops, and the kind of job each is to the desktop.
JOB_KINDS = {"train": "train", "continue": "continue", "resume": "resume",
             "train_joint": "joint", "universal": "universal"}
#: How often the engine's devices (memory, jobs) are listed again, and a remote engine's jobs:
#: other desktops on its host may have started some since.
POLL_MS = 10_000
#: Statuses after which a run can be resumed from its checkpoint.
RESUMABLE = ("cancelled", "interrupted")


@dataclass
class JobState:
    """What the desktop knows about one training job."""

    task: str
    kind: str = "train"
    # The worker op and arguments that started it: what comes back queued after a restart.
    op: str = ""
    args: dict = field(default_factory=dict)
    status: str = "queued"  # queued | running | done | cancelled | interrupted | failed
    cancelling: bool = False  # a cancel was asked for and the engine has not ended it yet
    queue_position: int = 0  # jobs ahead of it when the engine queued it
    run_id: int | None = None
    step: int = 0
    total: int = 0
    # Rows tokenised of all the training rows, while the engine prepares them (before step 0).
    prepared: int = 0
    prepare_eta_s: float | None = None  # the engine's estimate of the rows left
    rows: int = 0
    loss: float | None = None
    tokens_per_s: float | None = None
    losses: Points = field(default_factory=list)
    evals: Points = field(default_factory=list)
    # The learning rate of each step (one schedule: a joint job's tasks share it).
    lrs: Points = field(default_factory=list)
    metric_name: str = ""
    eval_n: int = 0
    version: int | None = None
    gpu: str | None = None  # on a remote engine's host with several GPUs: the one it runs on
    outcome: JobOutcome | None = None
    message: str = ""
    request_id: str = ""
    # A job this session follows with 'watch' (started by another client, or before the
    # connection dropped): the id the engine's listing knows it by.
    watching: str = ""
    # Wall-clock time and step when the engine started (or resumed) it, and when it ended:
    # the ETA is measured from them, so it counts evaluations and everything else a step
    # really costs on this machine.
    started_at: float | None = None
    # What the settings said it would take before it started (the library's measured pace
    # times its steps), shown beside the time it took.
    estimate_s: float | None = None
    start_step: int = 0
    ended_at: float | None = None
    # A joint job's tasks and each task's loss and eval points (a curve per task); empty for
    # a job of one task, whose points are ``losses`` and ``evals``.
    tasks: list[str] = field(default_factory=list)
    task_losses: dict[str, Points] = field(default_factory=dict)
    task_evals: dict[str, Points] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Progress in [0, 1] (1 once done)."""
        if self.status == "done":
            return 1.0
        return min(1.0, self.step / self.total) if self.total else 0.0

    @property
    def preparing(self) -> bool:
        """True while the engine tokenises the job's rows, before its first step."""
        return self.active and self.started_at is None and self.rows > 0

    @property
    def active(self) -> bool:
        """True while the job is queued or running."""
        return self.status in ACTIVE

    @property
    def elapsed_s(self) -> float | None:
        """Seconds since it started (until it ended), or None before it started."""
        if self.started_at is None:
            return None
        return (self.ended_at or time.monotonic()) - self.started_at

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the measured pace of this run's steps so far, or None."""
        done = self.step - self.start_step
        elapsed = self.elapsed_s
        if not self.active or elapsed is None or done <= 0 or not self.total:
            return None
        return elapsed / done * max(0, self.total - self.step)

    @property
    def listed_as(self) -> str:
        """The id the engine's ``jobs`` listing names this job by."""
        return self.watching or self.request_id

    def curves(self) -> tuple[dict[str, Points], dict[str, Points]]:
        """Loss and eval points per curve name: each task's in a joint job, else the job's."""
        if self.tasks:
            return self.task_losses, self.task_evals
        return {self.task: self.losses}, {self.task: self.evals}

    def loss_points(self, task: str) -> Points:
        """Where a loss of ``task`` goes: its own curve in a joint job, else the job's."""
        return self.task_losses.setdefault(task, []) if self.tasks else self.losses

    def eval_points(self, task: str) -> Points:
        """Where an evaluation of ``task`` goes: its own curve in a joint job, else the job's."""
        return self.task_evals.setdefault(task, []) if self.tasks else self.evals


def estimate_s(config: dict, seconds_per_step: float | None) -> float | None:
    """How long ``config``'s steps take at ``seconds_per_step`` (None without a pace)."""
    steps = config.get("steps")
    if not seconds_per_step or not isinstance(steps, int):
        return None
    return seconds_per_step * steps


class JobTracker(QObject):
    """All training jobs of this session; the pages and the status bar listen to it."""

    sig_job_changed = Signal(object)
    """A job's state changed (a ``JobState``); emitted at most once per engine event."""
    sig_job_finished = Signal(object)
    """A job ended (done, cancelled, interrupted or failed); the ``JobState`` says which."""
    sig_devices = Signal(object)
    """The engine's devices were listed again (a ``DevicesListing``)."""

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.jobs: list[JobState] = []
        # Set at quit: the jobs then stopping are still pending for the next start.
        self.frozen = False
        self._restored = False
        self._written: list[PendingJob] | None = None
        self.devices = DevicesListing()
        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self._list)
        session.engine.sig_crashed.connect(self._on_crash)
        session.engine.sig_state.connect(self._on_engine_state)
        self.sig_job_changed.connect(lambda _job: self._persist())

    def pending(self) -> list[PendingJob]:
        """The active jobs as they would come back after a restart: one that started goes on
        from its run's checkpoint, a queued one is sent again with its settings."""
        return [PendingJob("resume", j.task, {"run_id": j.run_id})
                if j.run_id is not None and j.started_at is not None
                else PendingJob(j.op, j.task, j.args)
                for j in self.jobs if j.active and not j.watching]

    def freeze(self) -> list[PendingJob]:
        """Keep the pending list as it is now (the app is quitting) and return it."""
        self._persist()
        self.frozen = True
        return self.pending()

    def _persist(self) -> None:
        pending = self.pending()
        # Most changes are progress: the file is written only when the list itself changes.
        if self.frozen or not self._restored or pending == self._written:
            return
        self._written = pending
        try:
            PendingJobs(self.session.library.root).write(pending)
        except PromptbankError as exc:  # a full disk must not stop the job itself
            self.session.sig_notice.emit(f"The job queue could not be saved: {exc}")

    def _on_engine_state(self, state: str, _detail: str) -> None:
        if state == "ready":
            # A remote engine's runs go on while the connection is down: follow them again.
            self._list()
            if not self._poll.isActive():
                self._poll.start()
        else:
            self._poll.stop()
        if state == "ready" and not self._restored:
            self._restored = True
            self.restore_pending()

    def _list(self) -> None:
        self.session.op("devices").on_success(self._on_devices).run()
        if self.session.engine_address:
            self.session.op("jobs").on_success(self.follow_running).run()

    def _on_devices(self, listing: DevicesListing) -> None:
        self.devices = listing
        self.sig_devices.emit(listing)

    def follow_running(self, listing: JobsListing) -> list[JobState]:
        """Follow the engine's queued and running jobs this session does not hear from (a
        remote engine reached again after a dropped connection, or another desktop's jobs on
        its host); the jobs now followed."""
        followed = []
        for line in listing.jobs:
            if line.op not in JOB_KINDS or any(
                    j.active and j.listed_as == line.job for j in self.jobs):
                continue
            job = next((j for j in self.jobs if line.run_id is not None
                        and j.run_id == line.run_id), None)
            if job is None:
                job = JobState(task=line.task, kind=JOB_KINDS[line.op], run_id=line.run_id,
                               tasks=list(line.tasks) if len(line.tasks) > 1 else [])
                self.jobs.append(job)
            job.status, job.message, job.ended_at = line.state, "", None
            job.watching = line.job
            self._follow(job, "watch", {"job": line.job})
            followed.append(job)
        self._place(listing)
        self._settle_ended(listing)
        return followed

    def _settle_ended(self, listing: JobsListing) -> None:
        """Jobs cut off by a dropped connection whose runs ended on the host meanwhile: their
        end, as the library (brought up to date on connecting) records it."""
        listed = {run for line in listing.jobs for run in (line.run_id, *line.run_ids)}
        for job in self.jobs:
            if job.status != "interrupted" or job.run_id is None or job.run_id in listed:
                continue
            try:
                run = self.session.library.get_run(job.run_id)
                version = (self.session.library.version_by_id(run.version_id)
                           if run.version_id is not None else None)
            except PromptbankError:
                continue
            if run.status == "done":
                job.status, job.message = "done", ""
                job.version = version.number if version is not None else None
                job.step = job.total or job.step
                self._end(job)

    def _place(self, listing: JobsListing) -> None:
        """Note the GPU each listed job runs on (a remote host with several)."""
        for line in listing.jobs:
            for job in self.jobs:
                if job.active and job.listed_as == line.job and job.gpu != line.gpu:
                    job.gpu = line.gpu
                    self.sig_job_changed.emit(job)

    def restore_pending(self) -> int:
        """Queue again the jobs the last session left pending; how many there were."""
        store = PendingJobs(self.session.library.root)
        jobs = store.read()
        for pending in jobs:
            kind = JOB_KINDS.get(pending.op, pending.op)
            job = JobState(task=pending.task, kind=kind,
                           tasks=list(pending.args.get("tasks", [])),
                           run_id=pending.args.get("run_id"))
            self._send(job, pending.op, pending.args)
        if jobs:
            self.session.sig_notice.emit(
                f"{len(jobs)} training job{'s' if len(jobs) > 1 else ''} from the last "
                "session queued again (see the Training tab).")
        self._persist()
        return len(jobs)

    def running(self) -> JobState | None:
        """The job the engine is advancing now, if any."""
        return next((j for j in self.jobs if j.status == "running"), None)

    def start(self, task: str, config: dict, *, continue_data: str | None = None,
              seconds_per_step: float | None = None) -> JobState:
        """Queue a training job (or continual training on ``continue_data``) for ``task``;
        ``seconds_per_step`` is the pace its estimate was made with."""
        job = JobState(task=task, kind="continue" if continue_data else "train",
                       estimate_s=estimate_s(config, seconds_per_step))
        args: dict = {"task": task, "config": config}
        if continue_data:
            args["data"] = continue_data
        self._send(job, job.kind, args)
        return job

    def start_joint(self, tasks: list[str], config: dict) -> JobState:
        """Queue one joint job training ``tasks`` together (each its own prompt and version)."""
        job = JobState(task=" + ".join(tasks), kind="joint", tasks=list(tasks))
        self._send(job, "train_joint", {"tasks": list(tasks), "config": config})
        return job

    def resume(self, run_id: int, task: str) -> JobState:
        """Resume an interrupted or cancelled run from its last checkpoint."""
        job = JobState(task=task, kind="resume", run_id=run_id)
        self._send(job, "resume", {"run_id": run_id})
        return job

    def cancel(self, job: JobState) -> None:
        """Ask the engine to stop ``job`` (it checkpoints and can be resumed); the job says
        "cancelling" at once, since a step may take seconds to end."""
        if job.active and job.request_id and not job.cancelling:
            job.cancelling = True
            self.session.op("cancel", {"job": job.request_id}).on_failure(
                lambda msg: self._fail(job, msg)).run()
            self.sig_job_changed.emit(job)

    def _send(self, job: JobState, op: str, args: dict) -> None:
        job.op, job.args = op, dict(args)
        self.jobs.append(job)
        self._follow(job, op, args)

    def _follow(self, job: JobState, op: str, args: dict) -> None:
        """Send ``op`` and let its events drive ``job``."""
        operation = (self.session.op(op, args)
                     .on_progress(lambda p: self._progress(job, p))
                     .on_success(lambda outcome: self._done(job, outcome))
                     .on_failure(lambda m: self._fail(job, m))
                     .run())
        job.request_id = operation.id
        if job.status == "queued":
            self.sig_job_changed.emit(job)

    def _progress(self, job: JobState, progress: Payload) -> None:
        if isinstance(progress, Queued):
            job.status = "queued"
            job.queue_position = progress.position
        elif isinstance(progress, PrepareProgress):
            # Rows, not steps: kept apart so the step total stays the one Started gives.
            job.prepared, job.rows = progress.done, progress.total
            job.prepare_eta_s = progress.eta_s
        elif isinstance(progress, Started):
            self._started(job, progress)
        elif isinstance(progress, StepProgress):
            job.status = "running"
            job.step = progress.step
            if job.tasks:  # a joint job's tasks may ask for different steps: it runs to the most
                job.total = max(job.total, progress.total)
            else:
                job.total = progress.total or job.total
            if progress.loss is not None:
                job.loss = progress.loss
                job.loss_points(progress.task).append((job.step, job.loss))
            if not job.lrs or job.lrs[-1][0] < job.step:
                job.lrs.append((job.step, progress.lr))
            job.tokens_per_s = progress.tokens_per_s
        elif isinstance(progress, EvalProgress):
            if progress.metric is not None:
                job.eval_points(progress.task).append((progress.step, progress.metric))
            job.metric_name = progress.metric_name or job.metric_name or "eval_loss"
            job.eval_n = progress.n
        self.sig_job_changed.emit(job)

    def _started(self, job: JobState, started: Started) -> None:
        if self.session.engine_address:  # which of the host's GPUs took it
            self.session.op("jobs").on_success(self._place).run()
        job.status = "running"
        job.run_id = started.run_id if started.run_id is not None else job.run_id
        job.step = job.start_step = started.step
        job.total = started.total
        job.started_at = time.monotonic()
        if len(started.tasks) > 1:  # a joint job (also one resumed from any of its runs)
            job.tasks = list(started.tasks)
        if started.step == 0:
            return
        if job.tasks:
            for task, run_id in zip(started.tasks, started.run_ids, strict=True):
                history = self._history(run_id, job.step)
                job.task_losses[task], job.task_evals[task] = history.losses, history.evals
                job.lrs = job.lrs or history.lrs
        elif job.run_id is not None:
            history = self._history(job.run_id, job.step)
            job.losses, job.evals, job.lrs = history.losses, history.evals, history.lrs

    def _history(self, run_id: int, step: int) -> MetricSeries:
        """A resumed run's curves start with the points it logged up to ``step``, before it
        stopped."""
        try:
            metrics = self.session.library.run_metrics(run_id)
        except PromptbankError:
            return MetricSeries()
        return metric_series([m for m in metrics if m.get("step", 0) <= step])

    def _done(self, job: JobState, outcome: JobOutcome) -> None:
        job.outcome = outcome
        job.run_id = outcome.run_id if outcome.run_id is not None else job.run_id
        job.version = outcome.version
        job.metric_name = outcome.metric_name or job.metric_name
        if outcome.status == "done":
            job.status = "done"
            job.step = outcome.steps or job.step
            job.total = job.total or outcome.total or job.step
        elif outcome.interrupted:
            job.status = "interrupted"
            job.step = outcome.step or job.step
            job.message = (f"Interrupted: {outcome.interrupted}. It can be resumed from its "
                           f"last checkpoint (step {job.step}).")
        else:
            job.status = "cancelled"
            job.step = outcome.step or job.step
        self._end(job)

    def _fail(self, job: JobState, message: str) -> None:
        if not job.active:
            return
        job.status = "failed"
        job.message = message
        self._end(job)

    def _end(self, job: JobState) -> None:
        job.ended_at = time.monotonic()
        self.sig_job_changed.emit(job)
        self.sig_job_finished.emit(job)
        self.session.notify_library_changed()

    def _on_crash(self, reason: str) -> None:
        if self.session.engine_address:
            reason = (f"{reason}. On the engine's host the run goes on; restarting the engine "
                      "connects again and follows it")
        for job in self.jobs:
            if job.active:
                # The run keeps its last checkpoint: that is an interruption, not a failure.
                job.status = "interrupted" if job.run_id is not None else "failed"
                job.message = (f"Interrupted: {reason}. It can be resumed from its last "
                               "checkpoint." if job.run_id is not None
                               else f"The job did not start: {reason}.")
                self._end(job)
