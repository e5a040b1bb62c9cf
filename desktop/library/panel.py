"""LibraryPanel: the task list with search, kind badges, active version and fit state."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.library.summary import TaskSummary, summarize_tasks
from desktop.session import Session
from desktop.widgets.tone import set_tone, tone_colour

KIND_COLOURS = {"classify": "#3b82f6", "generate": "#10b981", "extract": "#f59e0b"}
FIT_ROLE = Qt.ItemDataRole.UserRole + 1
NO_TASKS = "No tasks yet. Press Ctrl+N to create one from a dataset file."


def kind_badge(kind: str) -> QIcon:
    """A small round badge with the kind's first letter, coloured by kind."""
    pix = QPixmap(22, 22)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(KIND_COLOURS.get(kind, "#6b7280")))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawEllipse(1, 1, 20, 20)
    painter.setPen(QColor("white"))
    painter.drawText(pix.rect(), Qt.AlignmentFlag.AlignCenter, (kind[:1] or "?").upper())
    painter.end()
    return QIcon(pix)


class LibraryPanel(QWidget):
    """The left-hand list of tasks; emits the selected task's name."""

    sig_task_selected = Signal(str)
    """The user selected a task (its name)."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.summaries: list[TaskSummary] = []
        self.search = QLineEdit(placeholderText="Search tasks (Ctrl+K)")
        self.search.setClearButtonEnabled(True)
        self.search.setToolTip("Filter the tasks by name, kind or description.")
        self.list = QListWidget()
        self.list.setToolTip("Your tasks. Greyed-out tasks have prompts that do not fit the "
                             "loaded model; hover one to see why.")
        self.empty = QLabel(NO_TASKS)
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty)
        self.search.textChanged.connect(self._apply_filter)
        self.list.currentItemChanged.connect(self._on_current)
        session.sig_library_changed.connect(self.refresh)
        session.sig_model_changed.connect(lambda _info: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        """Re-read the catalogue, keeping the current selection."""
        current = self.current_task()
        self.summaries = summarize_tasks(self.session)
        self.list.blockSignals(True)
        self.list.clear()
        for s in self.summaries:
            item = QListWidgetItem(kind_badge(s.kind), f"{s.name}\n{s.caption}")
            item.setData(Qt.ItemDataRole.UserRole, s.name)
            item.setData(FIT_ROLE, not s.fit_problem)
            if s.fit_problem:
                item.setForeground(QBrush(QColor(tone_colour("muted", self.list.palette()))))
                item.setToolTip(s.fit_problem)
            else:
                item.setToolTip(s.description or s.name)
            self.list.addItem(item)
        self.list.blockSignals(False)
        self._apply_filter(self.search.text())
        # A catalogue that cannot be read is said so, with its remedy, not shown as empty.
        problem = self.session.library_problem
        self.empty.setText(problem or NO_TASKS)
        set_tone(self.empty, "error" if problem else None)
        self.empty.setVisible(bool(problem) or not self.summaries)
        if current:
            self.select(current, emit=False)

    def current_task(self) -> str:
        """The selected task's name, or ""."""
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else ""

    def select(self, name: str, *, emit: bool = True) -> None:
        """Select the task called ``name`` (if listed)."""
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == name:
                self.list.blockSignals(not emit)
                self.list.setCurrentItem(item)
                self.list.blockSignals(False)
                return

    def task_names(self) -> list[str]:
        """Names of the tasks currently shown (after the search filter)."""
        return [self.list.item(r).data(Qt.ItemDataRole.UserRole)
                for r in range(self.list.count()) if not self.list.item(r).isHidden()]

    def focus_search(self) -> None:
        """Put the cursor in the search box (Ctrl+K)."""
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def _apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        for row, s in enumerate(self.summaries):
            hay = f"{s.name} {s.kind} {s.description}".lower()
            self.list.item(row).setHidden(bool(needle) and needle not in hay)

    def _on_current(self, item: QListWidgetItem | None, _previous) -> None:
        if item is not None:
            self.sig_task_selected.emit(item.data(Qt.ItemDataRole.UserRole))
