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
from desktop.crash_log import UnexpectedExit, log_folder
from desktop.main_window import MainWindow
from desktop.pages.task.dialogs import CompareDialog, TrainDialog
from desktop.settings.dialog import SettingsDialog
from desktop.widgets.tone import dark_palette
from desktop.widgets.training_settings import measured_pace
from desktop.wizard.new_task import NewTaskWizard
from engine.library.examples import examples_dir

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


def _pick_task(session, kind: str) -> str:
    """A task of ``kind`` (the first by name), else the first task, else ""."""
    tasks = sorted(session.library.list_tasks(), key=lambda t: t.name)
    return next((t.name for t in tasks if t.kind == kind), tasks[0].name if tasks else "")


def _evaluate(window: MainWindow, requests: list[dict], timeout_s: float) -> None:
    panel = window.task_page.evaluations
    done: list = []
    panel.sig_evaluated.connect(done.append)
    panel.sig_failed.connect(done.append)
    panel.start(requests)
    wait_until(lambda: len(done) >= len(requests) or panel.op is None, timeout_s)


def shoot(window: MainWindow, out: Path, *, steps: int, timeout_s: float) -> None:
    """Drive the window through its views, saving one PNG per view."""
    session = window.session
    wait_until(lambda: session.model is not None or window.engine.state == "error", timeout_s)
    first = _pick_task(session, "classify")
    examples = examples_dir()
    _shoot_library(window, out, first, timeout_s)
    _shoot_wizard(window, out, examples)
    _shoot_training(window, out, first, steps, timeout_s)
    _shoot_versions(window, out, first, timeout_s)
    _shoot_playground(window, out, first, timeout_s)
    _shoot_batch(window, out, examples, first, timeout_s)
    _shoot_inspect(window, out, first, timeout_s)
    _shoot_dialogs(window, out, examples)
    _shoot_dark(window, out, first)


def _shoot_dark(window: MainWindow, out: Path, first: str) -> None:
    """The task view after the system switched to dark mode."""
    app = QApplication.instance()
    light = app.palette()
    app.setPalette(dark_palette(light))
    try:
        window.show_task_on("task", first)
        app.processEvents()
        save(window, out, "library-dark")
    finally:
        app.setPalette(light)


def _shoot_library(window: MainWindow, out: Path, first: str, timeout_s: float) -> None:
    session = window.session
    if first:
        window.library.select(first)
        window.show_task_on("task", "")
        if session.model is not None:
            _evaluate(window, [{"task": first, "version": 1},
                               {"task": first, "baseline": "fewshot"}], timeout_s)
    window.show_task_on("task", "")
    save(window, out, "library")


def _shoot_wizard(window: MainWindow, out: Path, examples: Path) -> None:
    wizard = NewTaskWizard(window.session, window.jobs, window)
    wizard.resize(900, 640)
    wizard.name_page.name.setText("my-task")
    wizard.name_page.kind.setCurrentText("classify")
    wizard.show()
    wizard.next()
    data = next((p for p in sorted(examples.glob("*.csv"))), None)
    if data is not None:
        wizard.dataset_page.preview.load(str(data))
        wait_until(lambda: wizard.dataset_page.preview.examples != [], 10)
    save(wizard, out, "wizard")
    wizard.reject()


def _shoot_training(window: MainWindow, out: Path, first: str, steps: int,
                    timeout_s: float) -> None:
    session = window.session
    if first and session.model is not None:
        config = {"method": "prefix", "length": 8, "steps": steps, "batch_size": 4,
                  "eval_every": max(1, steps // 3)}
        job = window.jobs.start(first, config)
        window.show_task_on("training", "")
        wait_until(lambda: not job.active, timeout_s)
        window.training.select_job(job)
    window.show_task_on("training", "")
    window.training.curves.flush()
    save(window, out, "training")


def _shoot_versions(window: MainWindow, out: Path, first: str, timeout_s: float) -> None:
    """The compare and continue-training dialogs (only once the task has two versions)."""
    session = window.session
    if first and len(session.library.list_versions(first)) >= 2:
        window.library.select(first)
        _evaluate(window, [{"task": first, "version": 2}], timeout_s)
        versions = session.library.list_versions(first)[:2]
        compare = CompareDialog(versions, session.library.list_evaluations(first), window)
        compare.resize(720, 420)
        compare.show()
        save(compare, out, "compare")
        compare.reject()
        dialog = TrainDialog(first, [first], window, parent_version=versions[-1],
                             seconds_per_step=measured_pace(session.library.list_runs()))
        dialog.settings.advanced.setChecked(True)
        dialog.resize(620, 560)
        dialog.show()
        save(dialog, out, "continue")
        dialog.reject()


def _shoot_playground(window: MainWindow, out: Path, first: str, timeout_s: float) -> None:
    session = window.session
    page = window.playground
    window.show_task_on("playground", "")
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


def _shoot_batch(window: MainWindow, out: Path, examples: Path, first: str,
                 timeout_s: float) -> None:
    window.show_task_on("batch", "")
    table = next((p for p in sorted(examples.glob("*.csv"))), None)
    if table is not None and first:
        batch = window.batch
        batch.load(str(table))
        batch.output.setText(str(out / f"{table.stem}.out.csv"))
        batch.overwrite.setChecked(True)
        batch.set_tasks([first])
        finished: list = []
        batch.sig_finished.connect(finished.append)
        batch.sig_failed.connect(finished.append)
        batch.run()
        wait_until(lambda: bool(finished), timeout_s)
        Path(batch.output.text()).unlink(missing_ok=True)
    save(window, out, "batch")


def _shoot_inspect(window: MainWindow, out: Path, first: str, timeout_s: float) -> None:
    window.show_task_on("inspect", "")
    if first:
        window.inspect.set_task(first)
        window.inspect.method.setCurrentText("prefix")
        shown: list = []
        window.inspect.sig_similarity_shown.connect(shown.append)
        window.inspect.request_similarity()
        wait_until(lambda: bool(shown) or "Asking" not in window.inspect.heat_status.text(),
                   timeout_s)
    save(window, out, "inspect")


def _shoot_dialogs(window: MainWindow, out: Path, examples: Path) -> None:
    """The import, settings, local-server and unexpected-exit dialogs."""
    importer = window.import_prompts()
    importer.path.setText(str(examples / "prompts"))
    save(importer, out, "import")
    importer.reject()

    dialog = SettingsDialog(window.session, window)
    dialog.show()
    save(dialog, out, "settings")
    dialog.reject()

    server = window.open_server()
    save(server, out, "server")
    server.close()

    box = window.report_unexpected_exit(UnexpectedExit(log_folder() / "crash-example.log"))
    save(box, out, "unexpected-exit")
    box.reject()


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
