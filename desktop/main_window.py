"""The main window: task library on the left, pages in the centre, engine state below."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.banner import CrashBanner
from desktop.batch.page import BatchPage
from desktop.inspect.page import InspectPage
from desktop.library.panel import LibraryPanel
from desktop.playground.page import PlaygroundPage
from desktop.session import Session
from desktop.settings.dialog import SettingsDialog
from desktop.status_bar import EngineStatus
from desktop.task_page.page import TaskPage
from desktop.training.jobs import JobTracker
from desktop.training.page import TrainingPage
from desktop.wizard.new_task import NewTaskWizard


class MainWindow(QMainWindow):
    """Promptbank's main window."""

    def __init__(self, session: Session, *, settings: QSettings | None = None) -> None:
        super().__init__()
        self.session = session
        self.engine = session.engine
        self.settings = settings or QSettings()
        self.setWindowTitle("Promptbank")
        self.resize(1200, 760)
        self.jobs = JobTracker(session, self)

        self.library = LibraryPanel(session)
        dock = QDockWidget("Tasks", self, objectName="libraryDock")
        dock.setWidget(self.library)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)

        self.task_page = TaskPage(session, self.jobs)
        self.playground = PlaygroundPage(session)
        self.training = TrainingPage(session, self.jobs)
        self.batch = BatchPage(session)
        self.inspect = InspectPage(session)
        self.tabs = QTabWidget()
        for page, title, tip in (
            (self.task_page, "Task", "The selected task: datasets, versions, lineage"),
            (self.playground, "Playground", "Try tasks on one input"),
            (self.training, "Training", "Training jobs, progress and curves"),
            (self.batch, "Batch apply", "Run tasks over every row of a file"),
            (self.inspect, "Inspect", "What a prompt is close to; how tasks relate"),
        ):
            self.tabs.setTabToolTip(self.tabs.addTab(page, title), tip)

        self.banner = CrashBanner()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 0)
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.status = EngineStatus(self.statusBar(), session, self.jobs)
        self._build_actions()

        self.library.sig_task_selected.connect(self.open_task)
        session.sig_task_opened.connect(self._open_task_by_request)
        self.task_page.sig_open_playground.connect(self._to_playground)
        self.task_page.sig_open_inspect.connect(self._to_inspect)
        self.training.sig_open_version.connect(self._open_version)
        self.inspect.sig_new_task_from.connect(self.new_task)
        self.engine.sig_crashed.connect(self.banner.show_reason)
        self.engine.sig_state.connect(self._on_engine_state)
        self.banner.sig_restart.connect(self.restart_engine)
        self._restore_layout()

    def _build_actions(self) -> None:
        menu_file = self.menuBar().addMenu("&File")
        menu_view = self.menuBar().addMenu("&View")
        menu_engine = self.menuBar().addMenu("&Engine")
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")

        def action(text: str, slot, shortcut: str | None = None, tip: str = "",
                   menu=menu_file, on_toolbar: bool = False) -> QAction:
            act = QAction(text, self)
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
            act.setToolTip(f"{tip} ({shortcut})" if shortcut and tip else tip or text)
            act.setStatusTip(tip)
            act.triggered.connect(slot)
            menu.addAction(act)
            if on_toolbar:
                toolbar.addAction(act)
            self.addAction(act)
            return act

        self.act_new = action("&New task…", self.new_task, "Ctrl+N",
                              "Create a task from a dataset file and train its first prompt",
                              on_toolbar=True)
        action("&Settings…", self.open_settings, "Ctrl+,", "Model, device and library location",
               on_toolbar=True)
        action("&Quit", self.close, "Ctrl+Q")
        action("Find task", self.library.focus_search, "Ctrl+K", "Focus the task search",
               menu=menu_view)
        action("Refresh", self.session.notify_library_changed, "F5",
               "Re-read the library (e.g. after using the command line)", menu=menu_view)
        for i, title in enumerate(("Task", "Playground", "Training", "Batch apply", "Inspect")):
            action(title, lambda _=False, i=i: self.tabs.setCurrentIndex(i), f"Alt+{i + 1}",
                   f"Show the {title} page", menu=menu_view)
        action("&Restart engine", self.restart_engine, None,
               "Stop and start the engine process", menu=menu_engine, on_toolbar=True)

    def open_task(self, name: str) -> None:
        """Show task ``name`` on the task, playground and inspect pages."""
        self.task_page.show_task(name)
        self.playground.set_task(name)
        self.inspect.set_task(name)

    def new_task(self, start_from: str = "") -> None:
        """Open the New-task wizard (optionally starting from another task's prompt)."""
        wizard = NewTaskWizard(self.session, self.jobs, self, start_from=start_from or "")
        wizard.sig_task_created.connect(self._on_task_created)
        wizard.open()

    def open_settings(self) -> None:
        """Open the Settings dialog."""
        SettingsDialog(self.session, self).open()

    def restart_engine(self) -> None:
        """Restart the engine process and hide the crash banner."""
        self.banner.hide()
        self.engine.restart(self.session.worker_args())

    def _on_engine_state(self, state: str, _detail: str) -> None:
        if state in ("starting", "ready"):
            self.banner.hide()

    def _on_task_created(self, name: str) -> None:
        self.session.notify_library_changed()
        self.library.select(name)

    def _open_task_by_request(self, name: str) -> None:
        self.library.select(name)
        self.tabs.setCurrentWidget(self.task_page)

    def _open_version(self, task: str) -> None:
        self.session.notify_library_changed()
        self._open_task_by_request(task)

    def _to_playground(self, name: str) -> None:
        self.playground.set_task(name)
        self.tabs.setCurrentWidget(self.playground)

    def _to_inspect(self, name: str) -> None:
        self.inspect.set_task(name)
        self.tabs.setCurrentWidget(self.inspect)

    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if isinstance(geometry, QByteArray | bytes):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray | bytes):
            self.restoreState(state)
        self.tabs.setCurrentIndex(int(self.settings.value("window/tab", 0)))

    def closeEvent(self, event) -> None:
        if any(j.active for j in self.jobs.jobs):
            answer = QMessageBox.question(
                self, "Training is running",
                "A training job is running. Quit anyway? It keeps its last checkpoint and "
                "can be resumed later.")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("window/tab", self.tabs.currentIndex())
        super().closeEvent(event)
