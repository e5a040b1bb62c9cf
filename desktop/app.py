"""Starts the desktop app: QApplication, the engine process, the session, the main window."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from desktop.binding_check import binding_problem
from desktop.crash_log import CrashLog
from desktop.engine.process import EngineProcess
from desktop.main_window import MainWindow
from desktop.session import Session
from engine.paths import resources_dir


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="promptbank gui")
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--library")
    parser.add_argument("--examples", action="store_true",
                        help="fill an empty library with the shipped examples (the engine "
                        "does it once it has started)")
    return parser.parse_args(argv)


def build(args: argparse.Namespace, settings: QSettings) -> MainWindow:
    """The session and main window for ``args`` (settings fill what is not given)."""
    model = args.model or settings.value("engine/model", "default")
    device = args.device or settings.value("engine/device", "auto")
    library = args.library or settings.value("library/root", None) or None
    engine = EngineProcess([])
    examples = resources_dir() / "examples" if args.examples else None
    session = Session(engine, library, model_spec=model, device=device, examples=examples)
    engine.worker_args = session.worker_args()
    return MainWindow(session, settings=settings)


def tear_down(app: QApplication, window: MainWindow) -> None:
    """Stop the engine and delete the window while Qt is still alive; leaving the widgets to
    the interpreter's exit deletes them in no order, after QApplication, and can crash."""
    window.shut_down()
    window.close()
    window.deleteLater()
    app.processEvents()
    gc.collect()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the desktop app until its window closes."""
    args = parse_args(argv)
    crash_log = CrashLog()
    last_exit = crash_log.start()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Promptbank")
    app.setOrganizationName("Promptbank")
    window = build(args, QSettings())
    window.show()
    window.engine.start()
    problem = binding_problem()
    if problem:
        print(problem, file=sys.stderr)
        QTimer.singleShot(0, lambda: window.warn("Qt binding problem", problem))
    if last_exit is not None:
        QTimer.singleShot(0, lambda: window.report_unexpected_exit(last_exit))
    code = app.exec()
    tear_down(app, window)
    crash_log.stop()
    return code
