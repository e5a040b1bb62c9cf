"""BatchPage: pick a file, its input column and tasks; the engine writes a new output file."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.engine.operation import EngineOp
from desktop.session import Session
from desktop.training.page import format_eta
from desktop.wizard.dataset_preview import table_columns

PREVIEW_ROWS = 8
FILE_FILTER = "Tables (*.csv *.tsv *.jsonl);;All files (*)"


def jsonl_columns(path: Path) -> list[str]:
    """Field names of the first object of a JSONL file ([] if unreadable)."""
    import json

    try:
        with path.open(encoding="utf-8") as fh:
            first = next((line for line in fh if line.strip()), "")
        obj = json.loads(first) if first else {}
    except (OSError, ValueError, UnicodeDecodeError):
        return []
    return [k for k, v in obj.items() if isinstance(v, str)] if isinstance(obj, dict) else []


def preview_rows(path: Path, limit: int = PREVIEW_ROWS) -> tuple[list[str], list[list[str]]]:
    """Header and first rows of a CSV/TSV/JSONL file for the preview table."""
    import csv
    import json

    if path.suffix.lower() == ".jsonl":
        columns = jsonl_columns(path)
        rows = []
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip() and len(rows) < limit:
                    obj = json.loads(line)
                    rows.append([str(obj.get(c, "")) for c in columns])
        return columns, rows
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        header = next(reader, [])
        return header, [row for _, row in zip(range(limit), reader, strict=False)]


class BatchPage(QWidget):
    """Runs one or more tasks over a column of a file; progress with rows/s and ETA."""

    sig_finished = Signal(str)
    """The output file was written (its path)."""
    sig_failed = Signal(str)
    """The batch failed or was cancelled (the message)."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.op: EngineOp | None = None
        self.started = 0.0
        self.input = QLineEdit(placeholderText="A .csv, .tsv or .jsonl file")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_input)
        self.column = QComboBox()
        self.column.setToolTip("The column whose text each task reads.")
        self.tasks = QListWidget()
        self.tasks.setToolTip("Tick the tasks to run; each adds one output column.")
        self.tasks.setMaximumHeight(130)
        self.output = QLineEdit(placeholderText="Where to write the result")
        browse_out = QPushButton("Save as…")
        browse_out.clicked.connect(self._browse_output)
        self.overwrite = QCheckBox("Overwrite if it exists")
        self.preview = QTableWidget(0, 0)
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.open_folder = QPushButton("Open folder")
        self.open_folder.setEnabled(False)
        self.progress = QProgressBar(maximum=1000)
        self.status = QLabel("Choose a file, a column and at least one task.")
        self.status.setWordWrap(True)
        row_in = QHBoxLayout()
        row_in.addWidget(self.input, 1)
        row_in.addWidget(browse)
        row_out = QHBoxLayout()
        row_out.addWidget(self.output, 1)
        row_out.addWidget(browse_out)
        row_out.addWidget(self.overwrite)
        form = QFormLayout()
        form.addRow("Input file", row_in)
        form.addRow("Input column", self.column)
        form.addRow("Tasks", self.tasks)
        form.addRow("Output file", row_out)
        buttons = QHBoxLayout()
        for b in (self.run_button, self.cancel_button, self.open_folder):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.preview, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self.input.editingFinished.connect(lambda: self.load(self.input.text()))
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_folder.clicked.connect(self._open_folder)
        session.sig_library_changed.connect(self.refresh_tasks)
        self.refresh_tasks()

    def refresh_tasks(self) -> None:
        """Re-read the task list, keeping the ticks."""
        ticked = set(self.chosen_tasks())
        self.tasks.clear()
        for task in sorted(self.session.library.list_tasks(), key=lambda t: t.name.lower()):
            item = QListWidgetItem(f"{task.name}  ({task.kind})")
            item.setData(Qt.ItemDataRole.UserRole, task.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if task.name in ticked
                               else Qt.CheckState.Unchecked)
            self.tasks.addItem(item)

    def chosen_tasks(self) -> list[str]:
        """Names of the ticked tasks."""
        return [self.tasks.item(r).data(Qt.ItemDataRole.UserRole)
                for r in range(self.tasks.count())
                if self.tasks.item(r).checkState() == Qt.CheckState.Checked]

    def set_tasks(self, names: list[str]) -> None:
        """Tick exactly ``names``."""
        for r in range(self.tasks.count()):
            item = self.tasks.item(r)
            item.setCheckState(Qt.CheckState.Checked if item.data(Qt.ItemDataRole.UserRole)
                               in names else Qt.CheckState.Unchecked)

    def load(self, path: str) -> None:
        """Read the header and first rows of ``path`` into the column list and preview."""
        path = path.strip()
        self.input.setText(path)
        self.column.clear()
        self.preview.clear()
        self.preview.setRowCount(0)
        if not path:
            return
        file = Path(path)
        try:
            header, rows = preview_rows(file)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            self._error(f"Cannot read {file.name}: {exc}.")
            return
        self.column.addItems(header or table_columns(file))
        preferred = next((c for c in header if c.lower() in ("text", "input", "sentence")), "")
        if preferred:
            self.column.setCurrentText(preferred)
        self.preview.setColumnCount(len(header))
        self.preview.setHorizontalHeaderLabels(header)
        self.preview.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                self.preview.setItem(r, c, QTableWidgetItem(text))
        self.preview.resizeColumnsToContents()
        if not self.output.text():
            self.output.setText(str(file.with_name(f"{file.stem}.out{file.suffix}")))
        self.status.setText(f"{file.name}: {len(header)} columns. Tick tasks and press Run.")
        self.status.setStyleSheet("")

    def run(self) -> None:
        """Send the ``apply`` request."""
        tasks = self.chosen_tasks()
        if not self.input.text().strip() or not self.column.currentText():
            self._error("Choose an input file and its input column first.")
            return
        if not tasks:
            self._error("Tick at least one task.")
            return
        if not self.output.text().strip():
            self._error("Choose where to write the output file.")
            return
        self.started = time.monotonic()
        self.progress.setValue(0)
        self.status.setStyleSheet("")
        self.status.setText("Starting…")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.open_folder.setEnabled(False)
        args = {"tasks": tasks, "input": self.input.text().strip(),
                "column": self.column.currentText(), "output": self.output.text().strip(),
                "overwrite": self.overwrite.isChecked()}
        self.op = (self.session.op("apply", args).on_progress(self._on_progress)
                   .on_success(self._on_done).on_failure(self._on_failed).run())

    def cancel(self) -> None:
        """Stop the running batch (rows written so far are discarded by the engine)."""
        if self.op is not None and not self.op.finished:
            self.session.op("cancel", {"job": self.op.id}).run()
            self.status.setText("Cancelling…")

    def _on_progress(self, data: dict) -> None:
        done = data.get("done")
        if isinstance(done, list) and len(done) >= 2:
            rows, total = int(done[0]), int(done[1])
        elif isinstance(done, list) and done:
            rows, total = int(done[0]), 0
        else:
            return
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = rows / elapsed
        if total:
            self.progress.setValue(int(1000 * rows / total))
        eta = (total - rows) / rate if total and rate else None
        self.status.setText(f"{rows} of {total or '?'} rows · {rate:.1f} rows/s · "
                            f"ETA {format_eta(eta)}")

    def _on_done(self, data: dict) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        out = str(data.get("out_path") or data.get("output") or self.output.text())
        if data.get("cancelled"):
            self._on_failed("Cancelled; no output file was written.")
            return
        self.progress.setValue(1000)
        rows = data.get("rows", "")
        seconds = time.monotonic() - self.started
        self.status.setStyleSheet("color: #166534;")
        self.status.setText(f"Wrote {rows} rows to {out} in {seconds:.1f} s.")
        self.open_folder.setEnabled(True)
        self.sig_finished.emit(out)

    def _on_failed(self, message: str) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self._error(message)
        self.sig_failed.emit(message)

    def _error(self, message: str) -> None:
        self.status.setStyleSheet("color: #b91c1c;")
        self.status.setText(message)

    def _browse_input(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Input file", "", FILE_FILTER)
        if path:
            self.load(path)

    def _browse_output(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Output file", self.output.text(),
                                              FILE_FILTER)
        if path:
            self.output.setText(path)

    def _open_folder(self) -> None:
        folder = Path(self.output.text()).parent
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
