"""ImportDialog: bring a prompt pack, PEFT adapter folder, KoboldAI zip or prompt file into
the library (the engine checks and writes it; the dialog shows what it did)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.session import Session
from desktop.widgets.tone import set_tone
from engine.api.library import Imported

IMPORT_FILTER = ("Prompts (*.pbpack *.zip *.safetensors);;Prompt packs (*.pbpack);;"
                 "KoboldAI soft prompts (*.zip);;Prompt files (*.safetensors);;All files (*)")


def describe_import(report: Imported) -> str:
    """What an import did, in a few lines."""
    lines = [f"Format: {report.format}."]
    for title, items in (("Added", report.added), ("Renamed", report.renamed),
                         ("Skipped", report.skipped), ("Note", report.notes)):
        if items:
            lines.append(f"{title}: {'; '.join(items)}.")
    if not report.added and not report.renamed:
        lines.append("Nothing new was added.")
    return "\n".join(lines)


class ImportDialog(QDialog):
    """Choose what to import; the engine imports it and the dialog reports the outcome."""

    sig_imported = Signal(object)
    """The import finished (its ``Imported`` report)."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Import prompts")
        self.path = QLineEdit(placeholderText="A .pbpack, KoboldAI .zip, .safetensors file or "
                              "a PEFT adapter folder")
        file_button = QPushButton("File…")
        file_button.clicked.connect(self._pick_file)
        folder_button = QPushButton("PEFT folder…")
        folder_button.clicked.connect(self._pick_folder)
        self.task = QLineEdit(placeholderText="(its own name)")
        self.task.setToolTip("The task a single prompt goes to; packs keep their task names.")
        self.force = QCheckBox("Accept prompts trained on another model of the same size")
        self.force.setToolTip("Also accepts a PEFT adapter whose config names another base "
                              "model, when it is the loaded model under another name. A prompt "
                              "the model cannot serve (another size, too long) is still "
                              "refused.")
        self.report = QLabel("Prompts for another model are refused unless you tick the box; "
                             "a name that is taken is imported as 'name (2)'.")
        self.report.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(file_button)
        row.addWidget(folder_button)
        form = QFormLayout()
        form.addRow("Import", row)
        form.addRow("Into task", self.task)
        form.addRow("", self.force)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Close)
        self.import_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.import_button.setText("Import")
        self.buttons.accepted.connect(self.start)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.report)
        layout.addWidget(self.buttons)
        self.resize(640, 220)

    def start(self) -> None:
        """Send the ``import`` request for the chosen path."""
        path = self.path.text().strip()
        if not path:
            self._show("Choose a file or a PEFT adapter folder first.", error=True)
            return
        args = {"path": path, "force": self.force.isChecked()}
        if self.task.text().strip():
            args["task"] = self.task.text().strip()
        self.import_button.setEnabled(False)
        self._show("Importing…")
        (self.session.op("import", args).on_success(self._on_imported)
         .on_failure(lambda message: self._show(message, error=True)).run())

    def _on_imported(self, report: Imported) -> None:
        self._show(describe_import(report))
        self.session.notify_library_changed()
        self.sig_imported.emit(report)

    def _show(self, text: str, *, error: bool = False) -> None:
        self.import_button.setEnabled(True)
        set_tone(self.report, "error" if error else None)
        self.report.setText(text)

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Prompt file", "", IMPORT_FILTER)
        if path:
            self.path.setText(path)

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "PEFT adapter folder")
        if path:
            self.path.setText(path)
