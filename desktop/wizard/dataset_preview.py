"""DatasetPreview: choose a dataset file, see its first rows, or its error with file:line."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.threads import run_in_thread
from desktop.widgets.file_preview import DATASET_FILTER, PREVIEW_ROWS, fill_examples, table_columns
from desktop.widgets.formatting import output_counts
from desktop.widgets.tone import set_tone
from engine.library.readers import Example, read_examples

#: The column choice that lets the reader pick (it then names what it picked).
AUTO = "(detect)"


class DatasetPreview(QWidget):
    """A file picker, column choices for tables, a preview table and an inline error line."""

    sig_validated = Signal(bool)
    """The chosen file was read: True when it is usable, False when it has an error."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.examples: list[Example] = []
        self.format = ""
        self.error = ""
        self.path = QLineEdit(placeholderText="A .jsonl, .csv or .tsv file")
        self.path.setToolTip("JSONL with input/output, prompt/completion, chat 'messages' or "
                             "alpaca fields; or CSV/TSV with an input and an output column.")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.input_column = QComboBox()
        self.output_column = QComboBox()
        for combo in (self.input_column, self.output_column):
            combo.addItem(AUTO)
            combo.setEnabled(False)
            combo.currentIndexChanged.connect(self._reload)
        self.status = QLabel("Choose a file to see its first rows.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["input", "output"])
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Dataset file", row)
        form.addRow("Input column", self.input_column)
        form.addRow("Output column", self.output_column)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        self.path.editingFinished.connect(lambda: self.load(self.path.text()))

    @property
    def valid(self) -> bool:
        """True when a file is chosen and was read without errors."""
        return bool(self.examples) and not self.error

    def columns(self) -> tuple[str | None, str | None]:
        """The chosen (input, output) columns; None means detect."""
        def pick(combo: QComboBox) -> str | None:
            if combo.currentIndex() <= 0 or not combo.isEnabled():
                return None
            return combo.currentText()

        return pick(self.input_column), pick(self.output_column)

    def load(self, path: str) -> None:
        """Read ``path`` in the background and show its preview or its error."""
        path = path.strip()
        if self.path.text() != path:
            self.path.setText(path)
        # Only tables have columns to choose; JSONL shapes are detected by their fields.
        table = path and Path(path).suffix.lower() in (".csv", ".tsv")
        columns = table_columns(Path(path)) if table else []
        for combo in (self.input_column, self.output_column):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems([AUTO, *columns])
            combo.setEnabled(bool(columns))
            combo.blockSignals(False)
        self._reload()

    def _reload(self) -> None:
        path = self.path.text().strip()
        self.examples, self.format, self.error = [], "", ""
        self.table.setRowCount(0)
        if not path:
            return
        set_tone(self.status, None)
        self.status.setText("Reading…")
        input_col, output_col = self.columns()
        run_in_thread(lambda: read_examples(Path(path), input_column=input_col,
                                            output_column=output_col),
                      lambda result: self._on_read(path, result),
                      lambda message: self._on_failed(path, message), self)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a dataset", "", DATASET_FILTER)
        if path:
            self.load(path)

    def _on_read(self, path: str, result) -> None:
        if path != self.path.text().strip():
            return
        self.examples, self.format = list(result.examples), result.format
        if not self.examples:
            self._on_error(f"{path} has no examples.")
            return
        for combo, detected in ((self.input_column, result.input_column),
                                (self.output_column, result.output_column)):
            # Name the column the reader picked instead of an opaque "(detect)".
            combo.setItemText(0, f"{detected} (detected)" if detected else AUTO)
        set_tone(self.status, "ok")
        text = (f"{len(self.examples)} examples, format {self.format}. "
                f"The first {min(PREVIEW_ROWS, len(self.examples))} are shown.")
        counts = output_counts([ex.output for ex in self.examples])
        if counts:
            text += f"<br>Outputs: {counts}"
        self.status.setText(text)
        fill_examples(self.table, self.examples)
        self.sig_validated.emit(True)

    def _on_failed(self, path: str, message: str) -> None:
        if path == self.path.text().strip():
            self._on_error(message)

    def _on_error(self, message: str) -> None:
        self.examples, self.error = [], message
        self.table.setRowCount(0)
        set_tone(self.status, "error", "font-weight: bold;")
        self.status.setText(message)
        self.sig_validated.emit(False)
