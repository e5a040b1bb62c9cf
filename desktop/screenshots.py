"""``python -m desktop.screenshots OUT``: render each main view offscreen to PNG files.

Uses a fresh library filled with the shipped examples (whatever resources/examples holds)
and the real engine; a view whose engine work fails or times out is still captured.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSettings
from PySide6.QtWidgets import QApplication, QWidget

from desktop.app import build, tear_down
from desktop.main_window import MainWindow
from desktop.settings.dialog import SettingsDialog
from desktop.widgets.training_settings import usable_init
from desktop.wizard.new_task import NewTaskWizard
from engine.paths import resources_dir

SIZE = (1280, 800)


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Run the event loop until ``condition()`` holds or ``timeout_s`` passes."""
    app = QApplication.instance()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def save(widget: QWidget, out: Path, name: str) -> Path:
    """Grab ``widget`` into ``out/name.png``."""
    wait_until(lambda: False, 0.3)
    path = out / f"{name}.png"
    widget.grab().save(str(path))
    print(f"wrote {path}")
    return path


def shoot(window: MainWindow, out: Path, *, steps: int, timeout_s: float) -> None:
    """Drive the window through its views, saving one PNG per view."""
    session = window.session
    wait_until(lambda: session.model is not None or window.engine.state == "error", timeout_s)
    tasks = [t.name for t in session.library.list_tasks()]
    first = tasks[0] if tasks else ""
    examples = resources_dir() / "examples"

    if first:
        window.library.select(first)
    window.tabs.setCurrentWidget(window.task_page)
    save(window, out, "library")

    wizard = NewTaskWizard(session, window.jobs, window)
    wizard.resize(900, 640)
    wizard.name_page.name.setText("my-task")
    wizard.show()
    wizard.next()
    data = next((p for p in sorted(examples.glob("*.jsonl"))), None)
    if data is not None:
        wizard.dataset_page.preview.load(str(data))
        wait_until(lambda: wizard.dataset_page.preview.examples != [], 10)
    save(wizard, out, "wizard")
    wizard.reject()

    if first and session.model is not None:
        task = session.library.get_task(first)
        # Evaluating a generate task means generating text, slow on a CPU: only classify
        # tasks get an evaluation curve in the shot.
        every = max(1, steps // 2) if task.kind == "classify" else 0
        config = usable_init({"method": "prefix", "length": 8, "init": "text", "steps": steps,
                              "batch_size": 4, "eval_every": every},
                             has_text=bool(task.instruction or task.description),
                             kind=task.kind)
        job = window.jobs.start(first, config)
        window.tabs.setCurrentWidget(window.training)
        wait_until(lambda: not job.active, timeout_s)
        window.training.select_job(job)
    window.tabs.setCurrentWidget(window.training)
    window.training.curves.flush()
    save(window, out, "training")

    page = window.playground
    window.tabs.setCurrentWidget(page)
    if first:
        page.set_task(first)
        rows = session.library.examples(first, "eval") or session.library.examples(first)
        page.input.setPlainText(rows[0].input if rows else "Hello!")
        page.compare.setChecked(True)
        page.max_tokens.setValue(24)
        done: list = []
        page.sig_finished.connect(done.append)
        page.sig_failed.connect(done.append)
        page.run()
        wait_until(lambda: bool(done), timeout_s)
    save(window, out, "playground")

    window.tabs.setCurrentWidget(window.batch)
    table = next((p for p in sorted(examples.glob("*.csv"))), None)
    if table is not None:
        window.batch.load(str(table))
        window.batch.set_tasks(tasks[:1])
    save(window, out, "batch")

    window.tabs.setCurrentWidget(window.inspect)
    if first:
        window.inspect.set_task(first)
        shown: list = []
        window.inspect.sig_similarity_shown.connect(shown.append)
        window.inspect.request_similarity()
        wait_until(lambda: bool(shown) or "Asking" not in window.inspect.heat_status.text(),
                   timeout_s)
    save(window, out, "inspect")

    dialog = SettingsDialog(session, window)
    dialog.show()
    save(dialog, out, "settings")
    dialog.reject()


def main(argv: list[str] | None = None) -> int:
    """Render the screenshots into the given folder."""
    parser = argparse.ArgumentParser(prog="python -m desktop.screenshots")
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", default="default")
    parser.add_argument("--steps", type=int, default=6, help="steps of the live training shot")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="promptbank-shots-") as scratch:
        settings = QSettings(str(Path(scratch) / "settings.ini"), QSettings.Format.IniFormat)
        ns = argparse.Namespace(model=args.model, device="cpu", examples=True,
                                library=str(Path(scratch) / "library"))
        window = build(ns, settings)
        window.resize(*SIZE)
        window.show()
        window.engine.start()
        try:
            shoot(window, args.out, steps=args.steps, timeout_s=args.timeout)
        finally:
            window.jobs.jobs.clear()
            tear_down(app, window)
            del window
    return 0


if __name__ == "__main__":
    sys.exit(main())
