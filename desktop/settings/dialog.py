"""SettingsDialog: the base model (``ModelPanel``: picked, added, checked by loading it), the
device, the CPU threads, the library folder, and the engine (CPU, or the GPU engine installed
on demand)."""

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
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.session import Session
from desktop.settings.engine_panel import EnginePanel
from desktop.settings.model_panel import ModelPanel
from desktop.settings.remote_panel import RemotePanel
from engine.api.session import ModelDescription
from engine.api.threads import cores, shared_threads

DEVICES = ("auto", "cpu", "cuda", "mps")


#: The base weights offered, as shown and as ``--quantize`` takes them.
BASES = (("Full precision", ""), ("8-bit (bitsandbytes int8)", "8bit"),
         ("4-bit (bitsandbytes NF4)", "4bit"))


class SettingsDialog(QDialog):
    """Edits the session's model, device and library; the model is checked before use."""

    def __init__(self, session: Session, parent: QWidget | None = None,
                 settings: QSettings | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings or QSettings()
        self.setWindowTitle("Settings")
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
        self.base = QComboBox()
        for text, value in BASES:
            self.base.addItem(text, value)
        self.base.setCurrentIndex(max(0, self.base.findData(session.quantize)))
        self.base.setToolTip(
            "The frozen model's weights. 8 and 4 bits (bitsandbytes) take about a half and a "
            "third of 16-bit memory. Prompts trained on one base say so and run on another "
            "with a warning: on the example tasks a prompt trained at full precision scored "
            "within a point on the 8-bit base and 6 to 23 points lower on the 4-bit one; "
            "trained on the 4-bit base itself, within 2.5 points of full precision.")
        self.model = ModelPanel(session, self.device, self.base)
        self.model.sig_checked.connect(self._checked)
        lib_row = QHBoxLayout()
        lib_row.addWidget(self.library, 1)
        lib_row.addWidget(lib_button)
        form = QFormLayout()
        form.addRow("Model", self.model)
        form.addRow("Device", self.device)
        form.addRow("Base weights", self.base)
        form.addRow("Engine threads", self.threads)
        form.addRow("Library folder", lib_row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.engine = EnginePanel(session)
        self.remote = RemotePanel(session, self.settings)
        engine_box = QGroupBox("Engine")
        engine_layout = QVBoxLayout(engine_box)
        engine_layout.addWidget(self.remote)
        engine_layout.addWidget(self.engine)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(engine_box, 1)
        layout.addWidget(buttons)
        self.resize(680, 520)

    def _checked(self, spec: str, device: str, info: ModelDescription) -> None:
        self.session.model_spec, self.session.device = spec, device
        self.session.quantize = info.quantization
        self.session.set_model(info)

    def accept(self) -> None:
        """Save the settings; restart the engine when the model, device, threads or library
        changed."""
        spec, device, quantize = self.model.spec, self.device.currentText(), self.base.currentData()
        library = self.library.text().strip()
        threads_changed = self.threads.value() != self.session.threads
        self.session.threads = self.threads.value()
        self.settings.setValue("engine/model", spec)
        self.settings.setValue("engine/device", device)
        self.settings.setValue("engine/quantize", quantize)
        self.settings.setValue("engine/threads", self.threads.value())
        self.settings.setValue("library/root", library)
        session = self.session
        if library and library != str(session.library.root):
            session.model_spec, session.device, session.quantize = spec, device, quantize
            session.open_library(library)
        elif (spec, device, quantize) != (session.model_spec, session.device, session.quantize) \
                or session.model is None or threads_changed:
            session.change_model(spec, device, quantize)
        super().accept()

    def done(self, result: int) -> None:
        """Close the dialog; a GPU engine install still running is cancelled first."""
        self.engine.stop()
        self.model.wait()
        super().done(result)

    def _pick_library(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Library folder", self.library.text())
        if path:
            self.library.setText(path)
