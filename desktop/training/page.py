"""TrainingPage: the job queue and past runs, live progress and curves, cancel and resume."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop.session import Session
from desktop.training.curves import Curves
from desktop.training.jobs import JobState, JobTracker
from desktop.training.joint_dialog import JointDialog
from engine.errors import PromptbankError
from engine.library import Run

STATUS_MARK = {"queued": "…", "running": "▶", "done": "✓", "cancelled": "■", "failed": "✗"}
LIVE, RUN = "live", "run"


def format_eta(seconds: float | None) -> str:
    """A short human duration (e.g. '2 min 5 s'), or '—'."""
    if seconds is None or seconds < 0:
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _metric_series(metrics: list[dict]) -> tuple[list, list, str]:
    losses = [(m["step"], float(m["loss"])) for m in metrics
              if isinstance(m.get("loss"), int | float)]
    key = next((k for k in ("metric", "eval_loss") if any(k in m for m in metrics)), "")
    evals = [(m["step"], float(m[key])) for m in metrics
             if key and isinstance(m.get(key), int | float)]
    name = next((str(m["metric_name"]) for m in metrics if m.get("metric_name")), key)
    return losses, evals, name.replace("_", " ")


class TrainingPage(QWidget):
    """Lists this session's jobs and the library's past runs; shows the selected one."""

    sig_open_version = Signal(str)
    """Open the task whose new version the user wants to see (its name)."""

    def __init__(self, session: Session, jobs: JobTracker, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.jobs = jobs
        self.list = QListWidget()
        self.list.setToolTip("Jobs of this session first, then the library's earlier runs.")
        self.title = QLabel("No training yet. Train a task from its page or the New-task "
                            "wizard.")
        self.title.setStyleSheet("font-size: 13pt; font-weight: bold;")
        self.title.setWordWrap(True)
        self.progress = QProgressBar(maximum=1000)
        self.stats = QLabel()
        self.stats.setWordWrap(True)
        self.stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.curves = Curves()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the job; it saves a checkpoint and can be resumed.")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue an interrupted or cancelled run from its last "
                                      "checkpoint.")
        self.open_button = QPushButton("Open new version")
        self.joint_button = QPushButton("Train together…")
        self.joint_button.setToolTip("Train several tasks' prompts in one joint job.")
        buttons = QHBoxLayout()
        for b in (self.cancel_button, self.resume_button, self.open_button, self.joint_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        right = QWidget()
        rlayout = QVBoxLayout(right)
        rlayout.addWidget(self.title)
        rlayout.addWidget(self.progress)
        rlayout.addWidget(self.stats)
        rlayout.addLayout(buttons)
        rlayout.addWidget(self.curves, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.list)
        split.addWidget(right)
        split.setSizes([260, 800])
        QVBoxLayout(self).addWidget(split)
        self.cancel_button.clicked.connect(self._cancel)
        self.resume_button.clicked.connect(self._resume)
        self.open_button.clicked.connect(self._open)
        self.joint_button.clicked.connect(self.open_joint_dialog)
        self.list.currentItemChanged.connect(lambda *_: self._show_selected())
        jobs.sig_job_changed.connect(self._on_job)
        session.sig_library_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the list: live jobs, then runs from the catalogue not shown as jobs."""
        selected = self._selected()
        self.list.blockSignals(True)
        self.list.clear()
        live_runs = set()
        for job in reversed(self.jobs.jobs):
            live_runs.add(job.run_id)
            self._add(LIVE, job, _job_text(job))
        try:
            runs = self.session.library.list_runs()
        except PromptbankError:
            runs = []
        names = {t.id: t.name for t in self.session.library.list_tasks()}
        for run in runs:
            if run.id not in live_runs:
                self._add(RUN, run, f"{STATUS_MARK.get(run.status, '')} "
                          f"{names.get(run.task_id, '?')} · run {run.id} · {run.status}")
        self.list.blockSignals(False)
        self._reselect(selected)
        self._show_selected()

    def _add(self, kind: str, obj, text: str) -> None:
        item = QListWidgetItem(text)
        item.setData(Qt.ItemDataRole.UserRole, (kind, obj))
        self.list.addItem(item)

    def _selected(self):
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def _reselect(self, selected) -> None:
        if self.list.count() == 0:
            return
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == selected:
                self.list.setCurrentRow(row)
                return
        self.list.setCurrentRow(0)

    def select_job(self, job: JobState) -> None:
        """Show ``job`` in the detail pane."""
        for row in range(self.list.count()):
            kind, obj = self.list.item(row).data(Qt.ItemDataRole.UserRole)
            if kind == LIVE and obj is job:
                self.list.setCurrentRow(row)
                return

    def _on_job(self, job: JobState) -> None:
        item = next((self.list.item(r) for r in range(self.list.count())
                     if self.list.item(r).data(Qt.ItemDataRole.UserRole) == (LIVE, job)), None)
        known = item is not None
        if known:
            item.setText(_job_text(job))
        if not known or not job.active:
            self.refresh()
            if not known:
                self.select_job(job)
        selected = self._selected()
        if selected and selected[1] is job:
            self._show_job(job)

    def _show_selected(self) -> None:
        selected = self._selected()
        if selected is None:
            for b in (self.cancel_button, self.resume_button, self.open_button):
                b.setEnabled(False)
            return
        kind, obj = selected
        if kind == LIVE:
            self._show_job(obj)
        else:
            self._show_run(obj)

    def _show_job(self, job: JobState) -> None:
        self.title.setText(f"{job.task} — {job.kind} ({job.status})")
        self.progress.setValue(int(1000 * job.fraction))
        parts = [f"step {job.step} of {job.total or '?'}"]
        if job.loss is not None:
            parts.append(f"loss {job.loss:.4f}")
        if job.tokens_per_s:
            parts.append(f"{job.tokens_per_s:,.0f} data tokens/s")
        if job.active:
            parts.append(f"ETA {format_eta(job.eta_s)}")
        if job.version:
            parts.append(f"saved as v{job.version}")
        text = " · ".join(parts)
        if job.message:
            text += f"<br><span style='color:#b91c1c'>{job.message}</span>"
        described = describe_summary(job.result.get("summary") or {},
                                     str(job.result.get("metric_name") or job.metric_name or ""))
        if described:
            text += "<br>" + described
        if job.tasks:
            saved = [f"{r['task']} v{r['version']}" for r in job.result.get("tasks") or []]
            text += "<br>" + (f"saved {', '.join(saved)}" if saved else
                              f"one joint job: {', '.join(job.tasks)}")
        self.stats.setText(text)
        if job.tasks:
            self.curves.set_series(job.task_losses, job.task_evals, job.metric_name)
        else:
            self.curves.set_data(job.losses, job.evals, job.metric_name)
        self.cancel_button.setEnabled(job.active)
        self.resume_button.setEnabled(job.status in ("cancelled", "failed")
                                      and job.run_id is not None)
        self.open_button.setEnabled(job.version is not None)

    def _show_run(self, run: Run) -> None:
        names = {t.id: t.name for t in self.session.library.list_tasks()}
        self.title.setText(f"{names.get(run.task_id, '?')} — run {run.id} ({run.status})")
        metrics = self.session.library.run_metrics(run.id)
        losses, evals, name = _metric_series(metrics)
        steps = int(run.config.get("steps", 0) or 0)
        last = metrics[-1]["step"] if metrics else 0
        self.progress.setValue(int(1000 * last / steps) if steps else 0)
        summary = describe_summary(run.summary, name)
        self.stats.setText(f"started {run.started.replace('T', ' ')[:16]} · "
                           f"{run.kind} · step {last} of {steps or '?'}"
                           + (f"<br>{summary}" if summary else ""))
        self.curves.set_data(losses, evals, name)
        self.cancel_button.setEnabled(False)
        self.resume_button.setEnabled(run.status in ("cancelled", "running", "failed"))
        self.open_button.setEnabled(run.version_id is not None)

    def open_joint_dialog(self) -> JointDialog:
        """Let the user pick tasks to train together; shows the joint job once queued."""
        dialog = JointDialog(self.session, self.jobs, self)
        dialog.open()
        return dialog

    def _cancel(self) -> None:
        selected = self._selected()
        if selected and selected[0] == LIVE:
            self.jobs.cancel(selected[1])
            self.cancel_button.setEnabled(False)

    def _resume(self) -> None:
        selected = self._selected()
        if not selected:
            return
        kind, obj = selected
        if kind == LIVE and obj.run_id is not None:
            self.jobs.resume(obj.run_id, obj.task)
        elif kind == RUN:
            names = {t.id: t.name for t in self.session.library.list_tasks()}
            self.jobs.resume(obj.id, names.get(obj.task_id, "?"))

    def _open(self) -> None:
        selected = self._selected()
        if not selected:
            return
        kind, obj = selected
        if kind == LIVE:
            self.sig_open_version.emit(obj.task)
        else:
            names = {t.id: t.name for t in self.session.library.list_tasks()}
            self.sig_open_version.emit(names.get(obj.task_id, ""))


