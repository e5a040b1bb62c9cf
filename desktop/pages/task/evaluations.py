"""EvaluationsPanel: a task's stored evaluations, grouped by the data they were measured on,
and the Evaluate action (a version and baselines on the same data, one engine op each)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Signal
from PySide6.QtGui import QBrush, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.connection.operation import EngineOp
from desktop.session import Session
from desktop.widgets.file_preview import DATASET_FILTER
from desktop.widgets.tables import fill_table, read_only_table
from desktop.widgets.tone import set_tone
from engine.api.generation import EvalOutcome, RowsProgress
from engine.api.measures import label, metric_text, value_text
from engine.library import Evaluation, Task, Version

BASELINE_NAMES = {"none": "", "instruction": "instruction baseline",
                  "fewshot": "few-shot baseline"}


def what_was_measured(ev: Evaluation, numbers: dict[int, int]) -> str:
    """'v2', 'instruction baseline', 'v1 (continual-before-new)'…"""
    if ev.version_id is None:
        return BASELINE_NAMES.get(ev.baseline, ev.baseline)
    name = f"v{numbers.get(ev.version_id, '?')}"
    return name if ev.baseline == "none" else f"{name} ({ev.baseline})"


def evaluation_rows(evaluations: list[Evaluation], versions: list[Version]
                    ) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, rows and each row's data hash: evaluations sorted so that those measured on
    the same examples (same data hash) sit together."""
    numbers = {v.id: v.number for v in versions}
    metrics = sorted({k for ev in evaluations for k in ev.metrics})
    header = ["data", "rows", "what", *map(label, metrics), "measured"]
    ordered = sorted(evaluations, key=lambda e: (e.data_sha256, e.created))
    rows = [[ev.data_sha256[:8], f"{ev.n:,}", what_was_measured(ev, numbers),
             *(value_text(k, ev.metrics.get(k)) if k in ev.metrics else "—" for k in metrics),
             ev.created.replace("T", " ")[:16]] for ev in ordered]
    return header, rows, [ev.data_sha256 for ev in ordered]


