"""Shared fixtures: an isolated cache and library per session, and the tiny model."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.tiny_model import build_tiny_model  # noqa: E402


def _real_cache() -> str:
    import platformdirs

    return os.environ.get("PROMPTBANK_CACHE") or platformdirs.user_cache_dir("promptbank")


# The embedded model's converted copy is kept in the user's cache across runs (the conversion
# costs ~20 s); everything else a test writes goes under its own tmp folders.
REAL_CACHE = _real_cache()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the tiny Llama-style model and its tokenizer."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTBANK_HOME", str(tmp_path / "library"))
    monkeypatch.setenv("PROMPTBANK_CACHE", REAL_CACHE)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_host(tiny_model_dir: Path):
    """The tiny model loaded through ModelHost on the CPU (shared; it is frozen)."""
    from engine.model import ModelHost

    return ModelHost(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="session")
def default_host():
    """The embedded default model on the CPU (integration tests only)."""
    from engine.model import ModelHost

    return ModelHost("default", device="cpu")
