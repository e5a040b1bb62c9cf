"""The GPU engine's bookkeeping without downloads: status, bad backends, removal, launching."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from engine.api import gpu_engine as engine_env
from engine.api.gpu_engine import (
    ENGINE_PACKAGES,
    MANIFEST,
    EngineStatus,
    check_backend,
    env_python,
    expected_pins,
    remove,
    status,
)
from engine.api.launch import (
    child_env,
    constraints_file,
    module_command,
    source_root,
    uv_binary,
)
from engine.errors import PromptbankError

ROOT = Path(__file__).resolve().parents[3]
GUI_PACKAGES = {"pyside6-essentials", "pyqtgraph"}


def fake_env(home: Path, pins: dict | None = None) -> Path:
    """An engine folder with a manifest and an interpreter file, as an install leaves it."""
    env = home / "env"
    python = env_python(env)
    python.parent.mkdir(parents=True)
    python.write_text("")
    record = {"backend": "cu126", "torch": "2.13.0+cu126", "accelerator": "cuda",
              "device_name": "Test GPU", "installed": "2026-01-01T00:00:00+00:00",
              "pins": pins or expected_pins()}
    (env / MANIFEST).write_text(json.dumps(record))
    return env


def test_engine_packages_are_the_project_dependencies_without_the_gui():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in deps}
    assert set(ENGINE_PACKAGES) == names - GUI_PACKAGES - {"torch", "uv"}


def test_the_engine_and_gui_packages_are_pinned_and_torch_is_not():
    pinned = {line.split("==")[0].lower().replace("_", "-")
              for line in constraints_file().read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    assert set(ENGINE_PACKAGES) <= pinned
    assert {"tokenizers", "huggingface-hub", "pyside6-essentials", "uv"} <= pinned
    assert "torch" not in pinned  # it comes first from $(TORCH), see the Makefile


def test_status_of_nothing_installed(tmp_path):
    found = status(tmp_path)
    assert found.state == "none" and not found.ready
    assert found.describe() == "No GPU engine is installed."


def test_status_ready_broken_and_outdated(tmp_path):
    env = fake_env(tmp_path / "a")
    found = status(tmp_path / "a")
    assert found.ready and found.python == str(env_python(env))
    assert "Test GPU" in found.describe()

    env_python(env).unlink()
    broken = status(tmp_path / "a")
    assert broken.state == "broken" and "Python" in broken.reason and "\n" not in broken.reason

    fake_env(tmp_path / "b", {**expected_pins(), "torch": "2.0.0"})
    outdated = status(tmp_path / "b")
    assert outdated.state == "outdated" and "another version" in outdated.reason

    (tmp_path / "c" / "env").mkdir(parents=True)
    assert status(tmp_path / "c").state == "broken"


def test_an_unknown_backend_is_refused_before_anything_is_made(tmp_path):
    # uv is one of the app's packages; a bare machine without it (a GPU image) cannot list
    # the backends, and says so (test_a_missing_uv_is_one_line_error).
    pytest.importorskip("uv")
    with pytest.raises(PromptbankError, match=r"Unknown torch backend 'cu999'.*auto.*cpu"):
        engine_env.install("cu999", home=tmp_path / "engine")
    with pytest.raises(PromptbankError, match="Unknown torch backend 'xpu'"):
        check_backend("xpu")  # uv knows it, but the engine runs only cuda, mps or cpu
    assert check_backend("cu126") == "cu126" and check_backend("index") == "index"
    assert not (tmp_path / "engine").exists()


def test_remove(tmp_path):
    fake_env(tmp_path)
    assert remove(tmp_path) is True
    assert status(tmp_path).state == "none"
    assert remove(tmp_path) is False


def test_a_worker_on_another_interpreter_gets_the_source_and_resources(monkeypatch):
    monkeypatch.delenv("PROMPTBANK_RESOURCES", raising=False)
    env = child_env("/opt/engine/bin/python", {"PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"].split(":") == [str(source_root()), "/elsewhere"]
    assert Path(env["PROMPTBANK_RESOURCES"]) == ROOT / "resources"
    assert "PROMPTBANK_RESOURCES" not in child_env(None, {})
    assert module_command("engine.cli", "/opt/py") == ["/opt/py", "-m", "engine.cli"]
    assert module_command("desktop") == [sys.executable, "-m", "desktop"]


def cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120,
                          env={**child_env(), "PROMPTBANK_ENGINE_HOME": str(home)})


def test_cli_status_install_and_remove_messages(tmp_path):
    pytest.importorskip("uv")
    out = cli("engine", "status", "--json", home=tmp_path)
    assert out.returncode == 0 and json.loads(out.stdout)["state"] == "none"
    bad = cli("engine", "install", "--torch-backend", "cuda12", home=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "Unknown torch backend" in bad.stderr
    fake_env(tmp_path)
    status_text = cli("engine", "status", home=tmp_path).stdout
    assert status_text.startswith("GPU engine ready: torch 2.13.0+cu126 on Test GPU")
    assert "GPU engine removed" in cli("engine", "remove", home=tmp_path).stdout
    assert EngineStatus(**json.loads(cli("engine", "status", "--json", home=tmp_path)
                                     .stdout)).state == "none"


def recording_python(folder: Path, marker: Path) -> Path:
    """An interpreter stand-in that notes its arguments, then runs this Python."""
    script = folder / "python"
    script.write_text(f'#!/bin/sh\necho "$@" > "{marker}"\nexec "{sys.executable}" "$@"\n')
    script.chmod(0o755)
    return script


def test_the_installed_cli_runs_computing_commands_on_a_ready_gpu_engine(
        tmp_path, monkeypatch, capfd):
    import engine.cli as cli_module

    env = fake_env(tmp_path / "engine")
    marker = tmp_path / "ran"
    env_python(env).unlink()
    env_python(env).symlink_to(recording_python(tmp_path, marker))
    monkeypatch.setenv("PROMPTBANK_ENGINE_HOME", str(tmp_path / "engine"))

    assert cli_module.main(["--json", "task", "list"]) == 0
    assert not marker.exists()  # a source tree never hands over: its venv is the engine

    monkeypatch.setattr(cli_module, "frozen", lambda: True)
    capfd.readouterr()
    assert cli_module.main(["--json", "task", "list"]) == 0
    assert marker.read_text().split() == ["-m", "engine.cli", "--json", "task", "list"]
    assert json.loads(capfd.readouterr().out) == {"tasks": []}
    marker.unlink()
    assert cli_module.main(["--json", "engine", "status"]) == 0
    assert not marker.exists()  # managing the engine stays in the app


def test_a_missing_uv_is_one_line_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "uv", None)  # import uv now fails
    with pytest.raises(PromptbankError, match="uv program that installs the GPU engine"):
        uv_binary()


def test_the_worker_check_reads_a_real_hello(tmp_path):
    engine_env._check_worker(Path(sys.executable))


def test_a_worker_that_cannot_start_fails_the_check_with_its_error(tmp_path):
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\n"
                      "exit 1\n")
    broken.chmod(0o755)
    with pytest.raises(PromptbankError, match="did not start: ModuleNotFoundError") as err:
        engine_env._check_worker(broken)
    assert "CPU engine is still used" in err.value.hint