class EvaluateDialog(QDialog):
    """Which version and baselines to evaluate, and on which data."""

    def __init__(self, task: Task, versions: list[Version], eval_rows: int,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Evaluate — {task.name}")
        self.version = QComboBox()
        for v in sorted(versions, key=lambda v: -v.number):
            active = " (active)" if v.id == task.active_version_id else ""
            self.version.addItem(f"v{v.number}{active}", v.number)
        if task.active_version_id is not None:
            self.version.setCurrentIndex(max(0, next(
                (i for i, v in enumerate(sorted(versions, key=lambda v: -v.number))
                 if v.id == task.active_version_id), 0)))
        self.prompt = QCheckBox("The soft prompt of this version")
        self.prompt.setChecked(bool(versions))
        self.prompt.setEnabled(bool(versions))
        self.instruction = QCheckBox("Instruction baseline (the base model with the task's "
                                     "instruction)")
        self.instruction.setEnabled(bool(task.instruction.strip()))
        if not task.instruction.strip():
            self.instruction.setToolTip("The task has no instruction; add one with Edit task.")
        self.fewshot = QCheckBox("Few-shot baseline (4 training examples as earlier turns)")
        self.fewshot.setChecked(True)
        self.data = QLineEdit(placeholderText=f"the task's held-out split ({eval_rows} rows)")
        self.data.setToolTip("Leave empty to use the task's evaluation split; every choice "
                             "above is measured on the same examples.")
        browse = QPushButton("File…")
        browse.clicked.connect(self._browse)
        data_row = QHBoxLayout()
        data_row.addWidget(self.data, 1)
        data_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Version", self.version)
        form.addRow("", self.prompt)
        form.addRow("", self.instruction)
        form.addRow("", self.fewshot)
        form.addRow("Data", data_row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Evaluate")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def requests(self, task: str) -> list[dict]:
        """The ``eval`` op arguments of the choices, one per measurement."""
        data = self.data.text().strip() or None
        out = []
        if self.prompt.isChecked() and self.version.currentData() is not None:
            out.append({"task": task, "version": self.version.currentData(), "data": data})
        for box, baseline in ((self.instruction, "instruction"), (self.fewshot, "fewshot")):
            if box.isChecked() and box.isEnabled():
                out.append({"task": task, "baseline": baseline, "data": data})
        return out

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Evaluation data", "", DATASET_FILTER)
        if path:
            self.data.setText(path)


class EvaluationsPanel(QWidget):
    """The evaluations table with Evaluate, a progress bar and Cancel."""

    sig_evaluated = Signal(object)
    """One evaluation finished and was stored (its ``EvalOutcome``)."""
    sig_failed = Signal(str)
    """An evaluation failed (the message is shown here too)."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.task: Task | None = None
        self.shades: list[int] = []  # 0/1 per row: groups of rows measured on the same data
        self.pending: list[dict] = []
        self.op: EngineOp | None = None
        self.table = read_only_table()
        self.table.setToolTip("Rows with the same data hash were measured on the same "
                              "examples, so they can be compared.")
        self.evaluate_button = QPushButton("Evaluate…")
        self.evaluate_button.setToolTip("Measure a version and baselines on the same data")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar(maximum=1000)
        self.progress.hide()
        self.status = QLabel()
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.evaluate_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.progress, 1)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        layout.addWidget(self.status)
        self.evaluate_button.clicked.connect(self.ask)
        self.cancel_button.clicked.connect(self.cancel)

    def show_task(self, task: Task | None, versions: list[Version]) -> None:
        """Show ``task``'s stored evaluations (None clears the table)."""
        if self.task is None or task is None or task.name != self.task.name:
            self.status.setText("")
        self.task = task
        self.evaluate_button.setEnabled(task is not None and self.op is None)
        evaluations = self.session.library.list_evaluations(task.name) if task else []
        header, rows, hashes = evaluation_rows(evaluations, versions)
        fill_table(self.table, header, rows)
        self.shades, shade, last = [], 0, None
        for digest in hashes:
            if last is not None and digest != last:
                shade = 1 - shade
            last = digest
            self.shades.append(shade)
        self._paint_groups()

    def _paint_groups(self) -> None:
        """Shade every other group of rows measured on the same data, in the palette's base
        and alternate-base colours."""
        palette = self.palette()
        roles = (QPalette.ColorRole.Base, QPalette.ColorRole.AlternateBase)
        for r, shade in enumerate(self.shades[:self.table.rowCount()]):
            for c in range(self.table.columnCount()):
                self.table.item(r, c).setBackground(QBrush(palette.color(roles[shade])))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._paint_groups()
        super().changeEvent(event)

    def ask(self) -> None:
        """Open the Evaluate dialog and run what it asks for."""
        if self.task is None:
            return
        versions = self.session.library.list_versions(self.task.name)
        rows = len(self.session.library.examples(self.task.name, "eval"))
        dialog = EvaluateDialog(self.task, versions, rows, self)
        if dialog.exec():
            self.start(dialog.requests(self.task.name))

    def start(self, requests: list[dict]) -> None:
        """Run the ``eval`` requests one after the other."""
        self.pending = [{k: v for k, v in r.items() if v is not None} for r in requests]
        self._next()

    def cancel(self) -> None:
        """Stop the evaluation in progress and drop the ones waiting."""
        self.pending = []
        if self.op is not None and not self.op.finished:
            self.session.op("cancel", {"job": self.op.id}).run()
            self.status.setText("Cancelling…")

    def _next(self) -> None:
        if not self.pending:
            self.op = None
            self.progress.hide()
            self.cancel_button.setEnabled(False)
            self.evaluate_button.setEnabled(self.task is not None)
            return
        args = self.pending.pop(0)
        what = (BASELINE_NAMES[args["baseline"]] if "baseline" in args
                else f"v{args['version']}")
        set_tone(self.status, None)
        self.status.setText(f"Evaluating {what}…")
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.setEnabled(True)
        self.evaluate_button.setEnabled(False)
        self.op = (self.session.op("eval", args).on_progress(self._on_progress)
                   .on_success(self._on_done).on_failure(self._on_failed).run())

    def _on_progress(self, progress: RowsProgress) -> None:
        if isinstance(progress, RowsProgress) and progress.total:
            self.progress.setValue(int(1000 * progress.done / progress.total))

    def _on_done(self, outcome: EvalOutcome) -> None:
        if outcome.status == "cancelled":
            self.pending = []
            self.status.setText("Evaluation cancelled; nothing was stored.")
        else:
            what = BASELINE_NAMES.get(outcome.baseline) or f"v{outcome.version}"
            scores = "; ".join(metric_text(k, v, outcome.n) for k, v in outcome.metrics.items())
            self.status.setText(f"{what}: {scores}.")
            self.session.notify_library_changed()
            self.sig_evaluated.emit(outcome)
        self._next()

    def _on_failed(self, message: str) -> None:
        self.pending = []
        set_tone(self.status, "error")
        self.status.setText(message)
        self.sig_failed.emit(message)
        self._next()
