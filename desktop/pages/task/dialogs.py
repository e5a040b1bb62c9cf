"""Dialogs opened from the task page: train or continue a version, compare versions, edit."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.session import Session
from desktop.widgets.file_preview import DATASET_FILTER
from desktop.widgets.formatting import parse_labels
from desktop.widgets.memory_line import MemoryLine
from desktop.widgets.tables import fill_table
from desktop.widgets.training_settings import TrainingSettings
from engine.api.measures import SHARES, difference_text, headline_metric, label, value_text
from engine.library import Evaluation, Run, Task, Version

#: Baselines under which a Continue or a universal update stored a version's own scores
#: before and after (engine.training: "continual-after-new" and the like).
COMPARISON_PREFIXES = ("continual-", "universal-")

KINDS = ("generate", "classify")
#: How many recent continued runs the expectation averages.
EXPECT_FROM = 5


def _change_words(name: str, value: float) -> str:
    return f"{100 * value:.1f} points" if name in SHARES else f"{value:.3g}"


def expected_change(runs: list[Run], task_id: int, replay: float, anchor: float) -> str:
    """What continuing is likely to do, from this library's recent continued runs: this
    task's with the same replay and anchor first, else any with them, else any at all."""
    done = [r for r in runs if r.kind == "continue" and r.status == "done"
            and isinstance(r.summary.get("forgetting_old"), int | float)
            and isinstance(r.summary.get("gain_new"), int | float)]

    def same(r: Run) -> bool:
        train = r.config.get("train", {})
        return train.get("replay") == replay and train.get("anchor") == anchor

    choices = [([r for r in done if r.task_id == task_id and same(r)], "this task's"),
               ([r for r in done if same(r)], "this library's"),
               (done, "this library's (other settings)")]
    basis, whose = next((choice for choice in choices if choice[0]), ([], ""))
    if not basis:
        return ("No earlier continued run to go by. After this one, the Training tab shows "
                "how much it forgot on the old data and gained on the new.")
    recent = basis[:EXPECT_FROM]
    name = (recent[0].summary.get("after", {}).get("old", {}).get("metric_name")
            or "accuracy")
    forgot = sum(r.summary["forgetting_old"] for r in recent) / len(recent)
    gained = sum(r.summary["gain_new"] for r in recent) / len(recent)
    runs_said = f"{len(recent)} run{'s' if len(recent) > 1 else ''}"
    return (f"Expected, from {whose} last {runs_said}: {label(name)} on the old data "
            f"{'down' if forgot > 0 else 'up'} {_change_words(name, abs(forgot))}, on the new "
            f"data {'up' if gained >= 0 else 'down'} {_change_words(name, abs(gained))}.")


class TrainDialog(QDialog):
    """Training settings for a new version; with ``parent_version`` it continues that version
    on a new data file (same method, length and start; replay and anchor offered)."""

    def __init__(self, task: str, task_names: list[str], parent: QWidget | None = None,
                 *, parent_version: Version | None = None,
                 seconds_per_step: float | None = None, session: Session | None = None) -> None:
        super().__init__(parent)
        continual = parent_version is not None
        self.setWindowTitle(f"{'Continue training' if continual else 'Train'} — {task}")
        keeps = (f"{parent_version.method} × {parent_version.length}, from "
                 f"v{parent_version.number}" if parent_version is not None else "")
        self.settings = TrainingSettings([n for n in task_names if n != task],
                                         session.methods if session else [],
                                         continual=keeps, seconds_per_step=seconds_per_step)
        self.data = QLineEdit(placeholderText="New examples (.jsonl, .csv, .tsv)")
        layout = QVBoxLayout(self)
        if continual:
            note = QLabel(f"Continue v{parent_version.number} (the active version) on new "
                          "data. Earlier examples are replayed and the prompt can be anchored "
                          "to its parent, so it keeps what it knew; the Training tab shows "
                          "the metrics before and after on the old and the new data.")
            note.setWordWrap(True)
            browse = QPushButton("Browse…")
            browse.clicked.connect(self._browse)
            row = QHBoxLayout()
            row.addWidget(self.data, 1)
            row.addWidget(browse)
            layout.addWidget(note)
            layout.addLayout(row)
            self.expected = QLabel(wordWrap=True)
            layout.addWidget(self.expected)
            if session is not None:
                runs = session.library.list_runs()
                task_id = session.library.get_task(task).id

                def expect() -> None:
                    config = self.settings.config()
                    self.expected.setText(expected_change(
                        runs, task_id, config.get("replay", 0.0), config.get("anchor", 0.0)))

                self.settings.sig_changed.connect(expect)
                expect()
        layout.addWidget(self.settings, 1)
        self.memory = None
        if session is not None:
            self.memory = MemoryLine(session, [task], self.settings.config)
            self.settings.sig_changed.connect(self.memory.refresh)
            self.memory.refresh()
            layout.addWidget(self.memory)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start training")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "New data", "", DATASET_FILTER)
        if path:
            self.data.setText(path)


