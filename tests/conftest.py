"""Shared fixtures: an isolated cache and library per session, and the tiny model."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.tiny_model import build_tiny_model  # noqa: E402

#: The device the engine tests run on (``make test-gpu`` sets ``cuda``). Hosts load in float32
#: there too, so exactness tests check the same tolerances on every device; the ``*_bf16``
#: fixtures give the bfloat16 forms.
# A real sshd for the remote engine's tests (engine and desktop), as the fixture ``sshd``.
pytest_plugins = ["tests.engine.remote.sshd"]

TEST_DEVICE = os.environ.get("PROMPTBANK_TEST_DEVICE", "cpu")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cpu_only(reason): checks something only a CPU run has")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TEST_DEVICE == "cpu":
        return
    for item in items:
        marker = item.get_closest_marker("cpu_only")
        if marker is not None:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            item.add_marker(pytest.mark.skip(reason=f"CPU only: {reason}"))


def _real_cache() -> str:
    import platformdirs

    return os.environ.get("PROMPTBANK_CACHE") or platformdirs.user_cache_dir("promptbank")


# The embedded model's converted copy is kept in the user's cache across runs (the conversion
# costs ~20 s), and optional models added with `make setup MODELS=...` stay where they were
# added; everything else a test writes goes under its own tmp folders.
REAL_CACHE = _real_cache()


def _real_models() -> str:
    from engine.api.optional_models import models_dir

    return str(models_dir())


REAL_MODELS = _real_models()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the tiny Llama-style model and its tokenizer."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTBANK_HOME", str(tmp_path / "library"))
    monkeypatch.setenv("PROMPTBANK_CACHE", REAL_CACHE)
    monkeypatch.setenv("PROMPTBANK_MODELS", REAL_MODELS)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_host(tiny_model_dir: Path):
    """The tiny model loaded through ModelHost in float32 on the test device (shared; it is
    frozen)."""
    from engine.model.host import ModelHost

    return ModelHost(str(tiny_model_dir), device=TEST_DEVICE, dtype="float32")


@pytest.fixture(scope="session")
def tiny_host_bf16(tiny_model_dir: Path):
    """The tiny model in bfloat16 on the test device (the precision a GPU trains in)."""
    from engine.model.host import ModelHost

    return ModelHost(str(tiny_model_dir), device=TEST_DEVICE, dtype="bfloat16")


@pytest.fixture(scope="session")
def default_host():
    """The embedded default model on the test device (integration tests only)."""
    from engine.model.host import ModelHost

    return ModelHost("default", device=TEST_DEVICE, dtype="float32")
