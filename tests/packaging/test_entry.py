"""The bundle's one program (packaging/entry.py): plain CLI, ``-m engine.cli`` and ``-m desktop``.

Run here with this interpreter; in the bundle ``sys.executable`` is that program, and the app
starts its desktop and workers through these same command lines (engine/launch.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from engine import __version__
from engine.api.launch import child_env

ROOT = Path(__file__).resolve().parents[2]


def entry(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**child_env(), "PROMPTBANK_ENGINE_HOME": str(tmp_path / "engine"),
           "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, str(ROOT / "packaging" / "entry.py"), *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_plain_and_module_forms_reach_the_cli(tmp_path):
    assert entry("--version", tmp_path=tmp_path).stdout.strip() == f"promptbank {__version__}"
    out = entry("-m", "engine.cli", "--json", "engine", "status", tmp_path=tmp_path)
    assert out.returncode == 0 and json.loads(out.stdout)["state"] == "none"


def test_the_module_form_of_the_desktop_reaches_the_desktop(tmp_path):
    out = entry("-m", "desktop", "--help", tmp_path=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("usage: promptbank gui")
    assert "--check" in out.stdout
