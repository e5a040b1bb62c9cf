"""Where Promptbank keeps its files: the library folder and the model cache."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "promptbank"


def library_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The library folder: ``override``, else ``$PROMPTBANK_HOME``, else the user data dir."""
    if override:
        return Path(override).expanduser().resolve()
    env = os.environ.get("PROMPTBANK_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_data_dir(APP_NAME))


def cache_dir() -> Path:
    """Converted models and fingerprints live here; ``$PROMPTBANK_CACHE`` overrides."""
    env = os.environ.get("PROMPTBANK_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_cache_dir(APP_NAME))


def remote_dir() -> Path:
    """Where a host keeps the copies of its remote users' libraries (``promptbank
    remote-host``); ``$PROMPTBANK_REMOTE_HOME`` overrides."""
    env = os.environ.get("PROMPTBANK_REMOTE_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_data_dir(APP_NAME)) / "remote"


def resources_dir() -> Path:
    """The shipped resources (examples, icons, the bundled model) next to the packages.

    ``$PROMPTBANK_RESOURCES`` names them for a worker that runs the engine's source from
    elsewhere (the GPU engine started by the installed app).
    """
    env = os.environ.get("PROMPTBANK_RESOURCES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "resources"
