"""The GPU engine installed for real with the CPU build of torch (downloads packages).

Then a worker runs from it, a cancelled and an offline reinstall change nothing, a broken
environment is reported, and removing it leaves the CPU engine.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from engine.api import gpu_engine as engine_env
from engine.api.gpu_engine import InstallCancelled, env_python, expected_pins, status
from engine.errors import PromptbankError
from engine.server.client import Client

pytestmark = [pytest.mark.network, pytest.mark.slow]


def cpu_backend(monkeypatch: pytest.MonkeyPatch) -> str:
    """The CPU torch build: from a configured local wheel folder if it has one, else PyTorch's."""
    for folder in os.environ.get("PIP_FIND_LINKS", "").split():
        if any(Path(folder).glob("torch-*+cpu-*.whl")):
            monkeypatch.setenv("UV_FIND_LINKS", folder)
            return engine_env.INDEX_BACKEND
    return "cpu"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory):
    """One real install shared by the tests below, with what it reported."""
    monkeypatch = pytest.MonkeyPatch()
    backend = cpu_backend(monkeypatch)
    home = tmp_path_factory.mktemp("engine-home")
    stages: list[tuple[str, float]] = []
    lines: list[str] = []
    found = engine_env.install(backend, home=home, progress=lambda s, f: stages.append((s, f)),
                               log=lines.append)
    yield home, found, stages, lines
    monkeypatch.undo()


def test_install_reports_progress_and_a_ready_cpu_engine(installed):
    home, found, stages, lines = installed
    assert found.ready, found.reason
    assert found.torch.startswith(expected_pins()["torch"]) and "+cpu" in found.torch
    assert found.accelerator is None and Path(found.python).is_file()
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("torch" in line for line in lines)
    assert (home / "install.log").read_text().strip()
    assert not (home / "env.new").exists()


def test_a_worker_runs_from_the_engine_environment(installed, tiny_model_dir, tmp_path):
    _, found, _, _ = installed
    with Client.start(str(tiny_model_dir), tmp_path / "library", "cpu", python=found.python,
                      timeout=120) as client:
        assert client.call("model_info")["hidden_size"] == 32
        maps = Path(f"/proc/{client.proc.pid}/maps")
        if maps.exists():  # torch was loaded from the engine environment, not the app's venv
            assert f"{found.folder}/lib" in maps.read_text()


def test_a_cancelled_reinstall_changes_nothing(installed, monkeypatch):
    home, found, _, _ = installed
    cpu_backend(monkeypatch)
    cancel = threading.Event()
    with pytest.raises(InstallCancelled, match="cancelled; nothing was changed"):
        engine_env.install(found.backend, home=home, cancel=cancel,
                           log=lambda line: cancel.set())
    assert status(home) == found
    assert not (home / "env.new").exists()


def test_an_install_without_network_fails_clearly_and_changes_nothing(installed, monkeypatch):
    home, found, _, _ = installed
    monkeypatch.delenv("UV_FIND_LINKS", raising=False)
    # Nothing listens on port 9 of this machine: every download is refused at once.
    monkeypatch.setenv("UV_DEFAULT_INDEX", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_NO_CACHE", "1")
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    with pytest.raises(PromptbankError) as info:
        engine_env.install(engine_env.INDEX_BACKEND, home=home)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("Installing the GPU engine failed while installing torch")
    assert "Check the internet connection" in message and "CPU engine is unchanged" in message
    assert status(home) == found


def test_a_broken_environment_is_reported_then_removed(installed):
    home = installed[0]  # the last test: it breaks the shared install
    env_python(home / "env").unlink()
    broken = status(home)
    assert broken.state == "broken" and "missing" in broken.reason
    assert engine_env.remove(home) and status(home).state == "none"
