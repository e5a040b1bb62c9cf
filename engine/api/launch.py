"""How Promptbank starts its own processes, from a source tree or from the installed bundle.

The app starts the desktop as ``python -m desktop`` and workers as ``python -m engine.cli``.
In the PyInstaller bundle ``sys.executable`` is the ``promptbank`` program itself, and
``packaging/entry.py`` accepts those same two forms, so one command line fits both. A worker
may also run on another interpreter (the GPU engine's): that one imports the engine from
:func:`source_root` and finds the bundle's resources through ``PROMPTBANK_RESOURCES``.
Torch-free, so the desktop can use it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from engine.errors import PromptbankError
from engine.support.paths import resources_dir


def frozen() -> bool:
    """True inside the PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False))


def source_root() -> Path:
    """The folder holding the ``engine`` package as plain files, and ``constraints.txt``.

    In a source tree that is the tree; the bundle carries a copy in ``engine-src`` because
    its own modules live in an archive that another interpreter cannot import.
    """
    if frozen():
        return Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent)) / "engine-src"
    return Path(__file__).resolve().parents[2]


def constraints_file() -> Path:
    """The pins every install of Promptbank's dependencies uses (see ``constraints.txt``)."""
    return source_root() / "constraints.txt"


def module_command(module: str, python: str | os.PathLike[str] | None = None) -> list[str]:
    """``python -m module``: with this interpreter (or the bundle's program) unless given."""
    return [str(python or sys.executable), "-m", module]


def child_env(python: str | os.PathLike[str] | None = None,
              base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child started with :func:`module_command` (``python`` alike)."""
    env = dict(os.environ if base is None else base)
    env["PYTHONUNBUFFERED"] = "1"
    # Put first so the child runs this very code, not another installed copy.
    root = str(source_root())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    if python is not None:
        env["PROMPTBANK_RESOURCES"] = str(resources_dir())
    return env


def uv_binary() -> str:
    """The uv program installed with the app (the bundle carries it in ``bin``): it installs
    the GPU engine and fetches optional models."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError) as exc:
        raise PromptbankError("The uv program that installs the GPU engine and optional models "
                              "is missing.",
                              hint="Reinstall Promptbank (uv is one of its packages).") from exc
