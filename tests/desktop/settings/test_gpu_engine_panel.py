"""Settings → Engine: the CPU engine shown, a GPU engine that cannot start falls back,
install, cancel and remove."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.connection.process import EngineProcess
from desktop.session import Session
from desktop.settings.engine_panel import EnginePanel
from engine.api import gpu_engine as engine_env
from tests.desktop.conftest import ENGINE_START_MS
from tests.engine.api.test_gpu_engine_install import cpu_backend


@pytest.fixture
def engine_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "engine-home"
    monkeypatch.setenv("PROMPTBANK_ENGINE_HOME", str(home))
    return home


def session_on(model: Path, library: Path, python: str | None = None) -> Session:
    engine = EngineProcess([], python=python)
    session = Session(engine, library, model_spec=str(model), device="cpu")
    engine.worker_args = session.worker_args()
    return session


def wait_ready(qtbot, engine: EngineProcess) -> None:
    qtbot.waitUntil(lambda: engine.state == "ready", timeout=ENGINE_START_MS)


def test_the_panel_shows_the_cpu_engine_and_refuses_an_unknown_build(
        qtbot, engine_home, tiny_model_dir, tmp_path):
    session = session_on(tiny_model_dir, tmp_path / "library")
    panel = EnginePanel(session)
    qtbot.addWidget(panel)
    assert "runs on the CPU engine" in panel.state.text()
    assert "No GPU engine is installed" in panel.state.text()
    assert not panel.remove.isEnabled() and not panel.cancel.isEnabled()
    panel.backend.setCurrentText("cu999")
    with qtbot.waitSignal(panel.sig_finished, timeout=30_000) as done:
        panel.install.click()
    assert done.args == [False]
    assert panel.state.text().startswith("Unknown torch backend 'cu999'.")
    assert "b91c1c" in panel.state.styleSheet()
    assert session.engine.python is None and not engine_home.exists()
    assert panel.install.isEnabled()


@pytest.mark.parametrize("python", ["/bin/false", "/nonexistent/engine/bin/python"])
def test_a_gpu_engine_that_cannot_start_falls_back_to_the_cpu_engine(
        qtbot, tiny_model_dir, tmp_path, python):
    session = session_on(tiny_model_dir, tmp_path / "library", python=python)
    engine = session.engine
    try:
        with qtbot.waitSignal(engine.sig_fallback, timeout=ENGINE_START_MS) as fell:
            engine.start()
        wait_ready(qtbot, engine)
        assert engine.python is None
        assert fell.args[0].startswith("The GPU engine did not start (")
        assert fell.args[0].endswith("the CPU engine is used instead.")
        panel = EnginePanel(session)
        qtbot.addWidget(panel)
        assert "The GPU engine did not start" in panel.state.text()
    finally:
        engine.stop()


@pytest.mark.network
@pytest.mark.slow
def test_install_cancel_and_remove_from_settings(
        qtbot, engine_home, tiny_model_dir, tmp_path, monkeypatch):
    backend = cpu_backend(monkeypatch)
    session = session_on(tiny_model_dir, tmp_path / "library")
    engine = session.engine
    panel = EnginePanel(session)
    qtbot.addWidget(panel)
    panel.backend.setCurrentText(backend)
    try:
        engine.start()
        wait_ready(qtbot, engine)
        cpu_pid = engine.pid()

        with qtbot.waitSignal(panel.sig_finished, timeout=120_000) as done:
            panel.install.click()
            assert panel.cancel.isEnabled() and not panel.install.isEnabled()
            panel.cancel.click()
        assert done.args == [False] and "cancelled" in panel.state.text()
        assert engine_env.status().state == "none" and engine.pid() == cpu_pid

        with qtbot.waitSignal(panel.sig_finished, timeout=600_000) as done:
            panel.install.click()
        assert done.args == [True], panel.state.text()
        assert panel.log.toPlainText().strip() and panel.progress.value() == 100
        found = engine_env.status()
        assert found.ready and engine.python == found.python
        wait_ready(qtbot, engine)
        qtbot.waitUntil(lambda: session.model is not None and session.model.hidden_size == 32,
                        timeout=ENGINE_START_MS)
        assert engine.pid() != cpu_pid
        maps = Path(f"/proc/{engine.pid()}/maps")
        if maps.exists():  # the new worker loaded torch from the GPU engine's environment
            assert f"{found.folder}/lib" in maps.read_text()
        assert panel.state.text().startswith("Installed: GPU engine ready: torch")

        panel.remove.click()
        wait_ready(qtbot, engine)
        assert engine.python is None and engine_env.status().state == "none"
        assert "runs on the CPU engine" in panel.state.text()
    finally:
        panel.stop()
        engine.stop()
