"""NewTaskWizard: name and kind, then a dataset with live preview, then training settings."""

from __future__ import annotations

import re

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from desktop.jobs import JobTracker
from desktop.session import Session
from desktop.widgets.formatting import parse_labels
from desktop.widgets.tone import set_tone
from desktop.widgets.training_settings import TrainingSettings, measured_pace
from desktop.wizard.adaptation import ModeNote, StartSuggestion
from desktop.wizard.dataset_preview import DatasetPreview
from desktop.wizard.instruction import propose_instruction

KINDS = ("generate", "classify")
MAX_INFERRED_LABELS = 20
NAME_PATTERN = re.compile(r"^[\w][\w .\-]{0,63}$")


class TaskNamePage(QWizardPage):
    """Step 1: name, kind, labels, description and instruction."""

    def __init__(self, existing: set[str]) -> None:
        super().__init__()
        self.existing = existing
        self.setTitle("New task")
        self.setSubTitle("Name the task and say what it does. The instruction is also the "
                         "text the prompt starts from.")
        self.name = QLineEdit(placeholderText="e.g. sentiment")
        self.kind = QComboBox()
        self.kind.addItems(KINDS)
        self.kind.setToolTip("classify: the output is one of a few labels (scored, with "
                             "probabilities). generate: free text.")
        self.labels = QLineEdit(placeholderText="positive, negative (empty: taken from the data)")
        self.description = QLineEdit()
        self.instruction = QPlainTextEdit(placeholderText="e.g. Classify the sentiment of the "
                                          "review as positive or negative.")
        self.instruction.setMaximumHeight(90)
        self.error = QLabel()
        set_tone(self.error, "error")
        form = QFormLayout(self)
        form.addRow("Name", self.name)
        form.addRow("Kind", self.kind)
        form.addRow("Labels", self.labels)
        form.addRow("Description", self.description)
        form.addRow("Instruction", self.instruction)
        form.addRow(self.error)
        self.name.textChanged.connect(self._check)
        self.kind.currentTextChanged.connect(lambda k: self.labels.setEnabled(k == "classify"))
        self.labels.setEnabled(False)

    def problem(self) -> str:
        """Why the page cannot continue, or ""."""
        name = self.name.text().strip()
        if not name:
            return ""
        if not NAME_PATTERN.match(name):
            return "Use letters, digits, spaces, dots, dashes or underscores (at most 64)."
        if name in self.existing:
            return f"A task called '{name}' already exists; choose another name."
        return ""

    def _check(self) -> None:
        self.error.setText(self.problem())
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return bool(self.name.text().strip()) and not self.problem()


class DatasetWizardPage(QWizardPage):
    """Step 2: the dataset file (live preview, inline errors) and the split."""

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Dataset")
        self.setSubTitle("Choose a file of examples. Problems are shown with the file and line.")
        self.preview = DatasetPreview()
        self.eval_fraction = QDoubleSpinBox(minimum=0.0, maximum=0.5, singleStep=0.05, value=0.1)
        self.eval_fraction.setToolTip("Share of the rows held out: they never train and judge "
                                      "every version. 0: judged on its own training rows.")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1)
        self.seed.setToolTip("Seed of the train/eval split (the same seed gives the same split).")
        self.proposal = QLabel()
        self.proposal.setWordWrap(True)
        form = QFormLayout()
        form.addRow(self.proposal)
        form.addRow("Held out for evaluation", self.eval_fraction)
        form.addRow("Split seed", self.seed)
        layout = QVBoxLayout(self)
        layout.addWidget(self.preview, 1)
        layout.addLayout(form)
        self.preview.sig_validated.connect(lambda _ok: self.completeChanged.emit())

    def isComplete(self) -> bool:
        return self.preview.valid


class TrainingWizardPage(QWizardPage):
    """Step 3: training settings (in the mode the data's size picks, with a suggested start),
    and whether to train right away."""

    def __init__(self, task_names: list[str], start_from: str, session: Session,
                 seconds_per_step: float | None = None) -> None:
        super().__init__()
        self.setTitle("Training")
        self.setSubTitle("Pick a preset; Advanced shows every setting. Training runs in the "
                         "background; the Training tab shows its progress.")
        self.settings = TrainingSettings(task_names, session.methods, start_from=start_from,
                                         seconds_per_step=seconds_per_step)
        self.mode = ModeNote()
        self.suggestion = StartSuggestion(session, self.probe_request)
        self.suggestion.sig_chosen.connect(self._choose_start)
        self.train_now = QCheckBox("Train the first version now")
        self.train_now.setChecked(True)
        self.error = QLabel()
        self.error.setWordWrap(True)
        set_tone(self.error, "error")
        layout = QVBoxLayout(self)
        layout.addWidget(self.mode)
        layout.addWidget(self.settings, 1)
        layout.addWidget(self.suggestion)
        layout.addWidget(self.train_now)
        layout.addWidget(self.error)

    def initializePage(self) -> None:
        """Pick the mode for the chosen data (and adjust the settings to it)."""
        self.mode.update_for(len(self.wizard().dataset_page.preview.examples), self.settings)

    def probe_request(self) -> dict:
        """The ``rank_starts`` arguments for the chosen data and settings."""
        wizard = self.wizard()
        preview = wizard.dataset_page.preview
        input_col, output_col = preview.columns()
        return {"data": preview.path.text().strip(), "input_column": input_col,
                "output_column": output_col,
                "instruction": wizard.name_page.instruction.toPlainText().strip(),
                "method": self.settings.method.currentText(),
                "length": self.settings.length.value()}

    def _choose_start(self, init: str) -> None:
        if self.settings.init.findText(init) < 0:
            self.settings.init.addItem(init)
        self.settings.init.setCurrentText(init)


