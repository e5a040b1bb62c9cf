"""Session: what every page shares — the engine process, the library, the loaded model.

The desktop reads the catalogue read-only; every change goes to the engine as an operation
(``Session.op``), so the engine process is the library's one writer.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from desktop.connection.operation import EngineOp
from desktop.connection.process import EngineProcess
from engine.api.session import LoadProgress, MethodInfo, ModelDescription
from engine.errors import PromptbankError
from engine.library import Library, Version
from engine.library.catalogue import CatalogueMissing


def open_catalogue(root: Path | str | None) -> tuple[Library, str]:
    """The library's catalogue, read-only; else an empty stand-in and why (no reason for a
    library that simply has no catalogue yet: the engine creates it)."""
    try:
        return Library(root, read_only=True), ""
    except CatalogueMissing:
        return Library(root, empty=True), ""
    except PromptbankError as exc:
        return Library(root, empty=True), str(exc)


class Session(QObject):
    """One open library and one engine; pages read from it and listen to its signals."""

    sig_model_changed = Signal(object)
    """The loaded model changed: its ``ModelDescription``, or None while none is loaded."""
    sig_library_changed = Signal()
    """Tasks, datasets or versions changed; lists should re-read the catalogue."""
    sig_task_opened = Signal(str)
    """Some page asked to show a task (by name)."""
    sig_load_progress = Signal(object)
    """The engine is loading (or converting) the model: a LoadProgress."""
    sig_notice = Signal(str)
    """A message for the user that needs no answer (the status bar shows it a while)."""

    def __init__(self, engine: EngineProcess, library_root: Path | str | None,
                 model_spec: str = "default", device: str = "auto",
                 parent: QObject | None = None, *, examples: Path | None = None,
                 threads: int = 0, quantize: str = "", engine_address: str = "") -> None:
        super().__init__(parent)
        self.engine = engine
        self.engine_address = engine_address
        """ssh://… of the host the engine runs on ("" for this computer)."""
        self.model_spec = model_spec
        self.device = device
        self.quantize = quantize  # "" (full precision), "8bit" or "4bit": the base's weights
        self.threads = threads  # 0: the engine's choice beside the desktop (a core left free)
        self.library, self.library_problem = open_catalogue(library_root)
        self.examples = examples  # installed by the engine once it is ready, then forgotten
        self.model: ModelDescription | None = None
        self.model_error = ""
        engine.sig_state.connect(self._on_engine_state)

    def op(self, name: str, args: dict | None = None) -> EngineOp:
        """A new engine operation bound to this session's engine (call ``run()`` to send)."""
        return EngineOp(self.engine, name, dict(args or {}))

    @property
    def methods(self) -> list[MethodInfo]:
        """The prompt methods the engine offers (empty until it has said hello)."""
        return self.engine.hello.methods if self.engine.hello else []

    def worker_args(self) -> list[str]:
        """Global options for ``promptbank worker`` from the current settings."""
        return ["--model", self.model_spec, "--device", self.device,
                *(["--quantize", self.quantize] if self.quantize else []),
                "--library", str(self.library.root),
                "--threads", str(self.threads) if self.threads else "shared",
                *(["--engine", self.engine_address] if self.engine_address else [])]

    def open_library(self, root: Path | str) -> None:
        """Switch to another library folder and restart the engine on it."""
        self.library.close()
        self.library, self.library_problem = open_catalogue(root)
        self.engine.restart(self.worker_args())
        self.sig_library_changed.emit()

    def change_model(self, spec: str, device: str, quantize: str = "") -> None:
        """Load another model (or base precision): restart the engine with the new options."""
        self.model_spec, self.device, self.quantize = spec, device, quantize
        self.set_model(None)
        self.engine.restart(self.worker_args())

    def use_engine(self, python: str | None) -> None:
        """Run the worker on the GPU engine's ``python``, or with None on the CPU engine."""
        self.engine.python = python
        self.engine.fallback_reason = ""
        self.engine.restart(self.worker_args())

    def use_remote(self, address: str) -> None:
        """Run the engine on the host at ``address`` (ssh://…), or with "" on this computer."""
        self.engine_address = address
        self.set_model(None)
        self.engine.restart(self.worker_args())

    def set_model(self, model: ModelDescription | None, error: str = "") -> None:
        """Record the loaded model (None: none loaded, ``error`` says why) and tell the pages."""
        self.model, self.model_error = model, error
        self.sig_model_changed.emit(model)

    def notify_library_changed(self) -> None:
        """Tell every list that the catalogue changed (opening it first if only its empty
        stand-in was open: the engine has since created, updated or rebuilt it)."""
        if self.library.stand_in:
            self.library, self.library_problem = open_catalogue(self.library.root)
        self.sig_library_changed.emit()

    def fit_problem(self, version: Version | None) -> str:
        """Why ``version`` cannot run on the loaded model, or "" when it fits (or unknown)."""
        if version is None or self.model is None:
            return ""
        if version.fingerprint == self.model.fingerprint:
            return ""
        if version.hidden_size != self.model.hidden_size:
            return (f"Trained for a model with hidden size {version.hidden_size}; the loaded "
                    f"model ({self.model.name}) has {self.model.hidden_size}.")
        return (f"Trained on another base model than {self.model.name}; retrain it or "
                "import it for this model.")

    def _on_engine_state(self, state: str, detail: str) -> None:
        if state == "ready":
            # The engine answers in order: the library is open (created or updated) and the
            # examples are in before the model, which takes longest, is loaded.
            self.op("library_info").on_success(
                lambda _info: self.notify_library_changed()).on_failure(
                self._on_library_failed).run()
            if self.examples is not None:
                self.op("install_examples", {"folder": str(self.examples)}).on_success(
                    self._on_examples).on_failure(self._on_library_failed).run()
            self.op("model_info").on_progress(self._on_load_progress).on_success(
                self.set_model).on_failure(
                lambda message: self.set_model(None, message)).run()
        elif state in ("error", "stopped", "starting") and self.model is not None:
            self.set_model(None)

    def _on_load_progress(self, progress: object) -> None:
        if isinstance(progress, LoadProgress):
            self.sig_load_progress.emit(progress)

    def _on_library_failed(self, message: str) -> None:
        self.library_problem = message
        self.sig_library_changed.emit()

    def _on_examples(self, _report: dict) -> None:
        self.examples = None
        self.notify_library_changed()

