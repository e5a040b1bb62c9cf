"""The pre-converted embedded model of the installed app: found first, same fingerprint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.model.bundle import FOLDER_NAME, SOURCE_FILE, find_bundled_model
from engine.model.host import ModelHost
from engine.model.spec import resolve_spec


@pytest.mark.integration
def test_bundled_copy_loads_without_conversion_and_keeps_the_fingerprint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_host) -> None:
    resources = tmp_path / "resources"
    bundled = _prepare_model().write_bundled_model(resources / "models")
    monkeypatch.setenv("PROMPTBANK_RESOURCES", str(resources))
    monkeypatch.setenv("PROMPTBANK_CACHE", str(tmp_path / "empty-cache"))
    host = ModelHost("default", device="cpu")
    assert host.folder == bundled.folder
    assert host.info().source == "default"
    # Prompts trained on the GGUF-converted model must fit the bundled copy unchanged.
    assert host.fingerprint == default_host.fingerprint
    assert torch.equal(host.embeddings().weight, default_host.embeddings().weight.cpu())
    assert not (tmp_path / "empty-cache" / "models").exists()



def _prepare_model():
    """packaging/prepare_model.py (a script beside the bundle's spec, not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[3] / "packaging" / "prepare_model.py"
    spec = importlib.util.spec_from_file_location("prepare_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_folder_without_its_source_record_is_not_taken(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "models" / FOLDER_NAME
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert find_bundled_model(tmp_path / "models") is None
    (folder / SOURCE_FILE).write_text(json.dumps({"gguf_sha256": "ab" * 32}))
    found = find_bundled_model(tmp_path / "models")
    assert found is not None and found.gguf_sha256 == "ab" * 32
    monkeypatch.setenv("PROMPTBANK_RESOURCES", str(tmp_path))
    resolved = resolve_spec("default")
    assert (resolved.folder, resolved.gguf_file, resolved.weights_sha256) == (
        folder, None, "ab" * 32)
