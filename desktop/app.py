"""Starts the desktop app: QApplication, the engine process, the session, the main window."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

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


def engine_threads(settings: QSettings) -> int:
    """The engine's thread count from the settings (0, also for a damaged value: automatic)."""
    value = str(settings.value("engine/threads", 0))
    return int(value) if value.isdigit() else 0


def build(args: argparse.Namespace, settings: QSettings) -> MainWindow:
    """The session and main window for ``args`` (settings fill what is not given)."""
    model = args.model or settings.value("engine/model", "default")
    device = args.device or settings.value("engine/device", "auto")
    library = args.library or settings.value("library/root", None) or None
    engine = EngineProcess([])
    examples = resources_dir() / "examples" if args.examples else None
    session = Session(engine, library, model_spec=model, device=device, examples=examples,
                      threads=engine_threads(settings))
    engine.worker_args = session.worker_args()
    return MainWindow(session, settings=settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the desktop app until its window closes."""
    args = parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Promptbank")
    app.setOrganizationName("Promptbank")
    window = build(args, QSettings())
    window.show()
    window.engine.start()
    code = app.exec()
    window.engine.stop()
    return code
