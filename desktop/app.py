"""Starts the desktop app: QApplication, the engine process, the main window."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from PySide6.QtWidgets import QApplication

from desktop.engine.process import EngineProcess
from desktop.main_window import MainWindow


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="promptbank gui")
    parser.add_argument("--model", default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--library")
    parser.add_argument("--examples", action="store_true")
    return parser.parse_args(argv)


def worker_args(args: argparse.Namespace) -> list[str]:
    """Global options passed on to ``promptbank worker``."""
    out = ["--model", args.model, "--device", args.device]
    if args.library:
        out += ["--library", args.library]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the desktop app until its window closes."""
    args = parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Promptbank")
    app.setOrganizationName("Promptbank")
    engine = EngineProcess(worker_args(args))
    window = MainWindow(engine)
    window.show()
    engine.start()
    code = app.exec()
    engine.stop()
    return code
