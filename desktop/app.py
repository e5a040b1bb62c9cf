"""Starts the desktop app: QApplication, the engine process, the session, the main window."""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Sequence

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from desktop.binding_check import binding_problem
from desktop.connection.process import EngineProcess
from desktop.crash_log import CrashLog
from desktop.main_window import MainWindow
from desktop.session import Session
from desktop.settings.dialog import BASES
from desktop.settings.remote_panel import ADDRESS_KEY
from engine.api import gpu_engine as engine_env
from engine.api.session import ModelDescription
from engine.library.examples import examples_dir


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="promptbank gui")
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--library")
    parser.add_argument("--engine", help="ssh://[user@]host[:port][/path/to/promptbank]: run "
                        "the engine there")
    parser.add_argument("--examples", action="store_true",
                        help="fill an empty library with the shipped examples (the engine "
                        "does it once it has started)")
    parser.add_argument("--check", action="store_true",
                        help="open the window, wait for the engine and its model, print what "
                        "was found as JSON and quit (checks an installation)")
    return parser.parse_args(argv)


def engine_threads(settings: QSettings) -> int:
    """The engine's thread count from the settings (0, also for a damaged value: automatic)."""
    value = str(settings.value("engine/threads", 0))
    return int(value) if value.isdigit() else 0


def exit_when_ready(app: QApplication, window: MainWindow, timeout_s: float = 300) -> None:
    """For ``--check``: quit with 0 once the model is loaded, 1 on an engine error."""
    def on_model(info: ModelDescription | None) -> None:
        if info is None and window.session.model_error:
            on_failure(window.session.model_error)
        elif info is not None:
            print(json.dumps({"window": window.windowTitle(), "visible": window.isVisible(),
                              "model": info.name, "device": info.device,
                              "gpu_engine": bool(window.engine.python),
                              "tasks": len(window.session.library.list_tasks())}), flush=True)
            app.exit(0)

    def on_failure(reason: str) -> None:
        print(f"promptbank gui: {reason}", file=sys.stderr, flush=True)
        app.exit(1)

    window.session.sig_model_changed.connect(on_model)
    window.engine.sig_crashed.connect(on_failure)
    QTimer.singleShot(int(timeout_s * 1000), lambda: on_failure("the engine was not ready "
                                                                 f"within {timeout_s:.0f} s"))


def build(args: argparse.Namespace, settings: QSettings) -> MainWindow:
    """The session and main window for ``args`` (settings fill what is not given)."""
    model = args.model or settings.value("engine/model", "default")
    device = args.device or settings.value("engine/device", "auto")
    library = args.library or settings.value("library/root", None) or None
    gpu = engine_env.status()
    engine = EngineProcess([], python=gpu.python if gpu.ready else None)
    examples = examples_dir() if args.examples else None
    quantize = str(settings.value("engine/quantize", "") or "")
    address = args.engine if args.engine is not None else \
        str(settings.value(ADDRESS_KEY, "") or "")
    session = Session(engine, library, model_spec=model, device=device, examples=examples,
                      threads=engine_threads(settings),
                      quantize=quantize if quantize in {value for _, value in BASES} else "",
                      engine_address=address)
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
    if args.check:
        exit_when_ready(app, window)
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
