"""EnginePanel: Settings → Engine — install, cancel or remove the GPU engine, with its log."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.session import Session
from desktop.widgets.tone import set_tone
from engine.api import gpu_engine as engine_env
from engine.errors import PromptbankError

BACKENDS = ("auto", "cu126", "cu128", "cu130", "rocm6.4", "cpu", engine_env.INDEX_BACKEND)


class _InstallRelay(QObject):
    """Carries the install thread's progress, log and end to the GUI thread."""

    sig_progress = Signal(str, float)
    sig_log = Signal(str)
    sig_done = Signal(object)
    sig_failed = Signal(str)


class EnginePanel(QWidget):
    """Shows which engine runs; installs the GPU engine in the background, cancellable."""

    sig_finished = Signal(bool)
    """An install ended: True when the engine now runs from the new GPU engine."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self.state = QLabel()
        self.state.setWordWrap(True)
        self.backend = QComboBox(editable=True)
        self.backend.addItems(BACKENDS)
        self.backend.setToolTip("auto picks the torch build that fits this machine's GPU "
                                "driver; cu126… choose a CUDA version; index takes torch from "
                                "the package index uv is configured with.")
        self.install = QPushButton("Install GPU engine")
        self.install.setToolTip("Download torch for this GPU (about 2–3 GB) into your data "
                                "folder; the CPU engine stays until the new one works.")
        self.install.clicked.connect(self.start_install)
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(self.cancel_install)
        self.remove = QPushButton("Remove")
        self.remove.setToolTip("Delete the GPU engine and use the CPU engine again.")
        self.remove.clicked.connect(self.remove_engine)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.stage = QLabel()
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumBlockCount(2000)
        self.log.setPlaceholderText("The installer's log appears here.")
        self.log.setMinimumHeight(120)
        row = QHBoxLayout()
        row.addWidget(QLabel("Torch build"))
        row.addWidget(self.backend, 1)
        for button in (self.install, self.cancel, self.remove):
            row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.state)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addWidget(self.stage)
        layout.addWidget(self.log, 1)
        self.refresh()

    @property
    def installing(self) -> bool:
        """True while an install thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def refresh(self, message: str = "", error: bool = False) -> None:
        """Show the engine in use and the GPU engine's state (or ``message``)."""
        found = engine_env.status()
        engine = self.session.engine
        if engine.python:
            using = "The engine runs on the GPU engine."
        else:
            using = "The engine runs on the CPU engine (bundled torch)."
        if engine.fallback_reason:
            using += f" {engine.fallback_reason}"
        text = message or f"{using} {found.describe()}"
        self.state.setText(text)
        set_tone(self.state, "error" if error else None)
        busy = self.installing
        self.install.setEnabled(not busy)
        self.install.setText("Reinstall GPU engine" if found.ready else "Install GPU engine")
        self.backend.setEnabled(not busy)
        self.cancel.setEnabled(busy)
        self.remove.setEnabled(not busy and found.state != "none")
        self.progress.setVisible(busy)

    def start_install(self) -> None:
        """Install the chosen torch build in a background thread."""
        if self.installing:
            return
        backend = self.backend.currentText().strip() or "auto"
        self._cancel = threading.Event()
        relay = _InstallRelay(self)
        relay.sig_progress.connect(self._on_progress)
        relay.sig_log.connect(self.log.appendPlainText)
        relay.sig_done.connect(self._on_done)
        relay.sig_failed.connect(self._on_failed)
        self.log.clear()
        self.progress.setValue(0)
        self.stage.setText("Starting…")
        cancel = self._cancel

        def work() -> None:
            try:
                found = engine_env.install(backend, progress=relay.sig_progress.emit,
                                           log=relay.sig_log.emit, cancel=cancel)
            except PromptbankError as exc:
                relay.sig_failed.emit(str(exc))
            except Exception as exc:  # an OS error or a bug: shown, never lost
                relay.sig_failed.emit(f"Installing the GPU engine failed: {exc}")
            else:
                relay.sig_done.emit(found)

        self._thread = threading.Thread(target=work, name="gpu-engine-install", daemon=True)
        self._thread.start()
        self.refresh()

    def cancel_install(self) -> None:
        """Stop the install; it removes what it made and changes nothing."""
        self._cancel.set()
        self.stage.setText("Cancelling…")

    def stop(self) -> None:
        """Cancel a running install and wait for it (the dialog is closing)."""
        if self.installing:
            self._cancel.set()
            assert self._thread is not None
            self._thread.join()

    def remove_engine(self) -> None:
        """Delete the GPU engine, first moving the worker back to the CPU engine."""
        if self.session.engine.python:
            self.session.use_engine(None)
        try:
            engine_env.remove()
        except PromptbankError as exc:
            self.refresh(str(exc), error=True)
            return
        self.refresh()

    def _on_progress(self, stage: str, fraction: float) -> None:
        self.progress.setValue(round(100 * fraction))
        self.stage.setText(stage)

    def _on_done(self, found: engine_env.EngineStatus) -> None:
        if not found.ready:
            self._on_failed(found.reason)
            return
        self._thread = None
        self.stage.setText("")
        self.session.use_engine(found.python)
        self.refresh(f"Installed: {found.describe()} The engine was restarted on it.")
        self.sig_finished.emit(True)

    def _on_failed(self, message: str) -> None:
        self._thread = None
        self.stage.setText("")
        self.refresh(message, error=True)
        self.sig_finished.emit(False)
