"""TaskOverviewPage: one task's details, datasets (with preview), versions, lineage,
evaluations and actions."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.jobs import JobTracker
from desktop.pages.base import Page
from desktop.pages.task.dialogs import (
    CompareDialog,
    EditTaskDialog,
    TrainDialog,
    ask_how_to_edit,
    free_name,
    retrain_warning,
)
from desktop.pages.task.evaluations import EvaluationsPanel
from desktop.pages.task.versions import COLUMNS, fill_lineage, fill_versions, selected_numbers
from desktop.session import Session
from desktop.widgets.file_preview import fill_examples
from desktop.widgets.tables import read_only_item, read_only_table
from desktop.widgets.tone import PAGE_TITLE, set_tone
from desktop.widgets.training_settings import measured_pace
from engine.api.library import Exported, TaskSaved
from engine.errors import PromptbankError
from engine.library import Task

DATASET_COLUMNS = ("name", "format", "rows", "train", "eval", "added")
#: File-dialog filter → export format of the engine's ``export`` op.
EXPORT_FILTERS = {
    "Prompt pack to share (*.pbpack)": "pack",
    "PEFT adapter folder (*)": "peft",
    "KoboldAI soft prompt (*.zip)": "kobold",
    "Prompt file (*.safetensors)": "safetensors",
    "Training rows for OpenAI fine-tuning (*.jsonl)": "openai-jsonl",
    "vLLM prompt_embeds folder (*)": "vllm",
}
#: The file extension each export format needs (a PEFT adapter is a folder).
EXPORT_SUFFIXES = {"pack": ".pbpack", "kobold": ".zip", "safetensors": ".safetensors",
                   "peft": "", "openai-jsonl": ".jsonl", "vllm": ""}
NO_TASK = "Select a task on the left, or press Ctrl+N to create one."


def export_target(target: Path, fmt: str) -> Path:
    """``target`` with the extension its format needs (a file dialog may drop it)."""
    suffix = EXPORT_SUFFIXES[fmt]
    return target if not suffix or target.suffix.lower() == suffix else \
        target.with_name(target.name + suffix)


def _button(text: str, tip: str, slot) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    button.clicked.connect(slot)
    return button


class TaskOverviewPage(Page):
    """Shows the selected task; every change goes to the engine, then the page refreshes."""

    KEY = "task"
    TITLE = "Task"
    TIP = "The selected task: datasets, versions, lineage, evaluations"

    def __init__(self, session: Session, jobs: JobTracker, parent: QWidget | None = None,
                 settings: QSettings | None = None) -> None:
        super().__init__(session, jobs, parent, settings)
        self.task: Task | None = None
        self._build_header()
        actions = self._build_action_row()
        data_box = self._build_datasets_box()
        versions_box = self._build_versions_box()
        self.evaluations = EvaluationsPanel(session)
        evals_box = QGroupBox("Evaluations")
        QVBoxLayout(evals_box).addWidget(self.evaluations)

        body = QSplitter(Qt.Orientation.Vertical, objectName="task")
        for box in (data_box, versions_box, evals_box):
            body.addWidget(box)
        self._build_messages()
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.details)
        layout.addWidget(self.fit)
        layout.addLayout(actions)
        layout.addWidget(self.error)
        layout.addWidget(self.notice)
        layout.addWidget(body, 1)
        self.datasets.itemSelectionChanged.connect(self._show_preview)
        session.sig_library_changed.connect(self.refresh)
        session.sig_model_changed.connect(lambda _model: self.refresh())
        self._set_enabled(False)

    def _build_header(self) -> None:
        self.title = QLabel(NO_TASK)
        self.title.setStyleSheet(PAGE_TITLE)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.fit = QLabel()
        self.fit.setWordWrap(True)
        set_tone(self.fit, "warning")

    def _build_action_row(self) -> QHBoxLayout:
        actions = QHBoxLayout()
        self.buttons = [
            _button("Train new version…", "Train a new prompt version for this task",
                    self.train),
            _button("Continue on new data…", "Continual learning: update the active "
                    "version with new examples, keeping the old skills", self.continue_training),
            _button("Edit task…", "Rename the task or change its labels, description or "
                    "instruction", self.edit_task),
            _button("Playground", "Try this task on your own input",
                    lambda: self.task and self.sig_show_task.emit("playground",
                                                                  self.task.name)),
            _button("Inspect", "Nearest tokens, norms, similarity to other tasks",
                    lambda: self.task and self.sig_show_task.emit("inspect", self.task.name)),
            _button("Delete task…", "Delete this task with its datasets and versions",
                    self.delete_task),
        ]
        for b in self.buttons:
            actions.addWidget(b)
        actions.addStretch(1)
        return actions

    def _build_datasets_box(self) -> QGroupBox:
        self.datasets = read_only_table(DATASET_COLUMNS)
        self.datasets.setMaximumHeight(110)
        self.preview = read_only_table(["input", "output"])
        self.preview.setToolTip("The first rows of the selected dataset's training split.")
        data_box = QGroupBox("Datasets")
        data_layout = QVBoxLayout(data_box)
        data_layout.addWidget(self.datasets)
        data_layout.addWidget(self.preview, 1)
        return data_box

    def _build_versions_box(self) -> QGroupBox:
        self.versions = read_only_table(COLUMNS)
        self.lineage = QTreeWidget()
        self.lineage.setHeaderLabels(["lineage", "how"])
        self.lineage.setToolTip("Each version sits under the version it was trained from.")
        version_buttons = QHBoxLayout()
        for b in (_button("Set active", "Serve this version for the task", self.set_active),
                  _button("Compare", "Select two or more versions to compare their metrics "
                          "and their scores on the same evaluation data", self.compare),
                  _button("Export…", "Save the selected version as a prompt pack, a PEFT "
                          "adapter, a KoboldAI soft prompt or a prompt file, or the task's "
                          "training rows for OpenAI fine-tuning",
                          self.export)):
            version_buttons.addWidget(b)
        version_buttons.addStretch(1)
        versions_box = QGroupBox("Versions")
        split = QSplitter(Qt.Orientation.Horizontal, objectName="task-versions")
        split.addWidget(self.versions)
        split.addWidget(self.lineage)
        split.setSizes([600, 220])
        vlayout = QVBoxLayout(versions_box)
        vlayout.addWidget(split, 1)
        vlayout.addLayout(version_buttons)
        return versions_box

    def _build_messages(self) -> None:
        self.error = QLabel()
        self.error.setWordWrap(True)
        set_tone(self.error, "error")
        self.notice = QLabel()
        self.notice.setWordWrap(True)
        set_tone(self.notice, "ok")
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def set_task(self, name: str) -> None:
        """Show task ``name`` (an unknown name clears the page)."""
        if self.task is None or self.task.name != name:
            self._say("")
        try:
            self.task = self.session.library.get_task(name) if name else None
        except PromptbankError as exc:
            self.task = None
            self._say(str(exc), error=True)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the shown task from the catalogue."""
        if self.task is not None:
            try:
                self.task = self.session.library.get_task(self.task.name)
            except PromptbankError:
                self.task = None
        self._set_enabled(self.task is not None)
        if self.task is None:
            self.title.setText(NO_TASK)
            for widget in (self.details, self.fit):
                widget.setText("")
            self.datasets.setRowCount(0)
            self.preview.setRowCount(0)
            self.versions.setRowCount(0)
            self.lineage.clear()
            self.evaluations.show_task(None, [])
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
        runs = {r.id: r for r in self.session.library.list_runs(t.name)}
        fill_versions(self.versions, versions, active_id, runs)
        fill_lineage(self.lineage, versions, active_id)
        self._fill_datasets()
        self.evaluations.show_task(t, versions)

    def _set_enabled(self, on: bool) -> None:
        for b in self.buttons:
            b.setEnabled(on)

    def _say(self, text: str, *, error: bool = False) -> None:
        """One line under the actions: an error in red, anything else in green."""
        self.error.setText(text if error else "")
        self.notice.setText("" if error else text)

    def _fill_datasets(self) -> None:
        datasets = self.session.library.list_datasets(self.task.name)
        self.datasets.blockSignals(True)
        self.datasets.clearSelection()
        self.datasets.setRowCount(len(datasets))
        for row, d in enumerate(datasets):
            cells = (d.name, d.format, str(d.rows), str(d.train_rows), str(d.eval_rows),
                     d.created.replace("T", " ")[:16])
            for col, text in enumerate(cells):
                self.datasets.setItem(row, col, read_only_item(text, d.id))
        self.datasets.resizeColumnsToContents()
        if datasets:
            self.datasets.selectRow(len(datasets) - 1)
        self.datasets.blockSignals(False)
        # Always redrawn: selecting the same row index of another task's table emits nothing.
        self._show_preview()

    def _show_preview(self) -> None:
        items = self.datasets.selectedItems()
        if not items or self.task is None:
            self.preview.setRowCount(0)
            return
        dataset_id = items[0].data(Qt.ItemDataRole.UserRole)
        try:
            examples = self.session.library.examples(self.task.name, "train", dataset_id)
        except PromptbankError as exc:
            self.preview.setRowCount(0)
            self._say(str(exc), error=True)
            return
        fill_examples(self.preview, examples)

    def _task_names(self) -> list[str]:
        return [t.name for t in self.session.library.list_tasks()]


    def _pace(self) -> float | None:
        return measured_pace(self.session.library.list_runs())

    def train(self) -> None:
        """Ask for training settings and queue a training job."""
        if self.task is None:
            return
        dialog = TrainDialog(self.task.name, self._task_names(), self,
                             seconds_per_step=self._pace(), session=self.session)
        if dialog.exec():
            self.jobs.start(self.task.name, dialog.settings.config(),
                            seconds_per_step=dialog.settings.seconds_per_step)
            self.sig_show_task.emit("training", self.task.name)

    def continue_training(self) -> None:
        """Ask for new data and settings and queue continual training of the active version."""
        if self.task is None:
            return
        try:
            parent = self.session.library.get_version(self.task.name)
        except PromptbankError:
            self._say("Train a first version before continuing it on new data.", error=True)
            return
        dialog = TrainDialog(self.task.name, self._task_names(), self, parent_version=parent,
                             seconds_per_step=self._pace(), session=self.session)
        if dialog.exec():
            data = dialog.data.text().strip()
            if not data:
                self._say("Choose the file of new examples to continue on.", error=True)
                return
            self.jobs.start(self.task.name, dialog.settings.config(), continue_data=data,
                            seconds_per_step=dialog.settings.seconds_per_step)
            self.sig_show_task.emit("training", self.task.name)

    def edit_task(self) -> None:
        """Rename the task or change its fields (the engine does it in one transaction)."""
        if self.task is None:
            return
        dialog = EditTaskDialog(self.task, self)
        if not dialog.exec():
            return
        args = dialog.changes()
        if len(args) == 1:
            return
        warning = retrain_warning(self.task, args,
                                  len(self.session.library.list_versions(self.task.name)))
        choice = ask_how_to_edit(self, warning) if warning else "change"
        if not choice:
            return
        if choice == "new":
            taken = {t.name for t in self.session.library.list_tasks()}
            args["as_new"] = args.pop("new_name", None) or free_name(self.task.name, taken)
        self._say("Saving…")
        (self.session.op("edit_task", args)
         .on_success(lambda saved: self._on_edited(saved, made="as_new" in args))
         .on_failure(lambda message: self._say(message, error=True))
         .run())

    def _on_edited(self, saved: TaskSaved, made: bool = False) -> None:
        name = str(saved.task.get("name", ""))
        try:  # the page follows the task under its new name
            self.task = self.session.library.get_task(name)
        except PromptbankError:
            self.task = None
        self.session.notify_library_changed()
        self.sig_show_task.emit("task", name)
        if made:
            self._say(f"Made the task '{name}' with the change and the same data; the task it "
                      "came from and its versions are unchanged.")
        else:
            self._say(f"Saved the task '{name}'.")

    def set_active(self) -> None:
        """Make the selected version the one served for this task."""
        numbers = selected_numbers(self.versions)
        if self.task is None or not numbers:
            self._say("Select a version first.", error=True)
            return
        self.run_change("activate", {"task": self.task.name, "version": numbers[0]})

    def compare(self) -> None:
        """Show the selected versions side by side, with their scores on the same data."""
        numbers = selected_numbers(self.versions)
        if self.task is None or len(numbers) < 2:
            self._say("Select two or more versions (Ctrl+click) to compare them.", error=True)
            return
        versions = [self.session.library.get_version(self.task.name, n) for n in numbers]
        CompareDialog(versions, self.session.library.list_evaluations(self.task.name),
                      self).open()

    def export(self) -> None:
        """Export the selected version in the format the user picks (the engine writes it)."""
        numbers = selected_numbers(self.versions)
        if self.task is None or not numbers:
            self._say("Select a version to export.", error=True)
            return
        default = f"{self.task.name}-v{numbers[0]}"
        target, chosen = QFileDialog.getSaveFileName(
            self, "Export prompt version", default, ";;".join(EXPORT_FILTERS))
        if target:
            self.start_export(numbers[0], EXPORT_FILTERS[chosen], Path(target))

    def start_export(self, number: int, fmt: str, target: Path) -> None:
        """Ask the engine to export version ``number`` as ``fmt`` to ``target`` (the format's
        extension is added when missing)."""
        assert self.task is not None
        target = export_target(target, fmt)
        self._say(f"Exporting v{number}…")
        (self.session.op("export", {"task": self.task.name, "version": number, "format": fmt,
                                    "out": str(target)})
         .on_success(lambda done: self._on_exported(done))
         .on_failure(lambda message: self._say(f"Export failed: {message}", error=True))
         .run())

    def _on_exported(self, done: Exported) -> None:
        self._say(f"Exported to {done.path}.")

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
        self._say("")
        (self.session.op(op, args)
         .on_success(lambda _res: self.session.notify_library_changed())
         .on_failure(lambda message: self._say(message, error=True))
         .run())
