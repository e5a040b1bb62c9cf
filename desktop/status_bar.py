"""EngineStatus: the status bar's model, device, memory and engine-state fields."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from desktop.session import Session
from desktop.training.jobs import JobState, JobTracker

MEMORY_POLL_MS = 2000


def process_memory_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MiB (Linux /proc; None elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class EngineStatus:
    """Fills a QStatusBar from the session, the engine and the job tracker."""

    def __init__(self, bar: QStatusBar, session: Session, jobs: JobTracker) -> None:
        self.session = session
        self.engine_state = "stopped"
        self.model = QLabel("No model")
        self.model.setToolTip("The loaded base model; change it in Settings.")
        self.device = QLabel("")
        self.memory = QLabel("")
        self.memory.setToolTip("Memory used by the engine process.")
        self.state = QLabel("Engine: stopped")
        self.progress = QProgressBar(maximumWidth=120, maximum=1000, textVisible=False)
        self.progress.hide()
        bar.addWidget(self.model, 1)
        for widget in (self.device, self.memory, self.progress, self.state):
            bar.addPermanentWidget(widget)
        session.engine.sig_state.connect(self._on_state)
        session.sig_model_changed.connect(self._on_model)
        jobs.sig_job_changed.connect(self._on_job)
        self.jobs = jobs
        self.timer = QTimer(bar, interval=MEMORY_POLL_MS)
        self.timer.timeout.connect(self._poll_memory)
        self.timer.start()

    def _on_state(self, state: str, detail: str) -> None:
        self.engine_state = state
        self._show_state()
        if state == "starting":
            self.model.setText("Loading model…")

    def _show_state(self) -> None:
        job = self.jobs.running()
        if self.engine_state == "ready" and job is not None:
            text = f"training {int(100 * job.fraction)}%"
        else:
            text = self.engine_state
        self.state.setText(f"Engine: {text}")
        self.progress.setVisible(job is not None and self.engine_state == "ready")

    def _on_model(self, info: dict) -> None:
        if info:
            self.model.setText(f"{info.get('name', '?')} · "
                               f"{info.get('parameters', 0) / 1e6:.0f}M parameters")
            self.device.setText(f"{info.get('device', '?')} · {info.get('dtype', '')}")
        elif self.session.model_error:
            self.model.setText(f"Model failed to load: {self.session.model_error}")
            self.device.setText("")
        else:
            self.model.setText("Loading model…" if self.engine_state != "error" else "No model")

    def _on_job(self, job: JobState) -> None:
        self.progress.setValue(int(1000 * job.fraction))
        self._show_state()

    def _poll_memory(self) -> None:
        pid = self.session.engine.pid()
        mb = process_memory_mb(pid) if pid else None
        self.memory.setText(f"{mb:,.0f} MiB" if mb is not None else "")
