"""Session: what every page shares — the engine process, the library, the loaded model."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from desktop.engine.operation import EngineOp
from desktop.engine.process import EngineProcess
from engine.library import Library, Version


class Session(QObject):
    """One open library and one engine; pages read from it and listen to its signals."""

    sig_model_changed = Signal(dict)
    """The loaded model's info changed (``{}`` while none is loaded)."""
    sig_library_changed = Signal()
    """Tasks, datasets or versions changed; lists should re-read the catalogue."""
    sig_task_opened = Signal(str)
    """Some page asked to show a task (by name)."""

    def __init__(self, engine: EngineProcess, library_root: Path | str | None,
                 model_spec: str = "default", device: str = "auto",
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.model_spec = model_spec
        self.device = device
        self.library = Library(library_root)
        self.model: dict = {}
        self.model_error = ""
        engine.sig_state.connect(self._on_engine_state)

    def op(self, name: str, args: dict | None = None) -> EngineOp:
        """A new engine operation bound to this session's engine (call ``run()`` to send)."""
        return EngineOp(self.engine, name, dict(args or {}))

    def worker_args(self) -> list[str]:
        """Global options for ``promptbank worker`` from the current settings."""
        return ["--model", self.model_spec, "--device", self.device,
                "--library", str(self.library.root)]

    def open_library(self, root: Path | str) -> None:
        """Switch to another library folder and restart the engine on it."""
        self.library = Library(root)
        self.engine.restart(self.worker_args())
        self.sig_library_changed.emit()

    def change_model(self, spec: str, device: str) -> None:
        """Load another model: restart the engine with the new options."""
        self.model_spec, self.device = spec, device
        self.model = {}
        self.sig_model_changed.emit({})
        self.engine.restart(self.worker_args())

    def use_engine(self, python: str | None) -> None:
        """Run the worker on the GPU engine's ``python``, or with None on the CPU engine."""
        self.engine.python = python
        self.engine.fallback_reason = ""
        self.engine.restart(self.worker_args())

    def notify_library_changed(self) -> None:
        """Tell every list that the catalogue changed."""
        self.sig_library_changed.emit()

    def fit_problem(self, version: Version | None) -> str:
        """Why ``version`` cannot run on the loaded model, or "" when it fits (or unknown)."""
        if version is None or not self.model:
            return ""
        if version.fingerprint == self.model.get("fingerprint"):
            return ""
        if version.hidden_size != self.model.get("hidden_size"):
            return (f"Trained for a model with hidden size {version.hidden_size}; the loaded "
                    f"model ({self.model.get('name')}) has {self.model.get('hidden_size')}.")
        return (f"Trained on another base model than {self.model.get('name')}; retrain it or "
                "import it for this model.")

    def _on_engine_state(self, state: str, detail: str) -> None:
        if state == "ready":
            self.op("model_info").on_success(self._on_model).on_failure(
                self._on_model_failed).run()
        elif state in ("error", "stopped", "starting") and self.model:
            self.model = {}
            self.sig_model_changed.emit({})

    def _on_model(self, info: dict) -> None:
        self.model = info
        self.model_error = ""
        self.sig_model_changed.emit(info)

    def _on_model_failed(self, message: str) -> None:
        self.model = {}
        self.model_error = message
        self.sig_model_changed.emit({})
