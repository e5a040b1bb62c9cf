"""The main window: task library on the left, pages in the centre, engine state below."""

from __future__ import annotations

from urllib.parse import urlsplit

from PySide6.QtCore import QByteArray, QEvent, QSettings, Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QStyle,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.banner import CrashBanner
from desktop.crash_log import UnexpectedExit
from desktop.help.check_dialog import CheckDialog
from desktop.help.guide import GuideDialog, about_text
from desktop.jobs import JobState, JobTracker
from desktop.library.import_dialog import ImportDialog
from desktop.library.panel import LibraryPanel
from desktop.pages.base import Page
from desktop.pages.registry import PAGES
from desktop.server.controller import LocalServer
from desktop.server.dialog import ServerDialog
from desktop.session import Session
from desktop.settings.dialog import SettingsDialog
from desktop.status_bar import EngineStatus
from desktop.widgets.tone import retone
from desktop.wizard.new_task import NewTaskWizard


def scrolling(page: QWidget) -> QScrollArea:
    """A page in a scroll area: on a small screen (1024×700, or 1280×720 at 150 %) its
    controls scroll into view instead of pushing the window past the screen's edge."""
    area = QScrollArea()
    area.setWidget(page)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    return area


KIND_WORDS = {"train": "Training", "continue": "Continued training", "joint": "Joint training",
              "resume": "Resumed training"}


def finished_text(job: JobState) -> str:
    """One sentence on how a run ended: its version, or why it stopped."""
    what = f"{KIND_WORDS.get(job.kind, job.kind.capitalize())} of {job.task}"
    if job.status == "done":
        return f"{what} finished" + (f": saved v{job.version}." if job.version else ".")
    if job.status == "failed":
        return f"{what} failed: {job.message}"
    return f"{what} {job.status} at step {job.step}; it can be resumed from the Training tab."


def quit_text(active: list[JobState]) -> str:
    """What quitting does to each running and queued job, for the question before it."""
    lines = []
    for job in active:
        if job.status == "running":
            lines.append(f"• {job.task} ({job.kind}, step {job.step} of {job.total}): stops at "
                         "a checkpoint and goes on from it when Promptbank next starts.")
        else:
            lines.append(f"• {job.task} ({job.kind}, queued): queued again with its settings "
                         "when Promptbank next starts.")
    return "Quit now?\n\n" + "\n".join(lines)


