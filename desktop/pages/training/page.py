"""TrainingPage: the job queue and past runs, live progress and curves, cancel and resume."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
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

from desktop.jobs import RESUMABLE, JobState, JobTracker
from desktop.pages.base import Page
from desktop.pages.training.change import ChangeView
from desktop.pages.training.curves import CurveData, Curves
from desktop.pages.training.joint_dialog import JointDialog
from desktop.run_metrics import metric_series
from desktop.session import Session
from desktop.widgets.formatting import format_duration
from desktop.widgets.tone import PAGE_TITLE, rich
from engine.api.measures import difference_text, label, metric_text, value_text
from engine.api.session import DeviceLine, DevicesListing
from engine.errors import PromptbankError
from engine.library import Run

STATUS_MARK = {"queued": "…", "running": "▶", "done": "✓", "cancelled": "■",
               "interrupted": "■", "failed": "✗"}
LIVE, RUN = "live", "run"


def run_status(run: Run, live: bool = False) -> str:
    """A run's state in words: done, failed, 'cancelled · resumable', 'interrupted · …'."""
    if run.status == "running" and not live:
        return "interrupted · resumable"  # its process is gone; the checkpoint is there
    if run.status == "cancelled":
        interrupted = run.summary.get("interrupted")
        return "interrupted · resumable" if interrupted else "cancelled · resumable"
    return run.status


def run_steps(run: Run) -> int:
    """The steps a run was asked for (0 when its configuration does not say)."""
    return int((run.config.get("train") or {}).get("steps") or 0)


def _change_line(data: str, name: str, before: dict | None, after: dict | None) -> str:
    """'new data: accuracy 80.0 % → 87.0 % (+7.0 points, within the noise …)'."""
    was, now = (before or {}).get("metric"), (after or {}).get("metric")
    line = f"{data} data: {label(name)} {value_text(name, was)} → {value_text(name, now)}"
    if before and after and was is not None and now is not None:
        line += " (" + difference_text(name, was, before.get("n") or 0, now,
                                       after.get("n") or 0) + ")"
    return line


def describe_summary(summary: dict, metric_name: str) -> str:
    """A run's summary in words: best metric (with its eval-set size), why it stopped, how
    long it trained, and continual gain/forgetting."""
    parts = []
    best = summary.get("best") or {}
    if isinstance(best.get("metric"), int | float):
        parts.append(f"best {metric_text(metric_name or 'metric', best['metric'], best.get('n'))}"
                     f" at step {best.get('step', '?')}")
    if summary.get("stop_reason"):
        parts.append(f"stopped: {summary['stop_reason']}")
    if isinstance(summary.get("tokens_per_s"), int | float):
        parts.append(f"{summary['tokens_per_s']:,.0f} data tokens/s")
    if isinstance(summary.get("train_seconds"), int | float):
        parts.append(f"trained for {format_duration(summary['train_seconds'])}")
    lines = [" · ".join(parts)] if parts else []
    lines += [text for text in (summary.get("init_note"), truncation_text(summary))
              if isinstance(text, str) and text]
    before, after = summary.get("before") or {}, summary.get("after") or {}
    for data in ("new", "old"):
        if data in before or data in after:
            result = after.get(data) or before.get(data)
            name = result.get("metric_name") or metric_name or "metric"
            lines.append(_change_line(data, name, before.get(data), after.get(data)))
    return "<br>".join(lines)


def joint_text(job: JobState) -> str:
    """A joint job's tasks in words: which were saved as which version (and how many of their
    rows were cut), which failed."""
    outcome = job.outcome
    if outcome is None or not (outcome.results or outcome.failed):
        return f"one joint job: {', '.join(job.tasks)}"
    parts = []
    if outcome.results:
        parts.append("saved " + ", ".join(f"{r.task} v{r.version}" for r in outcome.results))
    parts += [f"{r.task}: {cut}" for r in outcome.results if (cut := truncation_text(r.summary))]
    parts += [rich("error", f"{task} failed: {message}")
              for task, message in outcome.failed.items()]
    return "<br>".join(parts)