def compare_same_data(versions: list[Version], evaluations: list[Evaluation]
                      ) -> tuple[list[str], list[list[str]]]:
    """Rows per (data, metric) and a column per version or baseline measured on that data,
    for the data sets on which at least one of ``versions`` was evaluated."""
    chosen = {v.id: f"v{v.number}" for v in versions}
    digests = sorted({e.data_sha256 for e in evaluations if e.version_id in chosen})
    columns: list[str] = list(chosen.values())
    for e in evaluations:
        if e.version_id is None and e.data_sha256 in digests and e.baseline not in columns:
            columns.append(e.baseline)
    rows = []
    for digest in digests:
        latest = _latest_scores([e for e in evaluations if e.data_sha256 == digest], chosen)
        n = max((e.n for e in latest.values()), default=0)
        ranked = [c for c in chosen.values() if c in latest]
        for name in sorted({k for e in latest.values() for k in e.metrics}):
            cells = [value_text(name, latest[c].metrics.get(name)) if c in latest else "—"
                     for c in columns]
            rows.append([f"{digest[:8]} ({n:,} rows)", label(name), *cells,
                         _difference(name, [latest[c] for c in ranked])])
    return ["data", "metric", *columns, "difference (first → last version)"], rows


def _latest_scores(here: list[Evaluation], chosen: dict[int, str]) -> dict[str, Evaluation]:
    """The latest evaluation of each chosen version and each baseline on one data set; a
    version's own score counts whether it was asked for or stored by a Continue (its
    before/after evaluations)."""
    latest: dict[str, Evaluation] = {}
    for e in sorted(here, key=lambda e: e.created):
        own = e.baseline == "none" or e.baseline.startswith(COMPARISON_PREFIXES)
        who = chosen.get(e.version_id) if e.version_id is not None else e.baseline
        if who is not None and (e.version_id is None or own):
            latest[who] = e
    return latest


def _difference(name: str, scored: list[Evaluation]) -> str:
    first, last = (scored[0], scored[-1]) if len(scored) > 1 else (None, None)
    if first is None or not {name} <= first.metrics.keys() & last.metrics.keys():
        return "—"
    return difference_text(name, first.metrics[name], first.n, last.metrics[name], last.n)


class CompareDialog(QDialog):
    """Versions side by side: how they were trained, and their scores on the same data."""

    def __init__(self, versions: list[Version], evaluations: list[Evaluation],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare versions")
        self.facts = QTableWidget()
        fill_table(self.facts, ["", *(f"v{v.number}" for v in versions)],
                   [["method", *(v.method for v in versions)],
                    ["length", *(str(v.length) for v in versions)],
                    ["init", *(v.init for v in versions)],
                    ["training metric", *(headline_metric(v.metrics) for v in versions)]])
        self.same_data = QTableWidget()
        header, rows = compare_same_data(versions, evaluations)
        fill_table(self.same_data, header, rows)
        note = QLabel("Scores on the same evaluation data (same hash: the same examples). "
                      + ("" if rows else "None yet: use Evaluate… on the task page to "
                         "measure these versions on the same data."))
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.facts)
        layout.addWidget(note)
        layout.addWidget(self.same_data, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(640, 480)


def retrain_warning(task: Task, changes: dict, versions: int) -> str:
    """What changing a trained task's kind or labels does to its versions ("" when it has
    none, or neither changes)."""
    if not versions or not {"kind", "labels"} & changes.keys():
        return ""
    def shown(kind: str, labels: list[str]) -> str:
        return f"{kind} over {', '.join(labels)}" if kind == "classify" and labels else kind

    was = shown(task.kind, task.labels)
    now = shown(changes.get("kind", task.kind), changes.get("labels", task.labels))
    return (f"{task.name} has {versions} trained version{'s' if versions > 1 else ''}, taught "
            f"as {was}. After this change they are used and scored as {now}, which they "
            "were never trained for.\n\nMake a new task with the change and the same data "
            f"(keeps {task.name} and its versions as they are), or change {task.name} anyway "
            "and train a new version?")


def ask_how_to_edit(parent: QWidget, warning: str) -> str:
    """Ask whether a change a trained task's versions were not taught goes into a new task
    ("new"), into this one ("change") or nowhere ("")."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Trained versions", warning, parent=parent)
    new = box.addButton("Make a new task", QMessageBox.ButtonRole.AcceptRole)
    change = box.addButton("Change this task", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(new)
    box.exec()
    clicked = box.clickedButton()
    return "new" if clicked is new else "change" if clicked is change else ""


def free_name(name: str, taken: set[str]) -> str:
    """``name-2``, ``name-3``, … : the first that no task has."""
    number = 2
    while f"{name}-{number}" in taken:
        number += 1
    return f"{name}-{number}"


class EditTaskDialog(QDialog):
    """Rename a task or change its kind, labels, description and instruction."""

    def __init__(self, task: Task, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.task = task
        self.setWindowTitle(f"Edit task — {task.name}")
        self.name = QLineEdit(task.name)
        self.kind = QComboBox()
        self.kind.addItems(KINDS)
        self.kind.setCurrentText(task.kind)
        self.labels = QLineEdit(", ".join(task.labels))
        self.labels.setPlaceholderText("positive, negative")
        self.description = QLineEdit(task.description)
        self.instruction = QPlainTextEdit(task.instruction)
        self.instruction.setMaximumHeight(90)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Kind", self.kind)
        form.addRow("Labels", self.labels)
        form.addRow("Description", self.description)
        form.addRow("Instruction", self.instruction)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def changes(self) -> dict:
        """The ``edit_task`` arguments for what the user changed (only ``task`` if nothing)."""
        args: dict = {"task": self.task.name}
        name = self.name.text().strip()
        if name and name != self.task.name:
            args["new_name"] = name
        fields = {"kind": self.kind.currentText(), "description": self.description.text().strip(),
                  "instruction": self.instruction.toPlainText().strip(),
                  "labels": parse_labels(self.labels.text())}
        for key, value in fields.items():
            if value != getattr(self.task, key):
                args[key] = value
        return args