class MainWindow(QMainWindow):
    """Promptbank's main window; its tabs are the pages of ``desktop.pages.registry``."""

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

        self.tabs = QTabWidget()
        self.pages: dict[str, Page] = {}
        for cls in PAGES:
            page = cls(session, self.jobs, settings=self.settings)
            self.pages[cls.KEY] = page
            self.tabs.setTabToolTip(self.tabs.addTab(scrolling(page), cls.TITLE), cls.TIP)
            page.sig_show_task.connect(self.show_task_on)
            page.sig_new_task_from.connect(self.new_task)

        self.banner = CrashBanner()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 0)
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.status = EngineStatus(self.statusBar(), session, self.jobs)
        self.server = LocalServer(session, self.settings, self)
        self.server_dialog: ServerDialog | None = None
        self.server_label = QLabel()
        self.server_label.hide()
        self.statusBar().addPermanentWidget(self.server_label)
        self.server.sig_state.connect(self._show_server)
        self._build_actions()

        self.library.sig_task_selected.connect(self.open_task)
        session.sig_task_opened.connect(lambda name: self.show_task_on("task", name))
        self.engine.sig_crashed.connect(self.banner.show_reason)
        self.session.sig_notice.connect(lambda text: self.statusBar().showMessage(text, 20_000))
        self.jobs.sig_job_finished.connect(self._on_job_finished)
        self.engine.sig_state.connect(self._on_engine_state)
        self.banner.sig_restart.connect(self.restart_engine)
        self._restore_layout()

    # The pages by name, for code that drives the window (tests, screenshots).
    @property
    def task_page(self) -> Page:
        return self.pages["task"]

    @property
    def playground(self) -> Page:
        return self.pages["playground"]

    @property
    def training(self) -> Page:
        return self.pages["training"]

    @property
    def batch(self) -> Page:
        return self.pages["batch"]

    @property
    def inspect(self) -> Page:
        return self.pages["inspect"]

    def _build_actions(self) -> None:
        menu_file = self.menuBar().addMenu("&File")
        menu_view = self.menuBar().addMenu("&View")
        menu_engine = self.menuBar().addMenu("&Engine")
        menu_help = self.menuBar().addMenu("&Help")
        toolbar = self.addToolBar("Main")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.setObjectName("mainToolbar")

        def action(text: str, slot, shortcut: str | None = None, tip: str = "",
                   menu=menu_file, on_toolbar: bool = False,
                   icon: QStyle.StandardPixmap | None = None) -> QAction:
            act = QAction(text, self)
            if icon is not None:  # the platform's own icons, so they match its other apps
                act.setIcon(self.style().standardIcon(icon))
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

        self.act_new = action("&New task…", lambda: self.new_task(), "Ctrl+N",
                              "Create a task from a dataset file and train its first prompt",
                              on_toolbar=True, icon=QStyle.StandardPixmap.SP_FileIcon)
        action("&Import…", self.import_prompts, "Ctrl+I",
               "Import a prompt pack, PEFT adapter, KoboldAI soft prompt or prompt file",
               on_toolbar=True, icon=QStyle.StandardPixmap.SP_DialogOpenButton)
        action("&Settings…", self.open_settings, "Ctrl+,", "Model, device and library location",
               on_toolbar=True, icon=QStyle.StandardPixmap.SP_FileDialogDetailedView)
        action("&Quit", self.close, "Ctrl+Q")
        action("Find task", self.library.focus_search, "Ctrl+K", "Focus the task search",
               menu=menu_view)
        action("Refresh", self.session.notify_library_changed, "F5",
               "Re-read the library (e.g. after using the command line)", menu=menu_view)
        for i, cls in enumerate(PAGES):
            action(cls.TITLE, lambda _=False, i=i: self.tabs.setCurrentIndex(i), f"Alt+{i + 1}",
                   f"Show the {cls.TITLE} page", menu=menu_view)
        action("&Restart engine", self.restart_engine, None,
               "Stop and start the engine process", menu=menu_engine, on_toolbar=True,
               icon=QStyle.StandardPixmap.SP_BrowserReload)
        action("&Local server…", self.open_server, None,
               "Serve every task to other programs through the OpenAI API", menu=menu_engine)
        action("&Guide", self.open_guide, "F1",
               "What a soft prompt is, the methods, replay and anchor, reading the metrics",
               menu=menu_help, icon=QStyle.StandardPixmap.SP_DialogHelpButton)
        action("&Check this computer…", self.check_computer, None,
               "Test and time Promptbank on this computer, with a table for bug reports",
               menu=menu_help)
        action("&About Promptbank", self.about, None, "Versions, the model and the library",
               menu=menu_help)

    def open_server(self) -> ServerDialog:
        """Show the local server's dialog (one, kept while the window lives)."""
        if self.server_dialog is None:
            self.server_dialog = ServerDialog(self.server, self)
        self.server_dialog.show()
        self.server_dialog.raise_()
        return self.server_dialog

    def _show_server(self, state) -> None:
        self.server_label.setVisible(state.running)
        self.server_label.setText(f"Serving :{urlsplit(state.url).port}" if state.running
                                  else "")
        self.server_label.setToolTip(f"The local OpenAI-compatible server: {state.url} "
                                     "(Engine → Local server…)")

    def open_guide(self) -> GuideDialog:
        """Open the built-in guide (F1)."""
        dialog = GuideDialog(self)
        dialog.open()
        return dialog

    def about(self) -> None:
        """Versions, the loaded model and the library folder."""
        QMessageBox.about(self, "About Promptbank", about_text(self.session))

    def open_task(self, name: str) -> None:
        """Show task ``name`` on every page that follows the selection."""
        for page in self.pages.values():
            page.set_task(name)

    def show_task_on(self, key: str, name: str) -> None:
        """Select task ``name`` and bring page ``key`` to the front."""
        if name and self.library.current_task() != name:
            self.library.select(name)
        if name:
            self.pages[key].set_task(name)
        self.tabs.setCurrentIndex(list(self.pages).index(key))

    def new_task(self, start_from: str = "") -> None:
        """Open the New-task wizard (optionally starting from another task's prompt)."""
        wizard = NewTaskWizard(self.session, self.jobs, self, start_from=start_from or "")
        wizard.sig_task_created.connect(self._on_task_created)
        wizard.open()

    def import_prompts(self) -> ImportDialog:
        """Open the Import dialog."""
        dialog = ImportDialog(self.session, self)
        dialog.open()
        return dialog

    def open_settings(self) -> None:
        """Open the Settings dialog."""
        SettingsDialog(self.session, self).open()

    def check_computer(self) -> CheckDialog:
        """Open Help → Check this computer."""
        dialog = CheckDialog(self.session, self)
        dialog.open()
        return dialog

    def restart_engine(self) -> None:
        """Restart the engine process and hide the crash banner."""
        self.banner.hide()
        self.engine.restart(self.session.worker_args())

    def report_unexpected_exit(self, last: UnexpectedExit) -> QMessageBox:
        """Say that the last session closed unexpectedly and offer its fault log."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Promptbank closed unexpectedly",
                          "Promptbank closed unexpectedly last time. Your library is safe; "
                          "interrupted training runs can be resumed from the Training page.",
                          QMessageBox.StandardButton.Close, self)
        if last.log is not None:
            box.setInformativeText(f"What it wrote as it closed is in {last.log}.")
            open_log = box.addButton("Open the log", QMessageBox.ButtonRole.ActionRole)
            open_log.clicked.connect(lambda: QDesktopServices.openUrl(
                QUrl.fromLocalFile(str(last.log))))
        box.open()
        return box

    def warn(self, title: str, text: str) -> QMessageBox:
        """A warning the user can read while the app goes on."""
        box = QMessageBox(QMessageBox.Icon.Warning, title, text,
                          QMessageBox.StandardButton.Ok, self)
        box.open()
        return box

    def _on_engine_state(self, state: str, _detail: str) -> None:
        if state in ("starting", "ready"):
            self.banner.hide()

    def _on_task_created(self, name: str) -> None:
        self.session.notify_library_changed()
        self.library.select(name)
        if any(j.active and j.task == name for j in self.jobs.jobs):
            self.show_task_on("training", name)  # its first run is what happens next

    def _on_job_finished(self, job: JobState) -> None:
        """Say that a run ended, and draw the user's eye when the window is not in front."""
        self.session.sig_notice.emit(finished_text(job))
        QApplication.alert(self)

    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if isinstance(geometry, QByteArray | bytes):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray | bytes):
            self.restoreState(state)
        for split in self._named_splitters():
            sizes = self.settings.value(f"splitter/{split.objectName()}")
            if isinstance(sizes, QByteArray | bytes):
                split.restoreState(sizes)
        self.tabs.setCurrentIndex(int(self.settings.value("window/tab", 0)))

    def _named_splitters(self) -> list[QSplitter]:
        """The pages' splitters whose sizes are kept across restarts (those with a name)."""
        return [split for split in self.findChildren(QSplitter) if split.objectName()]

    def changeEvent(self, event: QEvent) -> None:
        # The system switched between light and dark: toned text follows the new palette.
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            retone(self)
        super().changeEvent(event)

    def closeEvent(self, event) -> None:
        active = [j for j in self.jobs.jobs if j.active]
        if active:
            answer = QMessageBox.question(self, "Training jobs", quit_text(active))
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.jobs.freeze()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("window/tab", self.tabs.currentIndex())
        for split in self._named_splitters():
            self.settings.setValue(f"splitter/{split.objectName()}", split.saveState())
        super().closeEvent(event)

    def shut_down(self) -> None:
        """Stop the engine while every widget still exists: its last events (and the
        failures of requests still open) reach no page, because none is listening."""
        self.engine.forget_all()
        self.engine.stop()
