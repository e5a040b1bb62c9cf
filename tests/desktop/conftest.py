"""Desktop fixtures: an offscreen main window on a fresh library, with the real engine process
running the tiny model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ENGINE_START_MS = 90_000
SENTIMENT = [
    ("the movie was great and the acting was wonderful", "positive"),
    ("a terrible boring film with bad jokes", "negative"),
    ("wonderful acting , great movie", "positive"),
    ("bad jokes , boring", "negative"),
    ("great great wonderful", "positive"),
    ("terrible bad boring film", "negative"),
    ("the acting was great", "positive"),
    ("the film was terrible", "negative"),
    ("wonderful", "positive"),
    ("boring", "negative"),
]


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    """Write input/output rows as JSONL."""
    path.write_text("".join(json.dumps({"input": i, "output": o}) + "\n" for i, o in rows),
                    encoding="utf-8")
    return path


@pytest.fixture
def sentiment_file(tmp_path: Path) -> Path:
    """A small classification dataset the tiny tokenizer knows the words of."""
    return write_jsonl(tmp_path / "sentiment.jsonl", SENTIMENT)


@pytest.fixture
def settings(tmp_path: Path):
    """QSettings in a temporary INI file, so tests never touch the user's settings."""
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def library_root(tmp_path: Path) -> Path:
    """This test's library folder."""
    return tmp_path / "library"


def writer(window):
    """A second, writable handle on the window's library: test set-up plays another process
    (the command line) changing the library; the desktop itself only reads it."""
    from engine.library import Library

    return Library(window.session.library.root)


def make_window(qtbot, library_root: Path, settings, model: str):
    """A main window whose session would run ``model``; the engine is not started."""
    from desktop.connection.process import EngineProcess
    from desktop.main_window import MainWindow
    from desktop.session import Session

    engine = EngineProcess([])
    session = Session(engine, library_root, model_spec=model, device="cpu")
    engine.worker_args = session.worker_args()
    window = MainWindow(session, settings=settings)
    if qtbot is not None:
        qtbot.addWidget(window)
    return window


@pytest.fixture
def offline_window(qtbot, library_root: Path, settings):
    """The main window without an engine process (library-only behaviour)."""
    window = make_window(qtbot, library_root, settings, "default")
    window.show()
    yield window
    window.jobs.jobs.clear()


@pytest.fixture(scope="module")
def engine_window(qapp, request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    """One main window per module with the real engine process on the tiny model.

    Starting the engine (importing torch) costs seconds, so the engine tests share it and
    use distinct task names; the library lives in the module's own folder.
    """
    from PySide6.QtCore import QSettings
    from pytestqt.qtbot import QtBot

    folder = tmp_path_factory.mktemp("desktop-engine")
    settings = QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)
    window = make_window(None, folder / "library", settings, str(tiny_model_dir))
    window.show()
    qtbot = QtBot(request)
    with qtbot.waitSignal(window.session.sig_model_changed, timeout=ENGINE_START_MS,
                          check_params_cb=bool):
        window.engine.start()
    yield window
    window.jobs.jobs.clear()
    window.engine.stop()
    window.close()


@pytest.fixture
def window(qtbot, engine_window):
    """The shared engine window, with the engine running and the model loaded."""
    if engine_window.session.model is None:
        with qtbot.waitSignal(engine_window.session.sig_model_changed, timeout=ENGINE_START_MS,
                              check_params_cb=bool):
            engine_window.restart_engine()
    return engine_window
