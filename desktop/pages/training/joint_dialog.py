"""JointDialog: pick several tasks and train their prompts together in one joint job."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.jobs import JobState, JobTracker
from desktop.session import Session
from desktop.widgets.tone import set_tone
from desktop.widgets.training_settings import TrainingSettings


class JointDialog(QDialog):
    """A checkable list of the library's trainable tasks and the training settings; Train
    queues one joint job (each task keeps its own prompt, optimiser and new version)."""

    def __init__(self, session: Session, jobs: JobTracker, parent: QWidget | None = None,
                 *, checked: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.job: JobState | None = None
        self.setWindowTitle("Train several tasks together")
        self.resize(560, 560)
        note = QLabel("The checked tasks train in one job: every batch mixes their rows, each "
                      "row with its own task's prompt, and each task ends with the version its "
                      "own run would give. Small tasks train in few-shot mode.")
        note.setWordWrap(True)
        self.tasks = QListWidget()
        self.tasks.setToolTip("Tasks with training data; universal prompts train on their "
                              "sources instead.")
        for task in session.library.list_tasks():
            if task.kind == "universal":
                continue
            item = QListWidgetItem(task.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if task.name in checked
                               else Qt.CheckState.Unchecked)
            self.tasks.addItem(item)
        self.settings = TrainingSettings([], session.methods)
        self.error = QLabel()
        set_tone(self.error, "error")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.train_button = self.buttons.addButton(
            "Train together", QDialogButtonBox.ButtonRole.AcceptRole)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(self.tasks, 1)
        layout.addWidget(self.settings)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.tasks.itemChanged.connect(lambda _item: self._check())
        self._check()

    def checked(self) -> list[str]:
        """The checked task names, in list order."""
        return [self.tasks.item(i).text() for i in range(self.tasks.count())
                if self.tasks.item(i).checkState() == Qt.CheckState.Checked]

    def _check(self) -> None:
        count = len(self.checked())
        self.train_button.setEnabled(count >= 2)
        self.error.setText("" if count >= 2 else "Check two or more tasks.")

    def accept(self) -> None:
        """Queue the joint job and close."""
        if len(self.checked()) < 2:
            return
        self.job = self.jobs.start_joint(self.checked(), self.settings.config())
        super().accept()
