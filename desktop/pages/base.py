"""Page: what every tab of the main window is — a title, a tip, and the task it shows."""

from __future__ import annotations

from typing import ClassVar

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QWidget

from desktop.jobs import JobTracker
from desktop.session import Session


class Page(QWidget):
    """One tab of the main window; it follows the task selected in the library."""

    KEY: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    TIP: ClassVar[str] = ""

    sig_show_task = Signal(str, str)
    """Show a task on another page: (page key, task name)."""
    sig_new_task_from = Signal(str)
    """Open the New-task wizard starting from this task's prompt (its name)."""

    def __init__(self, session: Session, jobs: JobTracker, parent: QWidget | None = None,
                 settings: QSettings | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.jobs = jobs
        # The window's settings (a test's own file), where a page keeps what it remembers.
        self.settings = settings if settings is not None else QSettings()

    def set_task(self, name: str) -> None:
        """Show task ``name`` ("" for none); pages that do not follow the selection ignore it."""
