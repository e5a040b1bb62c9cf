"""``promptbank gui --check``: the window and the model, or the engine's failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from engine.api.launch import child_env


def test_gui_check_reports_the_window_and_the_model(tmp_path: Path, tiny_model_dir: Path):
    env = {**child_env(), "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path),
           "PROMPTBANK_ENGINE_HOME": str(tmp_path / "engine")}
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "--model", str(tiny_model_dir), "--device", "cpu",
         "--library", str(tmp_path / "library"), "gui", "--check"],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    assert shown == {"window": "Promptbank", "visible": True, "model": tiny_model_dir.name,
                     "device": "cpu",
                     "gpu_engine": False, "tasks": 0}


def test_gui_check_fails_when_the_engine_cannot_load_the_model(tmp_path: Path):
    env = {**child_env(), "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path),
           "PROMPTBANK_ENGINE_HOME": str(tmp_path / "engine")}
    done = subprocess.run(
        [sys.executable, "-m", "desktop", "--model", str(tmp_path / "missing.gguf"),
         "--device", "cpu", "--library", str(tmp_path / "library"), "--check"],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode != 0