def truncation_text(summary: dict) -> str:
    """How many training rows were cut to the longest row length ("" when none were)."""
    cut = summary.get("truncated_rows")
    if not isinstance(cut, int) or cut <= 0:
        return ""
    rows = summary.get("rows")
    of = f" of {rows:,}" if isinstance(rows, int) else ""
    return (f"{cut:,}{of} training rows were longer than the row limit and lost the start of "
            "their input")


def device_text(line: DeviceLine) -> str:
    """A device's line under the job list: its memory, and what computes on it."""
    gb = 2**30
    where = f"GPU {line.gpu} ({line.name})" if line.gpu is not None else line.name
    memory = (f"{line.used_bytes / gb:.1f} of {line.total_bytes / gb:.1f} GB in use, "
              f"{line.engine_bytes / gb:.1f} GB by this engine")
    jobs = [f"{j.task} ({j.state}{f', step {j.step} of {j.total}' if j.total else ''})"
            if not j.library else f"{j.task} of another library ({j.user}, {j.state})"
            for j in line.jobs]
    return f"{where}: {memory} · {'; '.join(jobs) if jobs else 'no jobs'}"


def job_text(job: JobState) -> str:
    """A job's line in the list."""
    status = f"{job.status} · resumable" if job.status in RESUMABLE else job.status
    if job.preparing:
        status = "preparing rows"
    if job.status == "queued" and job.queue_position:
        status = f"queued, {job.queue_position} ahead"
    if job.active and job.cancelling:
        status = "cancelling…"
    where = f" · GPU {job.gpu}" if job.gpu is not None and job.active else ""
    return f"{STATUS_MARK.get(job.status, '')} {job.task} · {job.kind} · {status}{where}"


