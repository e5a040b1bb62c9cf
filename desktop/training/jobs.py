"""JobTracker: sends training requests to the engine and keeps each job's live state."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Signal

from desktop.session import Session

ACTIVE = ("queued", "running")


@dataclass
class JobState:
    """What the desktop knows about one training job."""

    task: str
    kind: str = "train"
    status: str = "queued"  # queued | running | done | cancelled | failed
    run_id: int | None = None
    step: int = 0
    total: int = 0
    loss: float | None = None
    eta_s: float | None = None
    tokens_per_s: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)
    metric_name: str = ""
    version: int | None = None
    result: dict = field(default_factory=dict)
    message: str = ""
    started: float = field(default_factory=time.monotonic)
    request_id: str = ""
    # A joint job's tasks, and each task's loss and eval points (one curve per task).
    tasks: list[str] = field(default_factory=list)
    task_losses: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    task_evals: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Progress in [0, 1]."""
        return self.step / self.total if self.total else 0.0

    @property
    def active(self) -> bool:
        """True while the job is queued or running."""
        return self.status in ACTIVE


class JobTracker(QObject):
    """All training jobs of this session; the monitor and the status bar listen to it."""

    sig_job_changed = Signal(object)
    """A job's state changed (a ``JobState``); emitted at most once per engine event."""
    sig_job_finished = Signal(object)
    """A job ended (done, cancelled or failed); the ``JobState`` says which."""

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.jobs: list[JobState] = []
        session.engine.sig_crashed.connect(self._on_crash)

    def running(self) -> JobState | None:
        """The job the engine is advancing now, if any."""
        return next((j for j in self.jobs if j.status == "running"), None)

    def start(self, task: str, config: dict, *, continue_data: str | None = None) -> JobState:
        """Queue a training job (or continual training on ``continue_data``) for ``task``."""
        job = JobState(task=task, kind="continue" if continue_data else "train")
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
        """Ask the engine to stop ``job`` (it checkpoints and can be resumed)."""
        if job.active and job.request_id:
            self.session.op("cancel", {"job": job.request_id}).on_failure(
                lambda msg: self._fail(job, msg)).run()

    def _send(self, job: JobState, op: str, args: dict) -> None:
        self.jobs.append(job)
        operation = (self.session.op(op, args)
                     .on_progress(lambda d: self._progress(job, d))
                     .on_success(lambda d: self._done(job, d))
                     .on_failure(lambda m: self._fail(job, m))
                     .run())
        job.request_id = operation.id
        if job.status == "queued":
            self.sig_job_changed.emit(job)

    def _progress(self, job: JobState, data: dict) -> None:
        kind = data.get("kind", "step")
        # A joint job is known by its first run; its tasks' own runs come with "saved".
        if data.get("run_id") is not None and (not job.tasks or kind == "started"):
            job.run_id = int(data["run_id"])
        total = int(data.get("total") or job.total)
        job.total = max(job.total, total) if job.tasks else total
        if job.tasks and data.get("task") in job.tasks:
            self._task_point(job, kind, data)
        if kind == "queued":
            job.status = "queued"
        elif kind == "started":
            job.status = "running"
            if len(data.get("tasks") or []) > 1:  # a joint job (also when resumed)
                job.tasks = list(data["tasks"])
            job.step = int(data.get("step") or 0)
        elif kind == "step":
            job.status = "running"
            job.step = int(data.get("step", job.step))
            if data.get("loss") is not None:
                job.loss = float(data["loss"])
                job.losses.append((job.step, job.loss))
            job.eta_s = data.get("eta_s", job.eta_s)
            job.tokens_per_s = data.get("tokens_per_s", job.tokens_per_s)
        elif kind == "eval":
            value = data.get("metric", data.get("eval_loss"))
            if value is not None:
                job.evals.append((int(data.get("step", job.step)), float(value)))
            job.metric_name = str(data.get("metric_name") or job.metric_name or "eval loss")
        self.sig_job_changed.emit(job)

    @staticmethod
    def _task_point(job: JobState, kind: str, data: dict) -> None:
        """A joint job's event of one task: a point of that task's curve."""
        step = int(data.get("step", job.step))
        if kind == "step" and data.get("loss") is not None:
            job.task_losses.setdefault(data["task"], []).append((step, float(data["loss"])))
        elif kind == "eval" and data.get("metric") is not None:
            job.task_evals.setdefault(data["task"], []).append((step, float(data["metric"])))

    def _done(self, job: JobState, data: dict) -> None:
        job.result = data
        job.status = str(data.get("status") or "done")
        version = data.get("version")
        if isinstance(version, dict):
            version = version.get("number")
        job.version = version if isinstance(version, int) else None
        if data.get("run_id") is not None:
            job.run_id = int(data["run_id"])
        if job.status == "done":
            job.step = job.total or job.step
        self._end(job)

    def _fail(self, job: JobState, message: str) -> None:
        if not job.active:
            return
        job.status = "failed"
        job.message = message
        self._end(job)

    def _end(self, job: JobState) -> None:
        self.sig_job_changed.emit(job)
        self.sig_job_finished.emit(job)
        self.session.notify_library_changed()

    def _on_crash(self, reason: str) -> None:
        for job in self.jobs:
            if job.active:
                job.status = "failed"
                job.message = f"Interrupted: {reason}. Resume it from the training monitor."
                self._end(job)
