"""SettingsDialog: the base model (checked by loading it), the device, the CPU threads, the
library folder, and the engine (CPU, or the GPU engine installed on demand)."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.session import Session
from desktop.settings.engine_panel import EnginePanel
from engine.cpu_threads import cores, shared_threads
from engine.payloads import LoadProgress, ModelDescription

DEVICES = ("auto", "cpu", "cuda", "mps")


class SettingsDialog(QDialog):
    """Edits the session's model, device and library; the model is checked before use."""

    def __init__(self, session: Session, parent: QWidget | None = None,
                 settings: QSettings | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings or QSettings()
        self.setWindowTitle("Settings")
        self.model = QComboBox(editable=True)
        self.model.addItem("default")
        self.model.setCurrentText(session.model_spec)
        self.model.setToolTip("'default' is the embedded SmolLM2-135M-Instruct; or a Hugging "
                              "Face model folder, a .gguf file, or a hub id already cached.")
        folder = QPushButton("Folder…")
        folder.clicked.connect(self._pick_folder)
        gguf = QPushButton("GGUF file…")
        gguf.clicked.connect(self._pick_gguf)
        self.check = QPushButton("Check")
        self.check.setToolTip("Load the model in the engine and show what it is.")
        self.check.clicked.connect(self.check_model)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setCurrentText(session.device)
        self.threads = QSpinBox(minimum=0, maximum=max(64, cores()))
        self.threads.setSpecialValueText(f"Automatic: {shared_threads()} of {cores()} cores")
        self.threads.setValue(session.threads)
        self.threads.setToolTip(
            "CPU threads the engine trains and generates with. Automatic leaves one core for "
            "this window; more threads than free cores make every step slower, not faster.")
        self.library = QLineEdit(str(session.library.root))
        lib_button = QPushButton("Choose…")
        lib_button.clicked.connect(self._pick_library)
        self.info = QLabel("Prompts are tied to the model they were trained on; tasks whose "
                           "prompts do not fit the loaded model are greyed out.")
        self.info.setWordWrap(True)
        model_row = QHBoxLayout()
        for w in (self.model, folder, gguf, self.check):
            model_row.addWidget(w, 1 if w is self.model else 0)
        lib_row = QHBoxLayout()
        lib_row.addWidget(self.library, 1)
        lib_row.addWidget(lib_button)
        form = QFormLayout()
        form.addRow("Model", model_row)
        form.addRow("Device", self.device)
        form.addRow("Engine threads", self.threads)
        form.addRow("Library folder", lib_row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.engine = EnginePanel(session)
        engine_box = QGroupBox("Engine")
        QVBoxLayout(engine_box).addWidget(self.engine)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.info)
        layout.addWidget(engine_box, 1)
        layout.addWidget(buttons)
        self.resize(680, 520)

    def check_model(self) -> None:
        """Load the chosen model in the engine (``load_model``) and describe it."""
        spec, device = self.model.currentText().strip(), self.device.currentText()
        self.info.setStyleSheet("")
        self.info.setText(f"Loading {spec}…")
        self.check.setEnabled(False)
        self.session.op("load_model", {"model": spec, "device": device}) \
            .on_progress(self._on_progress) \
            .on_success(lambda info: self._checked(spec, device, info)) \
            .on_failure(self._failed).run()

    def _on_progress(self, progress: LoadProgress) -> None:
        if isinstance(progress, LoadProgress):
            self.info.setText(f"{progress.stage} ({100 * progress.fraction:.0f}%)")

    def _checked(self, spec: str, device: str, info: ModelDescription) -> None:
        self.check.setEnabled(True)
        self.session.model_spec, self.session.device = spec, device
        self.session.set_model(info)
        self.info.setStyleSheet("color: #166534;")
        self.info.setText(f"OK: {info.name} · {info.parameters / 1e6:.0f}M parameters · "
                          f"hidden size {info.hidden_size} · {info.device} · {info.dtype} · "
                          f"{info.threads} CPU threads")

    def _failed(self, message: str) -> None:
        self.check.setEnabled(True)
        self.info.setStyleSheet("color: #b91c1c;")
        self.info.setText(message)

    def accept(self) -> None:
        """Save the settings; restart the engine when the model, device, threads or library
        changed."""
        spec, device = self.model.currentText().strip() or "default", self.device.currentText()
        library = self.library.text().strip()
        threads_changed = self.threads.value() != self.session.threads
        self.session.threads = self.threads.value()
        self.settings.setValue("engine/model", spec)
        self.settings.setValue("engine/device", device)
        self.settings.setValue("engine/threads", self.threads.value())
        self.settings.setValue("library/root", library)
        if library and library != str(self.session.library.root):
            self.session.model_spec, self.session.device = spec, device
            self.session.open_library(library)
        elif (spec, device) != (self.session.model_spec, self.session.device) \
                or self.session.model is None or threads_changed:
            self.session.change_model(spec, device)
        super().accept()

    def done(self, result: int) -> None:
        """Close the dialog; a GPU engine install still running is cancelled first."""
        self.engine.stop()
        super().done(result)

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Model folder")
        if path:
            self.model.setCurrentText(path)

    def _pick_gguf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "GGUF model", "", "GGUF (*.gguf)")
        if path:
            self.model.setCurrentText(path)

    def _pick_library(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Library folder", self.library.text())
        if path:
            self.library.setText(path)
