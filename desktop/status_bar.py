"""EngineStatus: the status bar's model, device, memory and engine-state fields.

Every field is drawn by one method from the engine's state, the loaded model and the running
job, so no two fields can tell different stories.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from desktop.jobs import JobTracker
from desktop.session import Session
from desktop.widgets.formatting import progress_text
from engine.api.session import LoadProgress

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
        self.jobs = jobs
        self.engine_state = "stopped"
        self.model = QLabel("No model")
        self.model.setToolTip("The loaded base model; change it in Settings.")
        self.device = QLabel("")
        self.memory = QLabel("")
        self.memory.setToolTip("Memory used by the engine process.")
        self.state = QLabel("Engine: stopped")
        self.progress = QProgressBar(maximumWidth=120, maximum=1000, textVisible=False)
        self.progress.setToolTip("Progress of the running training job.")
        self.progress.hide()
        bar.addWidget(self.model, 1)
        for widget in (self.device, self.memory, self.progress, self.state):
            bar.addPermanentWidget(widget)
        session.engine.sig_state.connect(self._on_state)
        session.sig_model_changed.connect(lambda _model: self.show())
        session.sig_load_progress.connect(self._on_load_progress)
        jobs.sig_job_changed.connect(lambda _job: self.show())
        self.timer = QTimer(bar, interval=MEMORY_POLL_MS)
        self.timer.timeout.connect(self._poll_memory)
        self.timer.start()

    def _on_state(self, state: str, _detail: str) -> None:
        self.engine_state = state
        self.show()

    def show(self) -> None:
        """Redraw every field from the current state."""
        model, state = self.session.model, self.engine_state
        if model is not None:
            self.model.setText(f"{model.name} · {model.parameters / 1e6:.0f}M parameters")
            quantized = f" · base in {model.quantization}" if model.quantization else ""
            self.device.setText(f"{model.device} · {model.dtype}{quantized}")
            self.device.setToolTip(model.dtype_reason or "The device and precision of the "
                                   "model's weights.")
        else:
            self.device.setText("")
            if self.session.model_error:
                self.model.setText(f"Model failed to load: {self.session.model_error}")
            elif state in ("starting", "ready"):
                self.model.setText("Loading model…")
            else:
                self.model.setText("No model")
        job = self.jobs.running()
        if state == "ready" and model is None and not self.session.model_error:
            text = "loading the model"
        elif state == "ready" and job is not None:
            text = f"training {int(100 * job.fraction)}%"
        else:
            text = state
        self.state.setText(f"Engine: {text}")
        # The bar shows the running job, never whichever job sent the last event.
        self.progress.setVisible(state == "ready" and job is not None)
        self.progress.setValue(int(1000 * job.fraction) if job is not None else 0)

    def _on_load_progress(self, progress: LoadProgress) -> None:
        if self.session.model is None:
            self.model.setText("Loading model: " + progress_text(
                progress.stage, progress.fraction, progress.eta_s))

    def _poll_memory(self) -> None:
        pid = self.session.engine.pid()
        mb = process_memory_mb(pid) if pid else None
        self.memory.setText(f"{mb:,.0f} MiB" if mb is not None else "")