class NewTaskWizard(QWizard):
    """Creates a task and its dataset in the library, then (optionally) starts training."""

    sig_task_created = Signal(str)
    """The task was created (its name); its dataset is in the library."""
    sig_failed = Signal(str)
    """Creating the task failed; nothing was left in the library."""

    def __init__(self, session: Session, jobs: JobTracker, parent: QWidget | None = None,
                 *, start_from: str = "") -> None:
        super().__init__(parent)
        self.session = session
        self.jobs = jobs
        self.setWindowTitle("New task")
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, False)
        self.resize(820, 620)
        names = [t.name for t in session.library.list_tasks()]
        self.name_page = TaskNamePage(set(names))
        self.dataset_page = DatasetWizardPage()
        self.training_page = TrainingWizardPage(names, start_from, session,
                                                measured_pace(session.library.list_runs()))
        for page in (self.name_page, self.dataset_page, self.training_page):
            self.addPage(page)
        self.setButtonText(QWizard.WizardButton.FinishButton, "Create")
        self._busy = False
        self._proposed = ""
        self.dataset_page.preview.sig_validated.connect(self._propose_instruction)

    def _propose_instruction(self, ok: bool) -> None:
        """Fill an empty (or still proposed) instruction from the labels or examples, and say
        so: the instruction is the text the prompt starts from."""
        box = self.name_page.instruction
        if not ok or box.toPlainText().strip() not in ("", self._proposed):
            return
        self._proposed = propose_instruction(self.name_page.kind.currentText(), self.labels(),
                                             self.dataset_page.preview.examples)
        box.setPlainText(self._proposed)
        self.dataset_page.proposal.setText(
            f"Proposed instruction (the prompt starts from it): {self._proposed} — go Back to "
            "edit it." if self._proposed else "")

    def labels(self) -> list[str]:
        """The label words: typed by the user, else the distinct outputs of the data."""
        if self.name_page.kind.currentText() != "classify":
            return []
        typed = parse_labels(self.name_page.labels.text())
        if typed:
            return typed
        examples = self.dataset_page.preview.examples
        outputs = list(dict.fromkeys(ex.output.strip() for ex in examples))
        return outputs if len(outputs) <= MAX_INFERRED_LABELS else []

    def accept(self) -> None:
        """Ask the engine to create the task; close on success, show the error otherwise."""
        if self._busy:
            return
        self._busy = True
        self.button(QWizard.WizardButton.FinishButton).setEnabled(False)
        self.training_page.error.setText("Creating the task…")
        name = self.name_page.name.text().strip()
        input_col, output_col = self.dataset_page.preview.columns()
        args = {
            "task": name,
            "kind": self.name_page.kind.currentText(),
            "labels": self.labels() or None,
            "description": self.name_page.description.text().strip(),
            "instruction": self.name_page.instruction.toPlainText().strip(),
            "data": self.dataset_page.preview.path.text().strip() or None,
            "input_column": input_col,
            "output_column": output_col,
            "eval_fraction": self.dataset_page.eval_fraction.value(),
            "seed": self.dataset_page.seed.value(),
        }
        (self.session.op("create_task", args)
         .on_success(lambda _res: self._created(name))
         .on_failure(self._failed)
         .run())

    def _created(self, name: str) -> None:
        self._busy = False
        if self.training_page.train_now.isChecked():
            page = self.training_page
            self.jobs.start(name, page.mode.config(page.settings.config()),
                            seconds_per_step=page.settings.seconds_per_step)
        self.sig_task_created.emit(name)
        super().accept()

    def _failed(self, message: str) -> None:
        self._busy = False
        self.button(QWizard.WizardButton.FinishButton).setEnabled(True)
        self.training_page.error.setText(message)
        self.sig_failed.emit(message)