class TrainingPage(Page):
    """Lists this session's jobs and the library's past runs; shows the selected one."""

    KEY = "training"
    TITLE = "Training"
    TIP = "Training jobs, progress and curves"

    def __init__(self, session: Session, jobs: JobTracker, parent: QWidget | None = None,
                 settings: QSettings | None = None) -> None:
        super().__init__(session, jobs, parent, settings)
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setToolTip("Jobs of this session first, then the library's earlier runs. "
                             "Select several runs (Ctrl+click or Shift+click) to overlay "
                             "their curves.")
        self.title = QLabel("No training yet. Train a task from its page or the New-task "
                            "wizard.")
        self.title.setStyleSheet(PAGE_TITLE)
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
        self.change = ChangeView()
        rlayout.addWidget(self.change)
        rlayout.addLayout(buttons)
        rlayout.addWidget(self.curves, 1)
        self.devices = QLabel()
        self.devices.setWordWrap(True)
        self.devices.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.devices.setToolTip("The engine's devices: memory in use (on a GPU, by every "
                                "process) and the jobs on each, other libraries' jobs on a "
                                "shared GPU host included. Renewed every 10 seconds.")
        left = QWidget()
        llayout = QVBoxLayout(left)
        llayout.setContentsMargins(0, 0, 0, 0)
        llayout.addWidget(self.list, 1)
        llayout.addWidget(self.devices)
        split = QSplitter(Qt.Orientation.Horizontal, objectName="training")
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([260, 800])
        QVBoxLayout(self).addWidget(split)
        self.cancel_button.clicked.connect(self._cancel)
        self.resume_button.clicked.connect(self._resume)
        self.open_button.clicked.connect(self._open)
        self.joint_button.clicked.connect(self.open_joint_dialog)
        self.list.itemSelectionChanged.connect(self._show_selected)
        jobs.sig_job_changed.connect(self._on_job)
        jobs.sig_devices.connect(self._show_devices)
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
            self._add(LIVE, job, job_text(job))
        try:
            runs = self.session.library.list_runs()
        except PromptbankError:
            runs = []
        names = self._task_names()
        for run in runs:
            if run.id not in live_runs:
                self._add(RUN, run, f"{STATUS_MARK.get(run.status, '')} "
                          f"{names.get(run.task_id, '?')} · run {run.id} · {run_status(run)}")
        self.list.blockSignals(False)
        self._reselect(selected)
        self._show_selected()

    def _show_devices(self, listing: DevicesListing) -> None:
        self.devices.setText("\n".join(device_text(line) for line in listing.devices))

    def _task_names(self) -> dict[int, str]:
        return {t.id: t.name for t in self.session.library.list_tasks()}

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
        if item is not None:
            item.setText(job_text(job))
        else:
            self.refresh()
            self.select_job(job)
        selected = self._selected()
        # An overlay of several runs is drawn from the catalogue once, when chosen.
        if selected and selected[1] is job and len(self.list.selectedItems()) < 2:
            self._show_job(job)

    def _show_selected(self) -> None:
        self.change.hide()  # shown again by a continued run's view
        runs = self._selected_runs()
        if len(runs) > 1:
            self._show_overlay(runs)
            return
        selected = self._selected()
        if selected is None:
            for b in (self.cancel_button, self.resume_button, self.open_button):
                b.setEnabled(False)
            self.curves.set_data(CurveData())
            return
        kind, obj = selected
        if kind == LIVE:
            self._show_job(obj)
        else:
            self._show_run(obj)

    def _show_job(self, job: JobState) -> None:
        state = "cancelling…" if job.active and job.cancelling else job.status
        self.title.setText(f"{job.task} — {job.kind} ({state})")
        if job.preparing:
            # Before step 0 the bar shows the rows prepared; the steps take it over after.
            self.progress.setValue(int(1000 * job.prepared / job.rows))
            parts = [f"preparing rows: {job.prepared:,} of {job.rows:,}"]
            if job.prepare_eta_s is not None:
                parts.append(f"about {format_duration(job.prepare_eta_s)} left")
        else:
            self.progress.setValue(int(1000 * job.fraction))
            parts = [f"step {job.step} of {job.total}" if job.total else "waiting to start"]
        if job.loss is not None:
            parts.append(f"loss {job.loss:.4f}")
        if job.tokens_per_s:
            parts.append(f"{job.tokens_per_s:,.0f} data tokens/s")
        if job.elapsed_s is not None:
            spent = format_duration(job.elapsed_s)
            parts.append(f"took {spent}" if job.status == "done" else f"{spent} elapsed")
        if job.estimate_s is not None:
            parts.append(f"estimated about {format_duration(job.estimate_s)} before it started")
        if job.active and job.total:
            eta = job.eta_s
            parts.append(f"about {format_duration(eta)} left" if eta is not None
                         else "time left: measuring the first step")
        if job.version:
            parts.append(f"saved as v{job.version}")
        text = " · ".join(parts)
        if job.message:
            text += "<br>" + rich("error", job.message)
        summary = job.outcome.summary if job.outcome else {}
        described = describe_summary(summary, job.metric_name)
        if described:
            text += "<br>" + described
        self.change.show_summary(summary, job.metric_name)
        if job.tasks:
            text += "<br>" + joint_text(job)
        self.stats.setText(text)
        losses, evals = job.curves()
        self.curves.set_data(CurveData(f"job:{job.request_id}", losses, evals,
                                       job.metric_name, job.total, job.lrs))
        self.cancel_button.setEnabled(job.active and not job.cancelling)
        self.resume_button.setEnabled(job.status in (*RESUMABLE, "failed")
                                      and job.run_id is not None)
        self.open_button.setEnabled(job.version is not None)

    def _show_run(self, run: Run) -> None:
        name = self._task_names().get(run.task_id, "?")
        status = run_status(run)
        self.title.setText(f"{name} — run {run.id} ({status})")
        metrics = self.session.library.run_metrics(run.id)
        series = metric_series(metrics)
        metric_name = series.metric_name
        steps = run_steps(run)
        last = int(run.summary.get("steps") or (metrics[-1]["step"] if metrics else 0))
        fraction = 1.0 if run.status == "done" else (last / steps if steps else 0.0)
        self.progress.setValue(int(1000 * min(1.0, fraction)))
        lines = [f"started {run.started.replace('T', ' ')[:16]} · {run.kind} · step {last}"
                 + (f" of {steps}" if steps else "")]
        if run.summary.get("error"):
            lines.append(rich("error", f"Failed: {run.summary['error']}"))
        elif run.status == "failed":
            lines.append(rich("error", "Failed; the engine recorded no reason."))
        if run.summary.get("interrupted"):
            lines.append(f"Interrupted: {run.summary['interrupted']}. Resume it to go on "
                         f"from step {last}.")
        summary = describe_summary(run.summary, metric_name)
        if summary:
            lines.append(summary)
        self.change.show_summary(run.summary, metric_name)
        self.stats.setText("<br>".join(lines))
        self.curves.set_data(CurveData(f"run:{run.id}", {name: series.losses},
                                       {name: series.evals}, metric_name, steps, series.lrs))
        self.cancel_button.setEnabled(False)
        self.resume_button.setEnabled(run.status in ("cancelled", "running", "failed"))
        self.open_button.setEnabled(run.version_id is not None)

    def _selected_runs(self) -> list[Run]:
        """The runs of the selected rows (this session's jobs by their run), oldest first."""
        ids = set()
        for item in self.list.selectedItems():
            kind, obj = item.data(Qt.ItemDataRole.UserRole)
            run_id = obj.run_id if kind == LIVE else obj.id
            if run_id is not None:
                ids.add(run_id)
        if len(ids) < 2:
            return []
        runs = []
        for run_id in sorted(ids):
            try:
                runs.append(self.session.library.get_run(run_id))
            except PromptbankError:
                continue  # gone since the list was drawn
        return runs

    def _show_overlay(self, runs: list[Run]) -> None:
        """Several runs' curves on the same axes, one colour each, for comparison. Only the
        runs judged by the first one's metric share its evaluation plot."""
        names = self._task_names()
        losses, evals, lines = {}, {}, []
        metric_name = ""
        for run in runs:
            key = f"{names.get(run.task_id, '?')} · run {run.id}"
            series = metric_series(self.session.library.run_metrics(run.id))
            metric_name = metric_name or series.metric_name
            losses[key] = series.losses
            if series.metric_name == metric_name:
                evals[key] = series.evals
            line = f"{key}: {run_status(run)}"
            best = run.summary.get("best") or {}
            if isinstance(best.get("metric"), int | float) and key in evals:
                line += f" · best {metric_text(metric_name, best['metric'], best.get('n'))}"
            lines.append(line)
        left_out = len(runs) - len(evals)
        if left_out:
            lines.append(f"{left_out} run(s) measured by another metric are left out of the "
                         "evaluation plot.")
        self.title.setText(f"{len(runs)} runs overlaid")
        self.progress.setValue(0)
        self.stats.setText("<br>".join(lines))
        self.curves.set_data(CurveData("runs:" + ",".join(str(r.id) for r in runs), losses,
                                       evals, metric_name,
                                       max((run_steps(r) for r in runs), default=0)))
        for button in (self.cancel_button, self.resume_button, self.open_button):
            button.setEnabled(False)

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
            self.jobs.resume(obj.id, self._task_names().get(obj.task_id, "?"))

    def _open(self) -> None:
        selected = self._selected()
        if not selected:
            return
        kind, obj = selected
        name = obj.task if kind == LIVE else self._task_names().get(obj.task_id, "")
        self.session.notify_library_changed()
        self.sig_show_task.emit("task", name)
