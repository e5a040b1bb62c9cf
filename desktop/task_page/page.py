"""TaskPage: one task's details, datasets (with preview), versions, lineage and actions."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.session import Session
from desktop.task_page.dialogs import CompareDialog, TrainDialog
from desktop.task_page.versions import COLUMNS, fill_lineage, fill_versions, selected_numbers
from desktop.training.jobs import JobTracker
from desktop.wizard.dataset_preview import fill_examples
from desktop.wizard.training_settings import usable_init
from engine.errors import PromptbankError
from engine.library import Task

DATASET_COLUMNS = ("name", "format", "rows", "train", "eval", "added")
#: File-dialog filter → export format of the engine's ``export`` op.
EXPORT_FILTERS = {
    "Prompt pack to share (*.pbpack)": "pack",
    "PEFT adapter folder (*)": "peft",
    "KoboldAI soft prompt (*.zip)": "kobold",
    "Prompt file (*.safetensors)": "safetensors",
}


def _button(text: str, tip: str, slot) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    button.clicked.connect(slot)
    return button


class TaskPage(QWidget):
    """Shows the selected task; every change goes to the engine, then the page refreshes."""

    sig_open_playground = Signal(str)
    """Open this task in the playground (its name)."""
    sig_open_inspect = Signal(str)
    """Open this task on the inspect page (its name)."""

    def __init__(self, session: Session, jobs: JobTracker, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.jobs = jobs
        self.task: Task | None = None
        self.title = QLabel("Select a task on the left, or press Ctrl+N to create one.")
        self.title.setStyleSheet("font-size: 16pt; font-weight: bold;")
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.fit = QLabel()
        self.fit.setWordWrap(True)
        self.fit.setStyleSheet("color: #b45309;")

        actions = QHBoxLayout()
        self.buttons = [
            _button("Train new version…", "Train a new prompt version for this task",
                    self.train),
            _button("Continue on new data…", "Continual learning: update the active "
                    "version with new examples, keeping the old skills", self.continue_training),
            _button("Playground", "Try this task on your own input",
                    lambda: self.task and self.sig_open_playground.emit(self.task.name)),
            _button("Inspect", "Nearest tokens, norms, similarity to other tasks",
                    lambda: self.task and self.sig_open_inspect.emit(self.task.name)),
            _button("Delete task…", "Delete this task with its datasets and versions",
                    self.delete_task),
        ]
        for b in self.buttons:
            actions.addWidget(b)
        actions.addStretch(1)

        self.datasets = QTableWidget(0, len(DATASET_COLUMNS))
        self.datasets.setHorizontalHeaderLabels(DATASET_COLUMNS)
        self.datasets.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.datasets.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.datasets.setMaximumHeight(110)
        self.preview = QTableWidget(0, 2)
        self.preview.setHorizontalHeaderLabels(["input", "output"])
        self.preview.setToolTip("The first rows of the selected dataset's training split.")
        data_box = QGroupBox("Datasets")
        data_layout = QVBoxLayout(data_box)
        data_layout.addWidget(self.datasets)
        data_layout.addWidget(self.preview, 1)

        self.versions = QTableWidget(0, len(COLUMNS))
        self.versions.setHorizontalHeaderLabels(COLUMNS)
        self.versions.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.versions.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.lineage = QTreeWidget()
        self.lineage.setHeaderLabels(["lineage", "how"])
        self.lineage.setToolTip("Each version sits under the version it was trained from.")
        version_buttons = QHBoxLayout()
        for b in (_button("Set active", "Serve this version for the task", self.set_active),
                  _button("Compare", "Select two or more versions to compare their metrics",
                          self.compare),
                  _button("Export…", "Save the selected version as a prompt pack, a PEFT "
                          "adapter, a KoboldAI soft prompt or a prompt file",
                          self.export)):
            version_buttons.addWidget(b)
        version_buttons.addStretch(1)
        versions_box = QGroupBox("Versions")
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.versions)
        split.addWidget(self.lineage)
        split.setSizes([600, 220])
        vlayout = QVBoxLayout(versions_box)
        vlayout.addWidget(split, 1)
        vlayout.addLayout(version_buttons)

        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(data_box)
        body.addWidget(versions_box)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b91c1c;")
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.details)
        layout.addWidget(self.fit)
        layout.addLayout(actions)
        layout.addWidget(self.error)
        layout.addWidget(body, 1)
        self.datasets.itemSelectionChanged.connect(self._show_preview)
        session.sig_library_changed.connect(self.refresh)
        session.sig_model_changed.connect(lambda _info: self.refresh())
        self._set_enabled(False)

    def show_task(self, name: str) -> None:
        """Show task ``name`` (an unknown name clears the page)."""
        try:
            self.task = self.session.library.get_task(name)
        except PromptbankError as exc:
            self.task = None
            self.error.setText(str(exc))
        self.refresh()

    def refresh(self) -> None:
        """Re-read the shown task from the catalogue."""
        self.error.setText("")
        if self.task is not None:
            try:
                self.task = self.session.library.get_task(self.task.name)
            except PromptbankError:
                self.task = None
        self._set_enabled(self.task is not None)
        if self.task is None:
            self.title.setText("Select a task on the left, or press Ctrl+N to create one.")
            for widget in (self.details, self.fit):
                widget.setText("")
            self.datasets.setRowCount(0)
            self.preview.setRowCount(0)
            self.versions.setRowCount(0)
            self.lineage.clear()
            return
        t = self.task
        self.title.setText(f"{t.name}  ·  {t.kind}")
        parts = [t.description or "<i>No description.</i>"]
        if t.instruction:
            parts.append(f"<b>Instruction:</b> {t.instruction}")
        if t.labels:
            parts.append(f"<b>Labels:</b> {', '.join(t.labels)}")
        self.details.setText("<br>".join(parts))
        versions = self.session.library.list_versions(t.name)
        active_id = t.active_version_id or (max(versions, key=lambda v: v.number).id
                                            if versions else None)
        active = next((v for v in versions if v.id == active_id), None)
        self.fit.setText(self.session.fit_problem(active))
        fill_versions(self.versions, versions, active_id)
        fill_lineage(self.lineage, versions, active_id)
        self._fill_datasets()

    def _set_enabled(self, on: bool) -> None:
        for b in self.buttons:
            b.setEnabled(on)

    def _fill_datasets(self) -> None:
        datasets = self.session.library.list_datasets(self.task.name)
        self.datasets.setRowCount(len(datasets))
        for row, d in enumerate(datasets):
            cells = (d.name, d.format, str(d.rows), str(d.train_rows), str(d.eval_rows),
                     d.created.replace("T", " ")[:16])
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, d.id)
                self.datasets.setItem(row, col, item)
        self.datasets.resizeColumnsToContents()
        if datasets:
            self.datasets.selectRow(len(datasets) - 1)
        else:
            self.preview.setRowCount(0)

    def _show_preview(self) -> None:
        items = self.datasets.selectedItems()
        if not items or self.task is None:
            return
        dataset_id = items[0].data(Qt.ItemDataRole.UserRole)
        try:
            examples = self.session.library.examples(self.task.name, "train", dataset_id)
        except PromptbankError as exc:
            self.error.setText(str(exc))
            return
        fill_examples(self.preview, examples)

    def _task_names(self) -> list[str]:
        return [t.name for t in self.session.library.list_tasks()]

    def _config(self, dialog: TrainDialog) -> dict:
        has_text = bool(self.task.instruction or self.task.description)
        return usable_init(dialog.settings.config(), has_text=has_text, kind=self.task.kind)

    def train(self) -> None:
        """Ask for training settings and queue a training job."""
        if self.task is None:
            return
        dialog = TrainDialog(self.task.name, self._task_names(), self)
        if dialog.exec():
            self.jobs.start(self.task.name, self._config(dialog))

    def continue_training(self) -> None:
        """Ask for new data and settings and queue continual training."""
        if self.task is None:
            return
        dialog = TrainDialog(self.task.name, self._task_names(), self, continual=True)
        if dialog.exec() and dialog.data.text().strip():
            self.jobs.start(self.task.name, self._config(dialog),
                            continue_data=dialog.data.text().strip())

    def set_active(self) -> None:
        """Make the selected version the one served for this task."""
        numbers = selected_numbers(self.versions)
        if self.task is None or not numbers:
            self.error.setText("Select a version first.")
            return
        self.run_change("activate", {"task": self.task.name, "version": numbers[0]})

    def compare(self) -> None:
        """Show the selected versions' metrics side by side."""
        numbers = selected_numbers(self.versions)
        if self.task is None or len(numbers) < 2:
            self.error.setText("Select two or more versions (Ctrl+click) to compare them.")
            return
        versions = [self.session.library.get_version(self.task.name, n) for n in numbers]
        CompareDialog(versions, self).open()

    def export(self) -> None:
        """Export the selected version in the format the user picks (the engine writes it)."""
        numbers = selected_numbers(self.versions)
        if self.task is None or not numbers:
            self.error.setText("Select a version to export.")
            return
        default = f"{self.task.name}-v{numbers[0]}"
        target, chosen = QFileDialog.getSaveFileName(
            self, "Export prompt version", default, ";;".join(EXPORT_FILTERS))
        if target:
            self.start_export(numbers[0], EXPORT_FILTERS[chosen], Path(target))

    def start_export(self, number: int, fmt: str, target: Path) -> None:
        """Ask the engine to export version ``number`` as ``fmt`` to ``target``."""
        assert self.task is not None
        self.error.setText(f"Exporting v{number}…")
        (self.session.op("export", {"task": self.task.name, "version": number, "format": fmt,
                                    "out": str(target)})
         .on_success(lambda d: self.error.setText(f"Exported to {d['path']}."))
         .on_failure(lambda message: self.error.setText(f"Export failed: {message}"))
         .run())

    def delete_task(self) -> None:
        """Delete the task after the user confirms (it cannot be undone)."""
        if self.task is None:
            return
        versions = len(self.session.library.list_versions(self.task.name))
        answer = QMessageBox.warning(
            self, "Delete task",
            f"Delete the task '{self.task.name}' with its datasets and {versions} prompt "
            "version(s)? This cannot be undone; export versions you want to keep first.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel)
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.run_change("delete_task", {"task": self.task.name})

    def run_change(self, op: str, args: dict) -> None:
        """Ask the engine to change the library; the lists re-read it once it has."""
        self.error.setText("")
        (self.session.op(op, args)
         .on_success(lambda _res: self.session.notify_library_changed())
         .on_failure(self.error.setText)
         .run())