def _metric(result: dict | None) -> str:
    value = (result or {}).get("metric")
    return f"{value:.4g}" if isinstance(value, int | float) else "?"


def describe_summary(summary: dict, metric_name: str) -> str:
    """A run's summary in words: best metric, why it stopped, and continual gain/forgetting."""
    name = (metric_name or "metric").replace("_", " ")
    parts = []
    best = summary.get("best") or {}
    if isinstance(best.get("metric"), int | float):
        parts.append(f"best {name} {best['metric']:.4g} at step {best.get('step', '?')}")
    if summary.get("stop_reason"):
        parts.append(f"stopped: {summary['stop_reason']}")
    if isinstance(summary.get("tokens_per_s"), int | float):
        parts.append(f"{summary['tokens_per_s']:,.0f} data tokens/s")
    lines = [" · ".join(parts)] if parts else []
    before, after = summary.get("before") or {}, summary.get("after") or {}
    for data, change, sign in (("new", "gain_new", "gain"), ("old", "forgetting_old",
                                                              "forgetting")):
        if data in before or data in after:
            line = (f"{data} data: {name} {_metric(before.get(data))} → "
                    f"{_metric(after.get(data))}")
            if isinstance(summary.get(change), int | float):
                line += f" ({sign} {summary[change]:+.4g})"
            lines.append(line)
    return "<br>".join(lines)


def _job_text(job: JobState) -> str:
    return f"{STATUS_MARK.get(job.status, '')} {job.task} · {job.kind} · {job.status}"
