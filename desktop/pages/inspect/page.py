"""InspectPage: nearest tokens and norms per virtual token; a task-similarity heat map with
each cell's value and a colour scale."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.jobs import JobTracker
from desktop.pages.base import Page
from desktop.pages.inspect.norms import position_norms
from desktop.session import Session
from desktop.widgets.plots import plot_widget
from desktop.widgets.tables import read_only_item
from desktop.widgets.tone import HEADING, set_tone
from engine.api.inspection import NearTokens, Similarity
from engine.errors import PromptbankError

NOTE = ("Nearest tokens are a rough projection, not a faithful reading of the prompt: trained "
        "vectors usually sit far from every real token.")
HEAT_COLOURS = "CET-D1"


class InspectPage(Page):
    """Looks inside one task's prompt versions and compares tasks with each other."""

    KEY = "inspect"
    TITLE = "Inspect"
    TIP = "What a prompt is close to; how tasks relate"

    sig_similarity_shown = Signal(list)
    """The heat map was drawn for these task names."""

    def __init__(self, session: Session, jobs: JobTracker, parent: QWidget | None = None,
                 settings: QSettings | None = None) -> None:
        super().__init__(session, jobs, parent, settings)
        self.task = ""
        self.heat_labels: list[pg.TextItem] = []
        self.version = QComboBox()
        self.version.setToolTip("The prompt version to inspect.")
        self.task_label = QLabel("Select a task on the left.")
        self.task_label.setStyleSheet(HEADING)
        self.tokens_button = QPushButton("Nearest tokens")
        self.tokens_button.setToolTip("Ask the engine for the vocabulary tokens nearest to "
                                      "each virtual token (prompt method only).")
        note = QLabel(NOTE)
        note.setWordWrap(True)
        set_tone(note, "muted", "font-style: italic;")
        self.tokens = QTableWidget(0, 2)
        self.tokens.setHorizontalHeaderLabels(["norm", "nearest tokens (cosine)"])
        self.tokens.horizontalHeader().setStretchLastSection(True)
        self.norm_plot = plot_widget("Norm per virtual token")
        self.norm_plot.setLabel("bottom", "position")
        self.norm_plot.setMaximumHeight(220)
        self.status = QLabel()
        self.status.setWordWrap(True)

        head = QHBoxLayout()
        head.addWidget(QLabel("Version"))
        head.addWidget(self.version)
        head.addWidget(self.tokens_button)
        head.addStretch(1)
        left = QGroupBox("This prompt")
        ll = QVBoxLayout(left)
        ll.addWidget(self.task_label)
        ll.addLayout(head)
        ll.addWidget(note)
        ll.addWidget(self.tokens, 1)
        ll.addWidget(self.norm_plot)
        ll.addWidget(self.status)

        self.method = QComboBox()
        self.method.setToolTip("Only prompts of one method can be compared.")
        self.heat_button = QPushButton("Similarity map")
        self.heat_button.setToolTip("Cosine similarity of every task's active prompt.")
        self.start_from = QPushButton("Use as starting point…")
        self.start_from.setToolTip("Create a new task whose prompt starts from this task's "
                                   "prompt (transfer; helps when the tasks are similar).")
        self.heat = plot_widget("Task similarity (cosine)")
        self.heat_image = pg.ImageItem()
        self.heat.addItem(self.heat_image)
        self.heat.setAspectLocked(True)
        self.colour_bar = pg.ColorBarItem(values=(-1.0, 1.0), label="cosine",
                                          colorMap=pg.colormap.get(HEAT_COLOURS),
                                          interactive=False)
        self.colour_bar.setImageItem(self.heat_image, insert_in=self.heat.getPlotItem())
        self.heat_status = QLabel()
        self.heat_status.setWordWrap(True)
        right = QGroupBox("Across tasks")
        rl = QVBoxLayout(right)
        rrow = QHBoxLayout()
        rrow.addWidget(QLabel("Method"))
        rrow.addWidget(self.method)
        rrow.addWidget(self.heat_button)
        rrow.addStretch(1)
        rl.addLayout(rrow)
        rl.addWidget(self.start_from, 0, Qt.AlignmentFlag.AlignLeft)
        rl.addWidget(self.heat, 1)
        rl.addWidget(self.heat_status)
        split = QSplitter(Qt.Orientation.Horizontal, objectName="inspect")
        split.addWidget(left)
        split.addWidget(right)
        QVBoxLayout(self).addWidget(split)

        self.version.currentIndexChanged.connect(lambda _i: self.show_version())
        self.tokens_button.clicked.connect(self.request_tokens)
        self.heat_button.clicked.connect(self.request_similarity)
        self.start_from.clicked.connect(lambda: self.task and self.sig_new_task_from.emit(
            self.task))
        session.sig_library_changed.connect(lambda: self.set_task(self.task))
        session.sig_model_changed.connect(lambda _model: self._fill_methods())
        self._fill_methods()

    def _fill_methods(self) -> None:
        chosen = self.method.currentText()
        self.method.clear()
        self.method.addItems([m.name for m in self.session.methods])
        if chosen:
            self.method.setCurrentText(chosen)

    def set_task(self, name: str) -> None:
        """Show task ``name``'s versions."""
        self.task = name
        self.version.blockSignals(True)
        self.version.clear()
        try:
            versions = self.session.library.list_versions(name) if name else []
        except PromptbankError:
            versions = []
        for v in sorted(versions, key=lambda v: -v.number):
            self.version.addItem(f"v{v.number} · {v.method}×{v.length}", v.number)
        self.version.blockSignals(False)
        self.task_label.setText(name or "Select a task on the left.")
        self.show_version()

    def _version_number(self) -> int | None:
        return self.version.currentData()

    def show_version(self) -> None:
        """Draw the chosen version's per-token norms (read locally) and say whether nearest
        tokens apply to it."""
        self.tokens.setRowCount(0)
        self.norm_plot.clear()
        self.tokens_button.setEnabled(False)
        number = self._version_number()
        if not self.task or number is None:
            self.status.setText("This task has no trained version yet." if self.task else "")
            return
        library = self.session.library
        try:
            version = library.get_version(self.task, number)
            method, norms = position_norms(library.read_version_bytes(version),
                                           self.session.methods)
        except PromptbankError as exc:
            self.status.setText(str(exc))
            return
        bars = pg.BarGraphItem(x=np.arange(len(norms)), height=norms, width=0.7,
                               brush="#60a5fa")
        self.norm_plot.addItem(bars)
        text = (f"{method} prompt of {len(norms)} virtual tokens; mean norm "
                f"{np.mean(norms):.3g}.")
        reason = self._no_tokens_reason(method)
        self.tokens_button.setEnabled(not reason)
        self.tokens_button.setToolTip(
            reason or "Ask the engine for the vocabulary tokens nearest to each virtual token.")
        self.status.setText(f"{text} {reason}".strip())
        self._fill_norms(norms)

    def _no_tokens_reason(self, method: str) -> str:
        """Why nearest tokens cannot be shown for a ``method`` version (empty if they can)."""
        info = next((m for m in self.session.methods if m.name == method), None)
        if info is None:
            return (f"Nearest tokens for this {method} version need the engine, which has not "
                    "started yet.")
        if not info.input_embeddings:
            return (f"Nearest tokens apply to input-level prompts only: a {method} version "
                    "is not made of input token vectors.")
        return ""

    def _fill_norms(self, norms: list[float]) -> None:
        self.tokens.setRowCount(len(norms))
        for row, n in enumerate(norms):
            self.tokens.setItem(row, 0, read_only_item(f"{n:.3g}"))

    def request_tokens(self) -> None:
        """Ask the engine for the nearest vocabulary tokens of each virtual token."""
        number = self._version_number()
        if not self.task or number is None or not self.tokens_button.isEnabled():
            return
        self.status.setText("Asking the engine…")
        self.session.op("nearest_tokens", {"task": self.task, "version": number, "k": 5}) \
            .on_success(self._on_tokens).on_failure(self.status.setText).run()

    def _on_tokens(self, near: NearTokens) -> None:
        self.tokens.setRowCount(max(self.tokens.rowCount(), len(near.tokens)))
        for row, tokens in enumerate(near.tokens):
            text = "  ".join(f"{t.get('token', '')!r} {t.get('score', 0):.2f}" for t in tokens)
            self.tokens.setItem(row, 1, read_only_item(text))
        self.tokens.resizeColumnsToContents()
        self.status.setText(f"Nearest tokens of v{near.version}.")

    def request_similarity(self) -> None:
        """Ask the engine for the task-by-task similarity of active prompts."""
        self.heat_status.setText("Asking the engine…")
        self.session.op("similarity", {"method": self.method.currentText()}) \
            .on_success(self.show_similarity).on_failure(self.heat_status.setText).run()

    def show_similarity(self, sim: Similarity) -> None:
        """Draw a similarity result as a heat map with each cell's value written in it."""
        names = list(sim.tasks)
        matrix = np.array(sim.matrix, dtype=float).reshape(len(names), len(names))
        self.heat_image.setImage(matrix.T, levels=(-1.0, 1.0))
        for label in self.heat_labels:
            self.heat.removeItem(label)
        self.heat_labels = []
        for row in range(len(names)):
            for col in range(len(names)):
                value = matrix[row, col]
                # Dark text on the light middle of the diverging map, white on its ends.
                colour = "#111827" if abs(value) < 0.6 else "#ffffff"
                label = pg.TextItem(f"{value:.2f}", color=colour, anchor=(0.5, 0.5))
                label.setPos(col + 0.5, row + 0.5)
                self.heat.addItem(label)
                self.heat_labels.append(label)
        # Numbers below (long names would overlap), numbered names on the left.
        self.heat.getAxis("bottom").setTicks([[(i + 0.5, str(i + 1)) for i in range(len(names))]])
        self.heat.getAxis("left").setTicks([[(i + 0.5, f"{i + 1} {n}")
                                             for i, n in enumerate(names)]])
        note = f"{len(names)} tasks compared (cosine of the mean prompt vectors, −1 to 1)."
        if sim.skipped:
            note += " Skipped: " + "; ".join(f"{s['task']} ({s['reason']})" for s in sim.skipped)
        self.heat_status.setText(note)
        self.sig_similarity_shown.emit(names)
