"""Dialogs opened from the task page: train a new version, continue on new data, compare."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.wizard.dataset_preview import FILE_FILTER
from desktop.wizard.training_settings import TrainingSettings
from engine.library import Version


class TrainDialog(QDialog):
    """Training settings for a new version; with ``continual`` also the new data file."""

    def __init__(self, task: str, task_names: list[str], parent: QWidget | None = None,
                 *, continual: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"{'Continue training' if continual else 'Train'} — {task}")
        self.settings = TrainingSettings([n for n in task_names if n != task])
        self.data = QLineEdit(placeholderText="New examples (.jsonl, .csv, .tsv)")
        layout = QVBoxLayout(self)
        if continual:
            note = QLabel("Continue the active version on new data. Old examples are replayed "
                          "and the prompt is anchored to its parent, so it keeps what it "
                          "knew; the Training tab shows the metrics before and after on the "
                          "old and the new data.")
            note.setWordWrap(True)
            browse = QPushButton("Browse…")
            browse.clicked.connect(self._browse)
            row = QHBoxLayout()
            row.addWidget(self.data, 1)
            row.addWidget(browse)
            layout.addWidget(note)
            layout.addLayout(row)
        layout.addWidget(self.settings, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start training")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "New data", "", FILE_FILTER)
        if path:
            self.data.setText(path)


class CompareDialog(QDialog):
    """Two or more versions' metrics side by side."""

    def __init__(self, versions: list[Version], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare versions")
        keys = sorted({k for v in versions for k in v.metrics})
        rows = ["method", "length", "init", *keys]
        table = QTableWidget(len(rows), len(versions))
        table.setHorizontalHeaderLabels([f"v{v.number}" for v in versions])
        table.setVerticalHeaderLabels(rows)
        for col, v in enumerate(versions):
            values = [v.method, str(v.length), v.init,
                      *(_fmt(v.metrics.get(k)) for k in keys)]
            for row, text in enumerate(values):
                table.setItem(row, col, QTableWidgetItem(text))
        table.resizeColumnsToContents()
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(480, 360)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)
