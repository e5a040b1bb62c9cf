"""BatchPage: pick a file, its input column and tasks; the engine writes a new output file,
whose first rows are shown when it is done."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
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
    QVBoxLayout,
    QWidget,
)

from desktop.connection.operation import EngineOp
from desktop.jobs import JobTracker
from desktop.pages.base import Page
from desktop.session import Session
from desktop.widgets.file_preview import TABLE_FILTER, preview_rows, table_columns
from desktop.widgets.formatting import format_duration, output_counts
from desktop.widgets.tables import fill_table, read_only_table
from desktop.widgets.tone import HEADING, set_tone
from engine.api.generation import ApplyOutcome, RowsProgress
from engine.errors import PromptbankError
from engine.library import Task
from engine.library.readers import likely_text_column

PREVIEW_ROWS = 8


class BatchPage(Page):
    """Runs one or more tasks over a column of a file; progress with rows/s and ETA."""

    KEY = "batch"
    TITLE = "Batch apply"
    TIP = "Run tasks over every row of a file"

    sig_finished = Signal(str)
    """The output file was written (its path)."""
    sig_failed = Signal(str)
    """The batch failed or was cancelled (the message)."""

    def __init__(self, session: Session, jobs: JobTracker, parent: QWidget | None = None,
                 settings: QSettings | None = None) -> None:
        super().__init__(session, jobs, parent, settings)
        self.op: EngineOp | None = None
        self.started = 0.0
        self.auto_output = ""
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
        self.preview_title = QLabel("Input preview")
        self.preview_title.setStyleSheet(HEADING)
        self.preview = read_only_table()
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.open_folder = QPushButton("Open folder")
        self.open_folder.setEnabled(False)
        self.open_file = QPushButton("Open file")
        self.open_file.setToolTip("Open the written file with the program the system uses")
        self.open_file.setEnabled(False)
        self.input_header: list[str] = []
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
        for b in (self.run_button, self.cancel_button, self.open_file, self.open_folder):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.preview_title)
        layout.addWidget(self.preview, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self.input.editingFinished.connect(lambda: self.load(self.input.text()))
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_folder.clicked.connect(self._open_folder)
        self.open_file.clicked.connect(self._open_file)
        session.sig_library_changed.connect(self.refresh_tasks)
        self.refresh_tasks()

    def refresh_tasks(self) -> None:
        """Re-read the task list, keeping the ticks."""
        ticked = set(self.chosen_tasks())
        self.tasks.clear()
        for task in sorted(self.session.library.list_tasks(), key=lambda t: t.name.lower()):
            item = QListWidgetItem(f"{task.name}  ({task.kind})")
            item.setData(Qt.ItemDataRole.UserRole, task.name)
            why = self._why_not(task)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            if why:  # it could only fail the whole batch
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
                item.setToolTip(why)
                item.setText(f"{task.name}  ({task.kind}) — {why}")
            item.setCheckState(Qt.CheckState.Checked if task.name in ticked and not why
                               else Qt.CheckState.Unchecked)
            self.tasks.addItem(item)

    def _why_not(self, task: Task) -> str:
        """Why ``task`` cannot run over a file now ("" when it can)."""
        try:
            version = self.session.library.get_version(task.name)
        except PromptbankError:
            return "not trained yet: train a version on the task page first"
        return self.session.fit_problem(version)

    def chosen_tasks(self) -> list[str]:
        """Names of the ticked tasks."""
        return [self.tasks.item(r).data(Qt.ItemDataRole.UserRole)
                for r in range(self.tasks.count())
                if self.tasks.item(r).checkState() == Qt.CheckState.Checked]

    def set_tasks(self, names: list[str]) -> None:
        """Tick exactly ``names`` (of those that can run)."""
        for r in range(self.tasks.count()):
            item = self.tasks.item(r)
            runs = bool(item.flags() & Qt.ItemFlag.ItemIsEnabled)
            item.setCheckState(Qt.CheckState.Checked if runs and item.data(
                Qt.ItemDataRole.UserRole) in names else Qt.CheckState.Unchecked)

    def load(self, path: str) -> None:
        """Read the header and first rows of ``path`` into the column list and preview."""
        path = path.strip()
        self.input.setText(path)
        self.column.clear()
        self.preview_title.setText("Input preview")
        fill_table(self.preview, [], [])
        if not path:
            return
        file = Path(path)
        try:
            header, rows = preview_rows(file, PREVIEW_ROWS)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            self._error(f"Cannot read {file.name}: {exc}.")
            return
        self.column.addItems(header or table_columns(file))
        preferred = likely_text_column(header, rows)
        if preferred:
            self.column.setCurrentText(preferred)
        fill_table(self.preview, header, rows)
        self.input_header = list(header)
        # A name the page chose follows the input; one the user chose stays.
        if self.output.text() in ("", self.auto_output):
            self.auto_output = str(file.with_name(f"{file.stem}.out{file.suffix}"))
            self.output.setText(self.auto_output)
        self.status.setText(f"{file.name}: {len(header)} columns. Tick tasks and press Run.")
        set_tone(self.status, None)

    def problem(self) -> str:
        """Why Run cannot start now, or ""."""
        if not self.input.text().strip() or not self.column.currentText():
            return "Choose an input file and its input column first."
        if not self.chosen_tasks():
            return "Tick at least one task."
        output = self.output.text().strip()
        if not output:
            return "Choose where to write the output file."
        if Path(output).expanduser().exists() and not self.overwrite.isChecked():
            return (f"{Path(output).name} already exists: tick 'Overwrite if it exists' or "
                    "choose another output file.")
        return ""

    def run(self) -> None:
        """Send the ``apply`` request."""
        problem = self.problem()
        if problem:
            self._error(problem)
            return
        self.started = time.monotonic()
        self.progress.setValue(0)
        set_tone(self.status, None)
        self.status.setText("Starting…")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.open_folder.setEnabled(False)
        self.open_file.setEnabled(False)
        args = {"tasks": self.chosen_tasks(), "input": self.input.text().strip(),
                "column": self.column.currentText(), "output": self.output.text().strip(),
                "overwrite": self.overwrite.isChecked()}
        self.op = (self.session.op("apply", args).on_progress(self._on_progress)
                   .on_success(self._on_done).on_failure(self._on_failed).run())

    def cancel(self) -> None:
        """Stop the running batch at its next batch of rows (what is written is kept for a
        later run to continue)."""
        if self.op is not None and not self.op.finished:
            self.session.op("cancel", {"job": self.op.id}).run()
            self.status.setText("Cancelling…")

    def _on_progress(self, progress: RowsProgress) -> None:
        if not isinstance(progress, RowsProgress):
            return
        if progress.total:
            self.progress.setValue(int(1000 * progress.done / progress.total))
        rate = progress.rows_per_s
        rate_text = f" · {rate:.1f} rows/s" if rate else ""
        self.status.setText(f"{progress.done} of {progress.total or '?'} rows{rate_text} · "
                            f"ETA {format_duration(progress.eta_s)}")

    def _on_done(self, outcome: ApplyOutcome) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if outcome.status == "cancelled":
            self._on_failed(f"Cancelled after {outcome.done} of {outcome.rows} rows; no output "
                            f"file was written. Run it again to continue from row "
                            f"{outcome.done + 1}.")
            return
        self.progress.setValue(1000)
        seconds = time.monotonic() - self.started
        set_tone(self.status, "ok")
        self.status.setText(f"Wrote {outcome.rows} rows to {outcome.out_path} in "
                            f"{seconds:.1f} s.")
        self.show_results(Path(outcome.out_path))
        self.open_folder.setEnabled(True)
        self.open_file.setEnabled(True)
        self.sig_finished.emit(outcome.out_path)

    def show_results(self, path: Path) -> None:
        """The first rows of the written file, its new (prediction) columns first, and for
        classify tasks how often each label was predicted in those rows."""
        try:
            header, rows = preview_rows(path, PREVIEW_ROWS)
        except (OSError, ValueError, UnicodeDecodeError):
            return
        added = [i for i, name in enumerate(header) if name not in self.input_header]
        order = added + [i for i in range(len(header)) if i not in added]
        fill_table(self.preview, [header[i] for i in order],
                   [[row[i] if i < len(row) else "" for i in order] for row in rows])
        counts = [f"{header[i]}: {text}" for i in added
                  if (text := output_counts([row[i] for row in rows if i < len(row)], 10))]
        self.preview_title.setText(f"Results: the first {len(rows)} rows of {path.name}"
                                   + (f" — {'; '.join(counts)}" if counts else ""))

    def _on_failed(self, message: str) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self._error(message)
        self.sig_failed.emit(message)

    def _error(self, message: str) -> None:
        set_tone(self.status, "error")
        self.status.setText(message)

    def _browse_input(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Input file", "", TABLE_FILTER)
        if path:
            self.load(path)

    def _browse_output(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Output file", self.output.text(),
                                              TABLE_FILTER)
        if path:
            self.output.setText(path)

    def _open_folder(self) -> None:
        self._open(Path(self.output.text()).expanduser().parent)

    def _open_file(self) -> None:
        self._open(Path(self.output.text()).expanduser())

    def _open(self, path: Path) -> None:
        """Open ``path`` with the system; without a file manager, say where it is (and put
        the path on the clipboard)."""
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
            QGuiApplication.clipboard().setText(str(path))
            set_tone(self.status, None)
            self.status.setText(f"No program here opens it; it is at {path} (the path is on "
                                "the clipboard).")
