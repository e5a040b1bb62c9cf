"""InspectPage: nearest tokens and norms per virtual token; a task-similarity heat map."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.inspect.norms import position_norms
from desktop.session import Session
from engine.errors import PromptbankError

NOTE = ("Nearest tokens are a rough projection, not a faithful reading of the prompt: trained "
        "vectors usually sit far from every real token.")


class InspectPage(QWidget):
    """Looks inside one task's prompt versions and compares tasks with each other."""

    sig_new_task_from = Signal(str)
    """Start a new task from this task's prompt (its name)."""
    sig_similarity_shown = Signal(list)
    """The heat map was drawn for these task names."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.task = ""
        self.version = QComboBox()
        self.version.setToolTip("The prompt version to inspect.")
        self.task_label = QLabel("Select a task on the left.")
        self.task_label.setStyleSheet("font-weight: bold;")
        self.tokens_button = QPushButton("Nearest tokens")
        self.tokens_button.setToolTip("Ask the engine for the vocabulary tokens nearest to "
                                      "each virtual token (prompt method only).")
        note = QLabel(NOTE)
        note.setWordWrap(True)
        note.setStyleSheet("color: #6b7280; font-style: italic;")
        self.tokens = QTableWidget(0, 2)
        self.tokens.setHorizontalHeaderLabels(["norm", "nearest tokens (cosine)"])
        self.tokens.horizontalHeader().setStretchLastSection(True)
        self.norm_plot = pg.PlotWidget(title="Norm per virtual token")
        self.norm_plot.setLabel("bottom", "position")
        self.norm_plot.setMaximumHeight(220)
        self.status = QLabel()
        self.status.setWordWrap(True)

        head = QHBoxLayout()
        head.addWidget(self.task_label)
        head.addWidget(QLabel("Version"))
        head.addWidget(self.version)
        head.addWidget(self.tokens_button)
        head.addStretch(1)
        left = QGroupBox("This prompt")
        ll = QVBoxLayout(left)
        ll.addLayout(head)
        ll.addWidget(note)
        ll.addWidget(self.tokens, 1)
        ll.addWidget(self.norm_plot)
        ll.addWidget(self.status)

        self.method = QComboBox()
        self.method.addItems(["prefix", "prompt"])
        self.method.setToolTip("Only prompts of one method can be compared.")
        self.heat_button = QPushButton("Similarity map")
        self.heat_button.setToolTip("Cosine similarity of every task's active prompt.")
        self.start_from = QPushButton("Use as starting point…")
        self.start_from.setToolTip("Create a new task whose prompt starts from this task's "
                                   "prompt (transfer; helps when the tasks are similar).")
        self.heat = pg.PlotWidget(title="Task similarity")
        self.heat_image = pg.ImageItem()
        self.heat.addItem(self.heat_image)
        self.heat.setAspectLocked(True)
        self.heat_status = QLabel()
        self.heat_status.setWordWrap(True)
        right = QGroupBox("Across tasks")
        rl = QVBoxLayout(right)
        rrow = QHBoxLayout()
        rrow.addWidget(QLabel("Method"))
        rrow.addWidget(self.method)
        rrow.addWidget(self.heat_button)
        rrow.addWidget(self.start_from)
        rrow.addStretch(1)
        rl.addLayout(rrow)
        rl.addWidget(self.heat, 1)
        rl.addWidget(self.heat_status)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        QVBoxLayout(self).addWidget(split)

        self.version.currentIndexChanged.connect(lambda _i: self.show_norms())
        self.tokens_button.clicked.connect(self.request_tokens)
        self.heat_button.clicked.connect(self.request_similarity)
        self.start_from.clicked.connect(lambda: self.task and self.sig_new_task_from.emit(
            self.task))
        session.sig_library_changed.connect(lambda: self.set_task(self.task))

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
        self.tokens.setRowCount(0)
        self.show_norms()

    def _version_number(self) -> int | None:
        return self.version.currentData()

    def show_norms(self) -> None:
        """Draw the norm of each virtual token of the chosen version (read locally)."""
        self.norm_plot.clear()
        number = self._version_number()
        if not self.task or number is None:
            self.status.setText("This task has no trained version yet." if self.task else "")
            return
        library = self.session.library
        try:
            version = library.get_version(self.task, number)
            method, norms = position_norms(library.read_version_bytes(version))
        except PromptbankError as exc:
            self.status.setText(str(exc))
            return
        bars = pg.BarGraphItem(x=np.arange(len(norms)), height=norms, width=0.7,
                               brush="#60a5fa")
        self.norm_plot.addItem(bars)
        self.status.setText(f"{method} prompt of {len(norms)} virtual tokens; mean norm "
                            f"{np.mean(norms):.3g}.")
        self._fill_norms(norms)

    def _fill_norms(self, norms: list[float]) -> None:
        self.tokens.setRowCount(len(norms))
        for row, n in enumerate(norms):
            self.tokens.setItem(row, 0, QTableWidgetItem(f"{n:.3g}"))

    def request_tokens(self) -> None:
        """Ask the engine for the nearest vocabulary tokens of each virtual token."""
        number = self._version_number()
        if not self.task or number is None:
            return
        self.status.setText("Asking the engine…")
        self.session.op("nearest_tokens", {"task": self.task, "version": number, "k": 5}) \
            .on_success(self._on_tokens).on_failure(self.status.setText).run()

    def _on_tokens(self, data: dict) -> None:
        rows = data.get("tokens", [])
        self.tokens.setRowCount(max(self.tokens.rowCount(), len(rows)))
        for row, near in enumerate(rows):
            text = "  ".join(f"{t.get('token', '')!r} {t.get('score', 0):.2f}" for t in near)
            self.tokens.setItem(row, 1, QTableWidgetItem(text))
        self.tokens.resizeColumnsToContents()
        self.status.setText(f"Nearest tokens of v{data.get('version')}.")

    def request_similarity(self) -> None:
        """Ask the engine for the task-by-task similarity of active prompts."""
        self.heat_status.setText("Asking the engine…")
        self.session.op("similarity", {"method": self.method.currentText()}) \
            .on_success(self.show_similarity).on_failure(self.heat_status.setText).run()

    def show_similarity(self, data: dict) -> None:
        """Draw a similarity result ``{tasks, matrix, skipped}`` as a heat map."""
        names = list(data.get("tasks", []))
        matrix = np.array(data.get("matrix", []), dtype=float).reshape(len(names), len(names))
        self.heat_image.setImage(matrix.T, levels=(-1.0, 1.0))
        self.heat_image.setColorMap(pg.colormap.get("CET-D1"))
        ticks = [[(i + 0.5, n) for i, n in enumerate(names)]]
        self.heat.getAxis("bottom").setTicks(ticks)
        self.heat.getAxis("left").setTicks(ticks)
        skipped = data.get("skipped", [])
        note = f"{len(names)} tasks compared."
        if skipped:
            note += " Skipped: " + "; ".join(f"{s['task']} ({s['reason']})" for s in skipped)
        self.heat_status.setText(note)
        self.sig_similarity_shown.emit(names)
